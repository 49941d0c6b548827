// The operator contract: every operator knows its output columns, how to fit its state (a DuckDB query over
// the relation it receives), how to print itself as one SQL SELECT over the previous step, and how to apply
// itself to rows in JS for online requests. Projection operators (one output per selected column, rows
// unchanged) share one implementation so both paths stay in step.
import type { DuckDBConnection } from "@duckdb/node-api";
import { ident } from "../../../common/duckdb.js";
import { ValidationError } from "../../../common/errors.js";
import { type Selector, type TaggedColumn, resolveSelector } from "../columns.js";
import type { Row, Value } from "../sql.js";

export const ROW_COL = "__row";

export interface FitContext {
  conn: DuckDBConnection;
  /** folder for state files (categories/...) */
  stateDir: string;
  /** a parenthesised SELECT: the relation this operator receives */
  from: string;
  /** DuckDB type text per input column */
  types: ReadonlyMap<string, string>;
}

export interface GroupPass {
  i: number;
  n: number;
  /** the source already holds only this pass's groups (filtered or bucketed by the group key): no filter at the group by */
  atSource?: boolean;
}

export interface SqlContext {
  stateDir: string;
  /** true when the relation carries the hidden __row ordinal (input order) */
  rowOrder: boolean;
  /** transform of training data: target encoding uses out-of-fold statistics */
  training: boolean;
  /** this query handles the groups with hash(group key) % n = i only (a group by too big for memory runs in passes) */
  groupPass?: GroupPass;
  alias(): string;
}

export interface OpJson {
  kind: string;
  [k: string]: unknown;
}

export abstract class Op {
  abstract readonly kind: string;
  /** the operator reads its state with fit() before it can transform */
  readonly needsFit: boolean = false;
  /** the operator depends on input order (sorts with ties, folds) */
  readonly needsRowOrder: boolean = false;
  fitted = false;

  abstract columns(input: readonly TaggedColumn[]): TaggedColumn[];
  /** type checks against the DuckDB types of the input (names the column and the expected type) */
  check(_input: readonly TaggedColumn[], _types: ReadonlyMap<string, string>): void {}
  async fit(_ctx: FitContext, _input: readonly TaggedColumn[]): Promise<void> {}
  /**
   * The input columns fit() reads, or null when unknown. Known columns let fit() skip earlier row-preserving
   * operators that do not touch them (Normalize("price") after Categorify(ids) scans the input, not the joins).
   */
  fitReads(_input: readonly TaggedColumn[]): string[] | null {
    return null;
  }
  /** one SELECT over `prev` (a CTE name) */
  abstract sql(prev: string, input: readonly TaggedColumn[], ctx: SqlContext): string;
  /** the same transformation over rows, in JS */
  abstract apply(rows: Row[], input: readonly TaggedColumn[]): Row[];
  /** loads what apply() needs from the state folder (maps of vocabularies, statistics) */
  async loadOnline(_conn: DuckDBConnection, _stateDir: string): Promise<void> {}
  abstract toJSON(): OpJson;
  /** state files (relative to the state folder) that save() copies */
  stateFiles(): string[] {
    return [];
  }
  describe(): string {
    return this.kind;
  }
}

export function requireFitted(op: Op): void {
  if (op.needsFit && !op.fitted)
    throw new ValidationError(
      `${op.describe()}: the workflow is not fitted; call fit(dataset) or Workflow.load(dir) first`,
    );
}

// ---------------------------------------------------------------- projections

export interface Output {
  name: string;
  /** SQL over the previous relation aliased `p` (columns as p."name") and any joins */
  sql: string;
  js: (r: Row) => Value;
  info: TaggedColumn;
}

export interface Projection {
  outputs: Output[];
  /** input columns that disappear (e.g. renamed away) */
  drop?: string[];
  /** LEFT JOIN clauses the outputs read from */
  joins?: string[];
}

export function pcol(name: string): string {
  return `p.${ident(name)}`;
}

export const NUMERIC =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL.*)$/i;

export function requireNumeric(op: Op, names: readonly string[], types: ReadonlyMap<string, string>): void {
  for (const n of names) {
    const t = types.get(n);
    if (t !== undefined && !NUMERIC.test(t))
      throw new ValidationError(`${op.describe()}: column "${n}" has type ${t}; expected a number`);
  }
}

/** A value as a number (numeric strings and booleans too); null when it is not one. */
export function num(v: Value | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "string" && v.trim() !== "" && !Number.isNaN(Number(v))) return Number(v);
  return null;
}

export function finiteOrNull(v: Value | undefined): number | null {
  const n = num(v);
  return n === null || !Number.isFinite(n) ? null : n;
}

/** An integer option of an operator (dflt when absent); anything else is an error naming the option. */
export function intOption(o: Record<string, unknown>, k: string, dflt: number, min = 0): number {
  const v = o[k] ?? dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min)
    throw new ValidationError(`option ${k} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

export abstract class ProjectionOp extends Op {
  constructor(readonly selector: Selector) {
    super();
  }
  /** names this operator transforms */
  selected(input: readonly TaggedColumn[]): string[] {
    return resolveSelector(this.selector, input, this.describe());
  }
  abstract project(input: readonly TaggedColumn[], ctx: SqlContext | null): Projection;

  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    const pr = this.project(input, null);
    return mergeColumns(input, pr).map((x) => x.info);
  }

  sql(prev: string, input: readonly TaggedColumn[], ctx: SqlContext): string {
    requireFitted(this);
    const pr = this.project(input, ctx);
    const list = mergeColumns(input, pr).map((x) =>
      x.sql === null ? pcol(x.info.name) : `${x.sql} AS ${ident(x.info.name)}`,
    );
    if (ctx.rowOrder) list.push(pcol(ROW_COL));
    return `SELECT ${list.join(", ")} FROM ${prev} AS p${(pr.joins ?? []).map((j) => `\n  ${j}`).join("")}`;
  }

  private cache: { sig: string; pr: Projection } | null = null;

  apply(rows: Row[], input: readonly TaggedColumn[]): Row[] {
    requireFitted(this);
    const sig = input.map((c) => c.name).join("\u0001");
    if (!this.cache || this.cache.sig !== sig) this.cache = { sig, pr: this.project(input, null) };
    const { outputs, drop } = this.cache.pr;
    const out = new Array<Row>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const o: Row = { ...r };
      if (drop) for (const d of drop) delete o[d];
      for (const x of outputs) o[x.name] = x.js(r);
      out[i] = o;
    }
    return out;
  }
}

/** Output column order: inputs in place (replaced where an output has their name), then new columns. */
function mergeColumns(
  input: readonly TaggedColumn[],
  pr: Projection,
): Array<{ info: TaggedColumn; sql: string | null }> {
  const byName = new Map(pr.outputs.map((o) => [o.name, o]));
  const drop = new Set(pr.drop ?? []);
  const out: Array<{ info: TaggedColumn; sql: string | null }> = [];
  const used = new Set<string>();
  for (const c of input) {
    const o = byName.get(c.name);
    if (o) {
      out.push({ info: o.info, sql: o.sql });
      used.add(c.name);
    } else if (!drop.has(c.name)) {
      out.push({ info: c, sql: null });
    }
  }
  for (const o of pr.outputs) if (!used.has(o.name)) out.push({ info: o.info, sql: o.sql });
  return out;
}
