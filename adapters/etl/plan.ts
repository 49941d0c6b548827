// Planning a workflow's SQL: the operator chain compiled to one WITH query over the source, the context the
// operators print themselves in, which operators a fit must run, and when a group by's key comes straight from
// the input (so group-by passes can split the rows at the scan).
import type { DuckDBConnection } from "@duckdb/node-api";
import { ident } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import type { TaggedColumn } from "./columns.js";
import { type GroupPass, type Op, ProjectionOp, type SqlContext } from "./operators/base.js";
import type { DedupeConsecutive, Groupby } from "./operators/index.js";
import { type Dataset, describe, describeDataset, queryRows } from "./sql.js";

/** What planning needs of a workflow. */
export interface Chain {
  readonly ops: readonly Op[];
  /** where fit state lives (null before fit) */
  readonly stateDir: string | null;
  /** the columns of the data fit() saw */
  readonly inputColumns: readonly TaggedColumn[] | null;
}

export interface Compiled {
  /** WITH ... SELECT (no trailing semicolon) */
  sql: string;
  /** the WITH clause alone and the name of its last step: `${prefix} SELECT * FROM ${last}` */
  prefix: string;
  last: string;
  columns: TaggedColumn[];
}

export function needsRowOrder(ops: readonly Op[]): boolean {
  return ops.some((o) => o.needsRowOrder);
}

/** The dataset's columns, untagged; a dataset without columns is an error naming it. */
export async function datasetColumns(conn: DuckDBConnection, dataset: Dataset): Promise<TaggedColumn[]> {
  const cols = await describeDataset(conn, dataset);
  if (cols.length === 0) throw new ValidationError(`dataset ${dataset} has no columns`);
  return cols.map((c) => ({ name: c.name, tags: [], properties: {} }));
}

/** The row count of a source; an empty dataset is an error naming it. */
export async function requireRows(conn: DuckDBConnection, from: string, dataset: Dataset): Promise<number> {
  const [{ n }] = await queryRows(conn, `SELECT count(*) AS n FROM ${from}`, `cannot read dataset ${dataset}`);
  if (Number(n) === 0) throw new ValidationError(`dataset ${dataset} is empty (no rows)`);
  return Number(n);
}

/** Columns fit() saw keep the tags they had then; new columns start untagged. */
export function withFitTags(chain: Chain, cols: TaggedColumn[]): TaggedColumn[] {
  const known = new Map((chain.inputColumns ?? []).map((c) => [c.name, c]));
  return cols.map((c) => known.get(c.name) ?? c);
}

export function sqlContext(chain: Chain, training: boolean, groupPass?: GroupPass): SqlContext {
  let n = 0;
  return {
    stateDir: chain.stateDir ?? "",
    rowOrder: needsRowOrder(chain.ops),
    training,
    groupPass,
    alias: () => `j${n++}`,
  };
}

/** Compiles ops[0..upTo) over the source; checks each operator against the types it receives. */
export async function compile(
  conn: DuckDBConnection,
  ops: readonly Op[],
  source: string,
  input: TaggedColumn[],
  upTo: number,
  ctx: SqlContext,
  check = true,
): Promise<Compiled> {
  const ctes = [`s0 AS (SELECT * FROM ${source}${passFilterAtSource(ops, input, ctx)})`];
  let cols = input;
  for (let i = 0; i < upTo; i++) {
    const op = ops[i];
    const prefix = `WITH ${ctes.join(",\n")}`;
    if (check) {
      const types = new Map(
        (await describe(conn, `(${prefix} SELECT * FROM s${i})`, `step ${i + 1} (${op.describe()})`)).map((t) => [
          t.name,
          t.type,
        ]),
      );
      op.check(cols, types);
    }
    ctes.push(`s${i + 1} AS (${op.sql(`s${i}`, cols, ctx)})`);
    cols = op.columns(cols);
  }
  const prefix = `WITH ${ctes.join(",\n")}`;
  return {
    sql: `${prefix}\nSELECT ${cols.map((c) => ident(c.name)).join(", ")} FROM s${upTo}`,
    prefix,
    last: `s${upTo}`,
    columns: cols,
  };
}

/**
 * The first Groupby's key columns when they come straight from the input (no operator before it changes them,
 * and any DedupeConsecutive works within those groups): then rows can be split by hash(key) at the source.
 */
export function groupKeysAtSource(ops: readonly Op[], input: TaggedColumn[]): string[] | null {
  const g = ops.findIndex((o) => o.kind === "Groupby");
  if (g < 0) return null;
  const keys = (ops[g] as Groupby).o.groupBy;
  if (!keys.every((k) => input.some((c) => c.name === k))) return null;
  let cols = input;
  for (let i = 0; i < g; i++) {
    const op = ops[i];
    if (op instanceof ProjectionOp) {
      const pr = op.project(cols, null);
      if (pr.outputs.some((o) => keys.includes(o.name)) || (pr.drop ?? []).some((d) => keys.includes(d))) return null;
    } else if (op.kind === "DedupeConsecutive") {
      // its windows must see whole sessions: only when the session is a group key
      if (!keys.includes((op as DedupeConsecutive).o.session)) return null;
    } else if (!["Filter", "Dropna", "AddMetadata", "AddTags", "Select"].includes(op.kind)) {
      return null;
    }
    cols = op.columns(cols);
  }
  return keys;
}

/** A group-by pass without buckets filters its groups at the source when it can (DuckDB does not push it below joins). */
function passFilterAtSource(ops: readonly Op[], input: TaggedColumn[], ctx: SqlContext): string {
  const pass = ctx.groupPass;
  if (!pass || pass.n <= 1 || !pass.atSource) return "";
  const keys = groupKeysAtSource(ops, input);
  return keys ? ` WHERE hash(${keys.map(ident).join(", ")}) % ${pass.n} = ${pass.i}` : "";
}

/**
 * How many leading operators the fit of ops[i] must see: trailing row-preserving projections whose outputs
 * (and dropped columns) are none of the columns ops[i] reads are left out, so e.g. Normalize("price") after
 * Categorify(ids) fits on a scan of the input instead of one that also runs the vocabulary joins.
 */
export function fitPrefix(ops: readonly Op[], colsAt: readonly TaggedColumn[][], i: number): number {
  const reads = ops[i].fitReads(colsAt[i]);
  if (!reads) return i;
  const need = new Set(reads);
  let k = i;
  while (k > 0) {
    const prev = ops[k - 1];
    if (!(prev instanceof ProjectionOp)) break;
    const pr = prev.project(colsAt[k - 1], null);
    if (pr.outputs.some((o) => need.has(o.name)) || (pr.drop ?? []).some((d) => need.has(d))) break;
    k--;
  }
  return k;
}
