// The operators. Each one: output columns and schema tags, fit state (DuckDB queries; vocabularies and
// statistics tables as parquet under categories/), one SQL SELECT for the batch path and the same thing in JS.
//
// Categorify index layout (our choice, documented in the schema as startIndex): with startIndex s,
//   indices below s are never produced (free for padding: s = 1 reserves 0 as notebook 004 does),
//   s     = null,
//   s + 1 = out of vocabulary (unseen at fit time, rarer than freqThreshold, or beyond maxSize),
//   s + 2 ... = the vocabulary, most frequent first (ties by value).
// cardinality = s + 2 + vocabulary size; domain = [0, cardinality - 1].
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ValidationError } from "../../common/errors.js";
import {
  type TaggedColumn,
  type ColumnProperties,
  type Selector,
  type Tag,
  checkTags,
  embeddingDim,
  resolveSelector,
  selectorToJSON,
  valueKey,
  withTags,
} from "./columns.js";
import { type ExprNode, evalExpr, exprColumns, exprToSql, parseExpr } from "./expr.js";
import {
  type FitContext,
  type OpJson,
  type Output,
  type Projection,
  type SqlContext,
  NUMERIC,
  Op,
  ProjectionOp,
  ROW_COL,
  num,
  pcol,
  requireFitted,
  requireNumeric,
} from "./op.js";
import { ident, sqlString } from "../../common/duckdb.js";
import { exec, literal, queryRows, type Row, type Value } from "./sql.js";

function int(o: Record<string, unknown>, k: string, dflt: number, min = 0): number {
  const v = o[k] ?? dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min)
    throw new ValidationError(`option ${k} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function finiteOrNull(v: Value | undefined): number | null {
  const n = num(v);
  return n === null || !Number.isFinite(n) ? null : n;
}

// ================================================================ Categorify

export interface CategorifyOptions {
  /** values seen fewer times go to the out-of-vocabulary index */
  freqThreshold?: number;
  /** keep at most this many values (the most frequent); 0 = no limit */
  maxSize?: number;
  startIndex?: number;
  dtype?: "int32" | "int64";
}

export class Categorify extends ProjectionOp {
  readonly kind = "Categorify";
  override readonly needsFit = true;
  readonly freqThreshold: number;
  readonly maxSize: number;
  readonly startIndex: number;
  readonly dtype: "int32" | "int64";
  /** per column: vocabulary size and the DuckDB type it was fit on */
  vocab: Record<string, { size: number; type: string }> = {};
  private maps: Map<string, Map<string, number>> | null = null;

  constructor(selector: Selector, o: CategorifyOptions = {}) {
    super(selector);
    this.freqThreshold = int(o as Record<string, unknown>, "freqThreshold", 0);
    this.maxSize = int(o as Record<string, unknown>, "maxSize", 0);
    this.startIndex = int(o as Record<string, unknown>, "startIndex", 0);
    this.dtype = o.dtype ?? "int32";
    if (this.dtype !== "int32" && this.dtype !== "int64")
      throw new ValidationError(`Categorify: dtype must be int32 or int64, got ${JSON.stringify(o.dtype)}`);
  }

  static file(col: string): string {
    return join("categories", `unique.${col}.parquet`);
  }

  override fitReads(input: readonly TaggedColumn[]): string[] {
    return this.selected(input);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    if (!this.fitted) return;
    for (const c of this.selected(input)) {
      const v = this.vocab[c];
      if (!v)
        throw new ValidationError(
          `Categorify: column "${c}" was not part of the fit (fitted: ${Object.keys(this.vocab).join(", ")})`,
        );
      const t = types.get(c);
      const numeric = (x: string) => NUMERIC.test(x);
      if (t && t !== v.type && numeric(t) !== numeric(v.type))
        throw new ValidationError(`Categorify: column "${c}" has type ${t}; it was fit on ${v.type}`);
    }
  }

  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    mkdirSync(join(ctx.stateDir, "categories"), { recursive: true });
    for (const c of this.selected(input)) {
      const file = join(ctx.stateDir, Categorify.file(c));
      const s = this.startIndex;
      await exec(
        ctx.conn,
        `COPY (SELECT v AS ${ident(c)}, CAST(${s + 2} + row_number() OVER (ORDER BY cnt DESC, v) - 1 AS INTEGER) AS "index", cnt AS "count"
           FROM (SELECT ${pcol(c)} AS v, count(*) AS cnt FROM ${ctx.from} AS p WHERE ${pcol(c)} IS NOT NULL GROUP BY 1${this.freqThreshold > 0 ? ` HAVING count(*) >= ${this.freqThreshold}` : ""})
           ORDER BY "index"${this.maxSize > 0 ? ` LIMIT ${this.maxSize}` : ""}) TO ${sqlString(file)} (FORMAT parquet)`,
        `Categorify fit of column "${c}"`,
      );
      const [{ n }] = await queryRows(
        ctx.conn,
        `SELECT count(*)::INTEGER AS n FROM read_parquet(${sqlString(file)})`,
        `Categorify fit of column "${c}"`,
      );
      this.vocab[c] = { size: Number(n), type: ctx.types.get(c) ?? "unknown" };
    }
    this.fitted = true;
  }

  project(input: readonly TaggedColumn[], ctx: SqlContext | null): Projection {
    const outputs: Output[] = [];
    const joins: string[] = [];
    const s = this.startIndex;
    const cast = this.dtype === "int64" ? "BIGINT" : "INTEGER";
    for (const c of this.selected(input)) {
      const info = input.find((x) => x.name === c) as TaggedColumn;
      const v = this.vocab[c];
      if (!v) throw new ValidationError(`Categorify: column "${c}" is not fitted`);
      const cardinality = s + 2 + v.size;
      const properties: ColumnProperties = {
        ...info.properties,
        cardinality,
        embeddingDim: embeddingDim(cardinality),
        domain: { min: 0, max: cardinality - 1 },
        startIndex: s,
        nullIndex: s,
        oovIndex: s + 1,
        freqThreshold: this.freqThreshold,
        maxSize: this.maxSize,
        categoriesPath: Categorify.file(c),
      };
      let sql = "";
      if (ctx) {
        const a = ctx.alias();
        joins.push(
          `LEFT JOIN (SELECT ${ident(c)} AS v, "index" AS i FROM read_parquet(${sqlString(join(ctx.stateDir, Categorify.file(c)))})) AS ${a} ON ${pcol(c)} = ${a}.v`,
        );
        sql = `CAST(CASE WHEN ${pcol(c)} IS NULL THEN ${s} WHEN ${a}.i IS NULL THEN ${s + 1} ELSE ${a}.i END AS ${cast})`;
      }
      outputs.push({
        name: c,
        sql,
        info: { ...withTags(info, ["categorical"], ["continuous"]), properties },
        js: (r) => {
          const k = valueKey(r[c]);
          if (k === null) return s;
          return this.onlineMap(c).get(k) ?? s + 1;
        },
      });
    }
    return { outputs, joins };
  }

  private onlineMap(c: string): Map<string, number> {
    const m = this.maps?.get(c);
    if (!m)
      throw new ValidationError(
        `Categorify: the vocabulary of "${c}" is not loaded; call await workflow.prepareOnline() before transformRow`,
      );
    return m;
  }

  override async loadOnline(conn: DuckDBConnection, stateDir: string): Promise<void> {
    this.maps = new Map();
    for (const c of Object.keys(this.vocab)) {
      const rows = await queryRows(
        conn,
        `SELECT ${ident(c)} AS v, "index" AS i FROM read_parquet(${sqlString(join(stateDir, Categorify.file(c)))})`,
        `loading vocabulary of "${c}"`,
      );
      const m = new Map<string, number>();
      for (const r of rows) m.set(valueKey(r.v) as string, Number(r.i));
      this.maps.set(c, m);
    }
  }

  override stateFiles(): string[] {
    return Object.keys(this.vocab).map((c) => Categorify.file(c));
  }

  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      freqThreshold: this.freqThreshold,
      maxSize: this.maxSize,
      startIndex: this.startIndex,
      dtype: this.dtype,
      vocab: this.vocab,
    };
  }
  static fromJSON(j: OpJson): Categorify {
    const op = new Categorify(j.selector as Selector, j as CategorifyOptions);
    op.vocab = (j.vocab ?? {}) as Categorify["vocab"];
    op.fitted = Object.keys(op.vocab).length > 0;
    return op;
  }
}

// ================================================================ Normalize

export class Normalize extends ProjectionOp {
  readonly kind = "Normalize";
  override readonly needsFit = true;
  stats: Record<string, { mean: number; std: number }> = {};

  override fitReads(input: readonly TaggedColumn[]): string[] {
    return this.selected(input);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    requireNumeric(this, this.selected(input), types);
  }
  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    const cols = this.selected(input);
    const sel = cols
      .map((c, i) => `avg(${pcol(c)})::DOUBLE AS m${i}, stddev_samp(${pcol(c)})::DOUBLE AS s${i}`)
      .join(", ");
    const [r] = await queryRows(ctx.conn, `SELECT ${sel} FROM ${ctx.from} AS p`, "Normalize fit");
    cols.forEach((c, i) => {
      const mean = finiteOrNull(r[`m${i}`]);
      const sd = finiteOrNull(r[`s${i}`]);
      if (mean === null) throw new ValidationError(`Normalize: column "${c}" has no non-null values to fit on`);
      // a constant column would divide by zero: scale 1 keeps it centred at 0
      this.stats[c] = { mean, std: sd === null || sd === 0 ? 1 : sd };
    });
    this.fitted = true;
  }
  project(input: readonly TaggedColumn[]): Projection {
    return {
      outputs: this.selected(input).map((c) => {
        const st = this.stats[c];
        if (!st) throw new ValidationError(`Normalize: column "${c}" is not fitted`);
        const info = input.find((x) => x.name === c) as TaggedColumn;
        return {
          name: c,
          sql: `((CAST(${pcol(c)} AS DOUBLE) - ${literal(st.mean)}) / ${literal(st.std)})`,
          info: {
            ...withTags(info, ["continuous"], ["categorical"]),
            properties: { ...info.properties, mean: st.mean, std: st.std },
          },
          js: (r) => {
            const x = num(r[c]);
            return x === null ? null : (x - st.mean) / st.std;
          },
        };
      }),
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), stats: this.stats };
  }
  static fromJSON(j: OpJson): Normalize {
    const op = new Normalize(j.selector as Selector);
    op.stats = (j.stats ?? {}) as Normalize["stats"];
    op.fitted = Object.keys(op.stats).length > 0;
    return op;
  }
}

// ================================================================ simple per-column maps

/** log(1 + x), as NVTabular's LogOp; x <= -1 gives null. */
export class LogOp extends ProjectionOp {
  readonly kind = "LogOp";
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    requireNumeric(this, this.selected(input), types);
  }
  project(input: readonly TaggedColumn[]): Projection {
    return {
      outputs: this.selected(input).map((c) => ({
        name: c,
        sql: `(CASE WHEN ${pcol(c)} > -1 THEN ln(CAST(${pcol(c)} AS DOUBLE) + 1) END)`,
        info: withTags(input.find((x) => x.name === c) as TaggedColumn, ["continuous"]),
        js: (r) => {
          const x = num(r[c]);
          return x === null || !(x > -1) ? null : Math.log(x + 1);
        },
      })),
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector) };
  }
  static fromJSON(j: OpJson): LogOp {
    return new LogOp(j.selector as Selector);
  }
}

export interface FillMissingOptions {
  /** a constant; or */
  value?: number | string | boolean;
  /** a statistic of the fit data */
  strategy?: "mean" | "median";
}

export class FillMissing extends ProjectionOp {
  readonly kind = "FillMissing";
  override readonly needsFit: boolean;
  readonly value: number | string | boolean | undefined;
  readonly strategy: "mean" | "median" | undefined;
  fills: Record<string, number | string | boolean> = {};

  constructor(selector: Selector, o: FillMissingOptions = { value: 0 }) {
    super(selector);
    if ((o.value === undefined) === (o.strategy === undefined))
      throw new ValidationError(`FillMissing: give exactly one of value or strategy ("mean" | "median")`);
    if (o.strategy !== undefined && o.strategy !== "mean" && o.strategy !== "median")
      throw new ValidationError(`FillMissing: strategy must be "mean" or "median", got ${JSON.stringify(o.strategy)}`);
    this.value = o.value;
    this.strategy = o.strategy;
    this.needsFit = o.strategy !== undefined;
  }
  override fitReads(input: readonly TaggedColumn[]): string[] {
    return this.selected(input);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    if (this.strategy || typeof this.value === "number") requireNumeric(this, this.selected(input), types);
  }
  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    const cols = this.selected(input);
    const f = this.strategy === "median" ? "median" : "avg";
    const [r] = await queryRows(
      ctx.conn,
      `SELECT ${cols.map((c, i) => `${f}(${pcol(c)})::DOUBLE AS v${i}`).join(", ")} FROM ${ctx.from} AS p`,
      "FillMissing fit",
    );
    cols.forEach((c, i) => {
      const v = finiteOrNull(r[`v${i}`]);
      if (v === null)
        throw new ValidationError(`FillMissing: column "${c}" has no non-null values to compute the ${this.strategy}`);
      this.fills[c] = v;
    });
    this.fitted = true;
  }
  project(input: readonly TaggedColumn[]): Projection {
    return {
      outputs: this.selected(input).map((c) => {
        const fill = this.strategy ? this.fills[c] : (this.value as number | string | boolean);
        if (fill === undefined) throw new ValidationError(`FillMissing: column "${c}" is not fitted`);
        return {
          name: c,
          sql: `coalesce(${pcol(c)}, ${literal(fill)})`,
          info: input.find((x) => x.name === c) as TaggedColumn,
          js: (r) => {
            const v = r[c];
            return v === null || v === undefined ? fill : v;
          },
        };
      }),
    };
  }
  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      value: this.value,
      strategy: this.strategy,
      fills: this.fills,
    };
  }
  static fromJSON(j: OpJson): FillMissing {
    const op = new FillMissing(
      j.selector as Selector,
      j.strategy ? { strategy: j.strategy as "mean" } : { value: j.value as number },
    );
    op.fills = (j.fills ?? {}) as FillMissing["fills"];
    op.fitted = !op.needsFit || Object.keys(op.fills).length > 0;
    return op;
  }
}

export class Clip extends ProjectionOp {
  readonly kind = "Clip";
  readonly min: number | null;
  readonly max: number | null;
  constructor(selector: Selector, o: { min?: number; max?: number }) {
    super(selector);
    this.min = o.min ?? null;
    this.max = o.max ?? null;
    if (this.min === null && this.max === null) throw new ValidationError("Clip: give min, max or both");
    if (this.min !== null && this.max !== null && this.min > this.max)
      throw new ValidationError(`Clip: min ${this.min} > max ${this.max}`);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    requireNumeric(this, this.selected(input), types);
  }
  project(input: readonly TaggedColumn[]): Projection {
    const lo = this.min;
    const hi = this.max;
    return {
      outputs: this.selected(input).map((c) => ({
        name: c,
        sql: `(CASE${lo !== null ? ` WHEN ${pcol(c)} < ${literal(lo)} THEN ${literal(lo)}` : ""}${hi !== null ? ` WHEN ${pcol(c)} > ${literal(hi)} THEN ${literal(hi)}` : ""} ELSE ${pcol(c)} END)`,
        info: input.find((x) => x.name === c) as TaggedColumn,
        js: (r) => {
          const v = r[c];
          const x = num(v);
          if (x === null) return v ?? null;
          if (lo !== null && x < lo) return lo;
          if (hi !== null && x > hi) return hi;
          return v ?? null;
        },
      })),
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), min: this.min, max: this.max };
  }
  static fromJSON(j: OpJson): Clip {
    return new Clip(j.selector as Selector, {
      min: (j.min as number | null) ?? undefined,
      max: (j.max as number | null) ?? undefined,
    });
  }
}

export interface RenameOptions {
  postfix?: string;
  prefix?: string;
  /** new name (one selected column only) */
  name?: string;
  /** keep the original column too (a copy under the new name) */
  keep?: boolean;
}

export class Rename extends ProjectionOp {
  readonly kind = "Rename";
  constructor(
    selector: Selector,
    readonly o: RenameOptions,
  ) {
    super(selector);
    if (!o.postfix && !o.prefix && !o.name) throw new ValidationError("Rename: give postfix, prefix or name");
  }
  private newName(c: string, n: number): string {
    if (this.o.name) {
      if (n !== 1)
        throw new ValidationError(`Rename: name "${this.o.name}" needs exactly one selected column, got ${n}`);
      return this.o.name;
    }
    return `${this.o.prefix ?? ""}${c}${this.o.postfix ?? ""}`;
  }
  project(input: readonly TaggedColumn[]): Projection {
    const cols = this.selected(input);
    const outputs = cols.map((c) => {
      const name = this.newName(c, cols.length);
      const info = input.find((x) => x.name === c) as TaggedColumn;
      return {
        name,
        sql: pcol(c),
        info: { ...info, name, tags: [...info.tags], properties: { ...info.properties } },
        js: (r: Row) => r[c] ?? null,
      };
    });
    const names = new Set(outputs.map((o) => o.name));
    return { outputs, drop: this.o.keep ? [] : cols.filter((c) => !names.has(c)) };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), ...this.o };
  }
  static fromJSON(j: OpJson): Rename {
    return new Rename(j.selector as Selector, j as RenameOptions);
  }
}

const CASTS: Record<string, { sql: string; js: (v: Value) => Value }> = {
  int32: { sql: "INTEGER", js: (v) => roundAway(v) },
  int64: { sql: "BIGINT", js: (v) => roundAway(v) },
  float32: { sql: "FLOAT", js: (v) => (num(v) === null ? null : Math.fround(num(v) as number)) },
  float64: { sql: "DOUBLE", js: (v) => num(v) },
  string: { sql: "VARCHAR", js: (v) => (v instanceof Date ? v.toISOString() : String(v)) },
  bool: {
    sql: "BOOLEAN",
    js: (v) => (typeof v === "string" ? ["true", "t", "1", "yes", "y"].includes(v.toLowerCase()) : Boolean(num(v))),
  },
};

/** DuckDB rounds half away from zero when casting a fraction to an integer. */
function roundAway(v: Value): Value {
  if (typeof v === "bigint") return Number(v);
  const x = num(v);
  if (x === null) throw new ValidationError(`Cast: ${JSON.stringify(v)} is not a number`);
  return Math.sign(x) * Math.round(Math.abs(x));
}

/** Cast to int32 | int64 | float32 | float64 | string | bool. (String casts of fractional doubles print differently in JS: "1" vs DuckDB's "1.0".) */
export class Cast extends ProjectionOp {
  readonly kind = "Cast";
  constructor(
    selector: Selector,
    readonly dtype: string,
  ) {
    super(selector);
    if (!CASTS[dtype])
      throw new ValidationError(
        `Cast: dtype must be one of ${Object.keys(CASTS).join(", ")}, got ${JSON.stringify(dtype)}`,
      );
  }
  project(input: readonly TaggedColumn[]): Projection {
    const c0 = CASTS[this.dtype];
    return {
      outputs: this.selected(input).map((c) => ({
        name: c,
        sql: `CAST(${pcol(c)} AS ${c0.sql})`,
        info: input.find((x) => x.name === c) as TaggedColumn,
        js: (r) => {
          const v = r[c];
          return v === null || v === undefined ? null : c0.js(v);
        },
      })),
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), dtype: this.dtype };
  }
  static fromJSON(j: OpJson): Cast {
    return new Cast(j.selector as Selector, j.dtype as string);
  }
}

/** A new (or replaced) column from an expression of the subset in expr.ts: the LambdaOp of this world. */
export class Expr extends ProjectionOp {
  readonly kind = "Expr";
  readonly tree: ExprNode;
  readonly tags: Tag[];
  constructor(
    readonly name: string,
    readonly expr: string,
    o: { tags?: string[] } = {},
  ) {
    const tree = parseExpr(expr);
    super([...exprColumns(tree)]);
    if (!name) throw new ValidationError(`Expr "${expr}": needs an output column name`);
    this.tree = tree;
    this.tags = checkTags(o.tags ?? [], `Expr "${name}"`);
  }
  override describe(): string {
    return `Expr ${this.name} = ${this.expr}`;
  }
  project(input: readonly TaggedColumn[]): Projection {
    this.selected(input);
    const prev = input.find((c) => c.name === this.name);
    const tree = this.tree;
    return {
      outputs: [
        {
          name: this.name,
          sql: exprToSql(tree, pcol),
          info: {
            name: this.name,
            tags: [...(prev?.tags ?? []), ...this.tags.filter((t) => !prev?.tags.includes(t))],
            properties: { ...(prev?.properties ?? {}) },
          },
          js: (r) => evalExpr(tree, r),
        },
      ],
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, name: this.name, expr: this.expr, tags: this.tags };
  }
  static fromJSON(j: OpJson): Expr {
    return new Expr(j.name as string, j.expr as string, { tags: j.tags as string[] });
  }
}

// ================================================================ time features

type TimeUnit = "s" | "ms" | "timestamp";

function msSql(unit: TimeUnit, c: string): string {
  return unit === "timestamp"
    ? `epoch_ms(CAST(${pcol(c)} AS TIMESTAMP))`
    : unit === "s"
      ? `(CAST(${pcol(c)} AS DOUBLE) * 1000)`
      : `CAST(${pcol(c)} AS DOUBLE)`;
}

/** ms since the epoch of a time value online: a Date, an ISO string (UTC when no zone), or a number in `unit`. */
function msOf(unit: TimeUnit, v: Value | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.getTime();
  if (unit === "timestamp")
    return typeof v === "string" ? Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v.replace(" ", "T")}Z`) : num(v);
  const x = num(v);
  return x === null ? null : unit === "s" ? x * 1000 : x;
}

function checkTimeColumn(op: Op, unit: TimeUnit, c: string, t: string | undefined): void {
  if (!t) return;
  const isTs = /^(TIMESTAMP|DATE)/i.test(t);
  if (unit === "timestamp" ? !isTs : !NUMERIC.test(t))
    throw new ValidationError(
      `${op.describe()}: column "${c}" has type ${t}; expected ${unit === "timestamp" ? 'a TIMESTAMP (or set unit: "s" | "ms")' : `epoch ${unit} as a number`}`,
    );
}

/** notebook 004's day_index: whole UTC days since the first day of the fit data, plus 1. */
export class DayIndex extends ProjectionOp {
  readonly kind = "DayIndex";
  override readonly needsFit = true;
  readonly name: string;
  readonly unit: TimeUnit;
  minDay: number | null = null;
  constructor(selector: Selector, o: { name?: string; unit?: TimeUnit } = {}) {
    super(selector);
    this.name = o.name ?? "day_index";
    this.unit = o.unit ?? "timestamp";
  }
  override fitReads(input: readonly TaggedColumn[]): string[] {
    return this.selected(input);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    const cols = this.selected(input);
    if (cols.length !== 1) throw new ValidationError(`DayIndex: select exactly one time column, got ${cols.length}`);
    checkTimeColumn(this, this.unit, cols[0], types.get(cols[0]));
  }
  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    const [c] = this.selected(input);
    const [r] = await queryRows(
      ctx.conn,
      `SELECT min(floor(${msSql(this.unit, c)} / 86400000))::DOUBLE AS d FROM ${ctx.from} AS p`,
      "DayIndex fit",
    );
    this.minDay = finiteOrNull(r.d);
    if (this.minDay === null) throw new ValidationError(`DayIndex: column "${c}" has no non-null values`);
    this.fitted = true;
  }
  project(input: readonly TaggedColumn[]): Projection {
    const [c] = this.selected(input);
    const min = this.minDay ?? 0;
    return {
      outputs: [
        {
          name: this.name,
          sql: `CAST(floor(${msSql(this.unit, c)} / 86400000) - ${min} + 1 AS INTEGER)`,
          info: {
            name: this.name,
            tags: ["time"],
            properties: { firstDay: new Date(min * 86400000).toISOString().slice(0, 10) },
          },
          js: (r) => {
            const m = msOf(this.unit, r[c]);
            return m === null ? null : Math.floor(m / 86400000) - min + 1;
          },
        },
      ],
    };
  }
  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      name: this.name,
      unit: this.unit,
      minDay: this.minDay,
    };
  }
  static fromJSON(j: OpJson): DayIndex {
    const op = new DayIndex(j.selector as Selector, { name: j.name as string, unit: j.unit as TimeUnit });
    op.minDay = j.minDay as number | null;
    op.fitted = op.minDay !== null;
    return op;
  }
}

export const TIME_FEATURES = ["weekday", "hour", "weekday_sin", "weekday_cos", "hour_sin", "hour_cos", "day"] as const;
export type TimeFeature = (typeof TIME_FEATURES)[number];

/**
 * Calendar features of a time column, in UTC: weekday (Monday = 0, as pandas), hour, day (days since the
 * epoch), and cyclical sin/cos of weekday (period 7) and hour (period 24). Outputs are named `<col>_<feature>`.
 * The column holds epoch seconds (unit "s"), milliseconds ("ms") or a TIMESTAMP ("timestamp").
 */
export class TimeFeatures extends ProjectionOp {
  readonly kind = "TimeFeatures";
  readonly unit: "s" | "ms" | "timestamp";
  readonly features: TimeFeature[];
  constructor(selector: Selector, o: { unit?: "s" | "ms" | "timestamp"; features?: TimeFeature[] } = {}) {
    super(selector);
    this.unit = o.unit ?? "timestamp";
    if (!["s", "ms", "timestamp"].includes(this.unit))
      throw new ValidationError(`TimeFeatures: unit must be "s", "ms" or "timestamp", got ${JSON.stringify(o.unit)}`);
    this.features = o.features ?? ["weekday", "hour", "weekday_sin", "weekday_cos"];
    for (const f of this.features)
      if (!TIME_FEATURES.includes(f))
        throw new ValidationError(`TimeFeatures: unknown feature "${f}" (expected ${TIME_FEATURES.join(", ")})`);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    for (const c of this.selected(input)) checkTimeColumn(this, this.unit, c, types.get(c));
  }
  private msSql(c: string): string {
    return msSql(this.unit, c);
  }
  private ms(v: Value | undefined): number | null {
    return msOf(this.unit, v);
  }
  project(input: readonly TaggedColumn[]): Projection {
    const outputs: Output[] = [];
    for (const c of this.selected(input)) {
      const ms = this.msSql(c);
      const day = `floor(${ms} / 86400000)`;
      const weekday = `CAST(((${day} + 3) % 7 + 7) % 7 AS INTEGER)`;
      const hour = `CAST(floor(((${ms} % 86400000) + 86400000) % 86400000 / 3600000) AS INTEGER)`;
      const jsDay = (m: number) => Math.floor(m / 86400000);
      const jsWeekday = (m: number) => (((jsDay(m) + 3) % 7) + 7) % 7;
      const jsHour = (m: number) => Math.floor((((m % 86400000) + 86400000) % 86400000) / 3600000);
      const defs: Record<TimeFeature, { sql: string; js: (m: number) => number; tags: Tag[] }> = {
        weekday: { sql: weekday, js: jsWeekday, tags: ["time", "categorical"] },
        hour: { sql: hour, js: jsHour, tags: ["time", "categorical"] },
        day: { sql: `CAST(${day} AS INTEGER)`, js: jsDay, tags: ["time"] },
        weekday_sin: {
          sql: `sin(2 * pi() * ${weekday} / 7)`,
          js: (m) => Math.sin((2 * Math.PI * jsWeekday(m)) / 7),
          tags: ["time", "continuous"],
        },
        weekday_cos: {
          sql: `cos(2 * pi() * ${weekday} / 7)`,
          js: (m) => Math.cos((2 * Math.PI * jsWeekday(m)) / 7),
          tags: ["time", "continuous"],
        },
        hour_sin: {
          sql: `sin(2 * pi() * ${hour} / 24)`,
          js: (m) => Math.sin((2 * Math.PI * jsHour(m)) / 24),
          tags: ["time", "continuous"],
        },
        hour_cos: {
          sql: `cos(2 * pi() * ${hour} / 24)`,
          js: (m) => Math.cos((2 * Math.PI * jsHour(m)) / 24),
          tags: ["time", "continuous"],
        },
      };
      for (const f of this.features) {
        const d = defs[f];
        const properties: ColumnProperties =
          f === "weekday"
            ? { cardinality: 7, embeddingDim: embeddingDim(7), domain: { min: 0, max: 6 } }
            : f === "hour"
              ? { cardinality: 24, embeddingDim: embeddingDim(24), domain: { min: 0, max: 23 } }
              : {};
        outputs.push({
          name: `${c}_${f}`,
          sql: d.sql,
          info: { name: `${c}_${f}`, tags: d.tags, properties },
          js: (r) => {
            const m = this.ms(r[c]);
            return m === null || Number.isNaN(m) ? null : d.js(m);
          },
        });
      }
    }
    return { outputs };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), unit: this.unit, features: this.features };
  }
  static fromJSON(j: OpJson): TimeFeatures {
    return new TimeFeatures(j.selector as Selector, { unit: j.unit as "s", features: j.features as TimeFeature[] });
  }
}

// ================================================================ per-group statistics joined back

export const GROUP_STATS = ["count", "sum", "mean", "std", "min", "max"] as const;
export type GroupStat = (typeof GROUP_STATS)[number];
const STAT_SQL: Record<GroupStat, (c: string) => string> = {
  count: () => "count(*)",
  sum: (c) => `sum(${c})::DOUBLE`,
  mean: (c) => `avg(${c})::DOUBLE`,
  std: (c) => `stddev_samp(${c})::DOUBLE`,
  min: (c) => `min(${c})::DOUBLE`,
  max: (c) => `max(${c})::DOUBLE`,
};

/**
 * NVTabular's JoinGroupby: statistics of continuous columns per value of each selected categorical column,
 * joined back as `<cat>_<cont>_<stat>` (and `<cat>_count`). Unseen or null categories get null (count 0).
 */
export class JoinGroupby extends ProjectionOp {
  readonly kind = "JoinGroupby";
  override readonly needsFit = true;
  readonly cont: string[];
  readonly stats: GroupStat[];
  fittedCols: string[] = [];
  private maps: Map<string, Map<string, Value[]>> | null = null;

  constructor(selector: Selector, o: { cont?: string[]; stats?: GroupStat[] } = {}) {
    super(selector);
    this.cont = o.cont ?? [];
    this.stats = o.stats ?? ["count"];
    for (const s of this.stats)
      if (!GROUP_STATS.includes(s))
        throw new ValidationError(`JoinGroupby: unknown stat "${s}" (expected ${GROUP_STATS.join(", ")})`);
    if (this.stats.some((s) => s !== "count") && this.cont.length === 0)
      throw new ValidationError("JoinGroupby: stats other than count need cont columns");
  }
  static file(col: string): string {
    return join("categories", `joingroupby.${col}.parquet`);
  }
  private statCols(c: string): Array<{ name: string; sql: (alias: string) => string }> {
    const out: Array<{ name: string; sql: (a: string) => string }> = [];
    if (this.stats.includes("count")) out.push({ name: `${c}_count`, sql: () => STAT_SQL.count("") });
    for (const k of this.cont)
      for (const s of this.stats)
        if (s !== "count") out.push({ name: `${c}_${k}_${s}`, sql: () => STAT_SQL[s](pcol(k)) });
    return out;
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    resolveSelector(this.cont, input, this.describe());
    requireNumeric(this, this.cont, types);
  }
  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    mkdirSync(join(ctx.stateDir, "categories"), { recursive: true });
    this.fittedCols = this.selected(input);
    for (const c of this.fittedCols) {
      const stats = this.statCols(c).map((s) => `${s.sql("p")} AS ${ident(s.name)}`);
      await exec(
        ctx.conn,
        `COPY (SELECT ${pcol(c)} AS ${ident(c)}, ${stats.join(", ")} FROM ${ctx.from} AS p WHERE ${pcol(c)} IS NOT NULL GROUP BY 1 ORDER BY 1) TO ${sqlString(join(ctx.stateDir, JoinGroupby.file(c)))} (FORMAT parquet)`,
        `JoinGroupby fit of column "${c}"`,
      );
    }
    this.fitted = true;
  }
  project(input: readonly TaggedColumn[], ctx: SqlContext | null): Projection {
    const outputs: Output[] = [];
    const joins: string[] = [];
    for (const c of this.selected(input)) {
      if (!this.fittedCols.includes(c)) throw new ValidationError(`JoinGroupby: column "${c}" is not fitted`);
      const a = ctx?.alias() ?? "";
      if (ctx)
        joins.push(
          `LEFT JOIN read_parquet(${sqlString(join(ctx.stateDir, JoinGroupby.file(c)))}) AS ${a} ON ${pcol(c)} = ${a}.${ident(c)}`,
        );
      this.statCols(c).forEach((s, i) => {
        const isCount = s.name === `${c}_count`;
        outputs.push({
          name: s.name,
          sql: isCount ? `coalesce(${a}.${ident(s.name)}, 0)` : `${a}.${ident(s.name)}`,
          info: { name: s.name, tags: ["continuous"], properties: {} },
          js: (r) => {
            const k = valueKey(r[c]);
            const hit = k === null ? undefined : this.onlineMap(c).get(k);
            return hit ? hit[i] : isCount ? 0 : null;
          },
        });
      });
    }
    return { outputs, joins };
  }
  private onlineMap(c: string): Map<string, Value[]> {
    const m = this.maps?.get(c);
    if (!m)
      throw new ValidationError(
        `JoinGroupby: statistics of "${c}" are not loaded; call await workflow.prepareOnline() before transformRow`,
      );
    return m;
  }
  override async loadOnline(conn: DuckDBConnection, stateDir: string): Promise<void> {
    this.maps = new Map();
    for (const c of this.fittedCols) {
      const names = this.statCols(c).map((s) => s.name);
      const rows = await queryRows(
        conn,
        `SELECT * FROM read_parquet(${sqlString(join(stateDir, JoinGroupby.file(c)))})`,
        `loading JoinGroupby statistics of "${c}"`,
      );
      const m = new Map<string, Value[]>();
      for (const r of rows)
        m.set(
          valueKey(r[c]) as string,
          names.map((n) => (typeof r[n] === "bigint" ? Number(r[n]) : (r[n] ?? null))),
        );
      this.maps.set(c, m);
    }
  }
  override stateFiles(): string[] {
    return this.fittedCols.map((c) => JoinGroupby.file(c));
  }
  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      cont: this.cont,
      stats: this.stats,
      fittedCols: this.fittedCols,
    };
  }
  static fromJSON(j: OpJson): JoinGroupby {
    const op = new JoinGroupby(j.selector as Selector, { cont: j.cont as string[], stats: j.stats as GroupStat[] });
    op.fittedCols = (j.fittedCols ?? []) as string[];
    op.fitted = op.fittedCols.length > 0;
    return op;
  }
}

// ================================================================ target encoding

/**
 * Smoothed target mean per category, `TE_<cat>_<target>` = (sum + pSmooth * globalMean) / (count + pSmooth).
 * Transforming training data (`transform(..., { training: true })`) uses k-fold out-of-fold statistics: a row
 * in fold f (hash of its input ordinal) is encoded from the other folds only, so the encoding does not leak
 * its own target. Other transforms and transformRow use the statistics of all the fit data. Null or unseen
 * categories get the global mean.
 */
export class TargetEncoding extends ProjectionOp {
  readonly kind = "TargetEncoding";
  override readonly needsFit = true;
  override readonly needsRowOrder = true;
  readonly target: string;
  readonly kfold: number;
  readonly pSmooth: number;
  readonly seed: number;
  globalMean = 0;
  fittedCols: string[] = [];
  private maps: Map<string, Map<string, number>> | null = null;

  constructor(selector: Selector, o: { target: string; kfold?: number; pSmooth?: number; seed?: number }) {
    super(selector);
    if (!o?.target) throw new ValidationError("TargetEncoding: needs a target column");
    this.target = o.target;
    this.kfold = int(o, "kfold", 3, 1);
    this.pSmooth = o.pSmooth ?? 20;
    this.seed = o.seed ?? 42;
  }
  outName(c: string): string {
    return `TE_${c}_${this.target}`;
  }
  static file(col: string, target: string): string {
    return join("categories", `te.${col}.${target}.parquet`);
  }
  foldSql(): string {
    return `CAST(hash(p.${ident(ROW_COL)}, ${this.seed}) % ${this.kfold} AS INTEGER)`;
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    resolveSelector([this.target], input, this.describe());
    requireNumeric(this, [this.target], types);
  }
  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    mkdirSync(join(ctx.stateDir, "categories"), { recursive: true });
    const t = pcol(this.target);
    const [g] = await queryRows(ctx.conn, `SELECT avg(${t})::DOUBLE AS m FROM ${ctx.from} AS p`, "TargetEncoding fit");
    const m = finiteOrNull(g.m);
    if (m === null) throw new ValidationError(`TargetEncoding: target "${this.target}" has no non-null values`);
    this.globalMean = m;
    this.fittedCols = this.selected(input);
    for (const c of this.fittedCols) {
      await exec(
        ctx.conn,
        `COPY (SELECT ${pcol(c)} AS k, ${this.foldSql()} AS fold, sum(${t})::DOUBLE AS s, count(${t})::BIGINT AS n
               FROM ${ctx.from} AS p WHERE ${pcol(c)} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2)
         TO ${sqlString(join(ctx.stateDir, TargetEncoding.file(c, this.target)))} (FORMAT parquet)`,
        `TargetEncoding fit of column "${c}"`,
      );
    }
    this.fitted = true;
  }
  project(input: readonly TaggedColumn[], ctx: SqlContext | null): Projection {
    const outputs: Output[] = [];
    const joins: string[] = [];
    const p = this.pSmooth;
    const mean = this.globalMean;
    for (const c of this.selected(input)) {
      if (!this.fittedCols.includes(c)) throw new ValidationError(`TargetEncoding: column "${c}" is not fitted`);
      let sql = "";
      if (ctx) {
        const file = sqlString(join(ctx.stateDir, TargetEncoding.file(c, this.target)));
        const a = ctx.alias();
        joins.push(
          `LEFT JOIN (SELECT k, sum(s) AS s, sum(n) AS n FROM read_parquet(${file}) GROUP BY k) AS ${a} ON ${pcol(c)} = ${a}.k`,
        );
        let s = `coalesce(${a}.s, 0)`;
        let n = `coalesce(${a}.n, 0)`;
        if (ctx.training && this.kfold > 1) {
          const f = ctx.alias();
          joins.push(
            `LEFT JOIN read_parquet(${file}) AS ${f} ON ${pcol(c)} = ${f}.k AND ${this.foldSql()} = ${f}.fold`,
          );
          s = `(${s} - coalesce(${f}.s, 0))`;
          n = `(${n} - coalesce(${f}.n, 0))`;
        }
        sql = `((${s} + ${literal(p * mean)}) / (${n} + ${literal(p)}))`;
      }
      outputs.push({
        name: this.outName(c),
        sql,
        info: { name: this.outName(c), tags: ["continuous"], properties: {} },
        js: (r) => {
          const k = valueKey(r[c]);
          const v = k === null ? undefined : this.onlineMap(c).get(k);
          return v ?? (0 + p * mean) / (0 + p);
        },
      });
    }
    return { outputs, joins };
  }
  private onlineMap(c: string): Map<string, number> {
    const m = this.maps?.get(c);
    if (!m)
      throw new ValidationError(
        `TargetEncoding: statistics of "${c}" are not loaded; call await workflow.prepareOnline() before transformRow`,
      );
    return m;
  }
  override async loadOnline(conn: DuckDBConnection, stateDir: string): Promise<void> {
    this.maps = new Map();
    const p = this.pSmooth;
    for (const c of this.fittedCols) {
      const rows = await queryRows(
        conn,
        `SELECT k, sum(s)::DOUBLE AS s, sum(n)::DOUBLE AS n FROM read_parquet(${sqlString(join(stateDir, TargetEncoding.file(c, this.target)))}) GROUP BY k`,
        `loading TargetEncoding statistics of "${c}"`,
      );
      const m = new Map<string, number>();
      // the same arithmetic as the SQL: (s + p*mean) / (n + p)
      for (const r of rows)
        m.set(valueKey(r.k) as string, ((r.s as number) + p * this.globalMean) / ((r.n as number) + p));
      this.maps.set(c, m);
    }
  }
  override stateFiles(): string[] {
    return this.fittedCols.map((c) => TargetEncoding.file(c, this.target));
  }
  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      target: this.target,
      kfold: this.kfold,
      pSmooth: this.pSmooth,
      seed: this.seed,
      globalMean: this.globalMean,
      fittedCols: this.fittedCols,
    };
  }
  static fromJSON(j: OpJson): TargetEncoding {
    const op = new TargetEncoding(j.selector as Selector, {
      target: j.target as string,
      kfold: j.kfold as number,
      pSmooth: j.pSmooth as number,
      seed: j.seed as number,
    });
    op.globalMean = j.globalMean as number;
    op.fittedCols = (j.fittedCols ?? []) as string[];
    op.fitted = op.fittedCols.length > 0;
    return op;
  }
}

// ================================================================ lists

/**
 * Python-style slice of list columns: ListSlice(0, 20) keeps the first 20, ListSlice(-20) the last 20.
 * With pad, lists are padded with padValue to end - start (positive bounds only).
 */
export class ListSlice extends ProjectionOp {
  readonly kind = "ListSlice";
  constructor(
    selector: Selector,
    readonly start: number,
    readonly end?: number,
    readonly o: { pad?: boolean; padValue?: number } = {},
  ) {
    super(selector);
    if (!Number.isInteger(start) || (end !== undefined && end !== null && !Number.isInteger(end)))
      throw new ValidationError(`ListSlice: start and end must be integers, got ${start}, ${end}`);
    if (o.pad && (start < 0 || end === undefined || end < 0 || end <= start))
      throw new ValidationError("ListSlice: pad needs 0 <= start < end");
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    for (const c of this.selected(input)) {
      const t = types.get(c);
      if (t && !t.endsWith("[]")) throw new ValidationError(`ListSlice: column "${c}" has type ${t}; expected a list`);
    }
  }
  project(input: readonly TaggedColumn[]): Projection {
    const { start, end } = this;
    const bound = (b: number, len: string) => (b < 0 ? `greatest(${len} + ${b}, 0)` : `least(${b}, ${len})`);
    const jsBound = (b: number, n: number) => (b < 0 ? Math.max(n + b, 0) : Math.min(b, n));
    const pad = this.o.pad ? (end as number) - start : 0;
    const padValue = this.o.padValue ?? 0;
    return {
      outputs: this.selected(input).map((c) => {
        const len = `len(${pcol(c)})`;
        const s = bound(start, len);
        const e = end === undefined || end === null ? len : bound(end, len);
        let sql = `list_slice(${pcol(c)}, ${s} + 1, ${e})`;
        if (pad) sql = `list_resize(${sql}, ${pad}, ${literal(padValue)})`;
        const info = input.find((x) => x.name === c) as TaggedColumn;
        return {
          name: c,
          sql: `(CASE WHEN ${pcol(c)} IS NULL THEN NULL ELSE ${sql} END)`,
          info: {
            ...withTags(info, ["list"]),
            properties: { ...info.properties, ...(pad ? { valueCount: { min: pad, max: pad } } : {}) },
          },
          js: (r) => {
            const v = r[c];
            if (v === null || v === undefined) return null;
            if (!Array.isArray(v))
              throw new ValidationError(`ListSlice: column "${c}" holds ${JSON.stringify(v)}; expected a list`);
            const n = v.length;
            const out = v.slice(jsBound(start, n), end === undefined || end === null ? n : jsBound(end, n));
            while (out.length < pad) out.push(padValue);
            return out;
          },
        };
      }),
    };
  }
  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      start: this.start,
      end: this.end ?? null,
      ...this.o,
    };
  }
  static fromJSON(j: OpJson): ListSlice {
    return new ListSlice(j.selector as Selector, j.start as number, (j.end as number | null) ?? undefined, {
      pad: j.pad as boolean,
      padValue: j.padValue as number,
    });
  }
}

// ================================================================ schema-only

/** Adds tags (and properties) to columns; data is unchanged. AddTags(sel, tags) = AddMetadata(sel, { tags }). */
export class AddMetadata extends Op {
  readonly kind: string = "AddMetadata";
  readonly tags: Tag[];
  readonly properties: ColumnProperties;
  constructor(
    readonly selector: Selector,
    o: { tags?: string[]; properties?: ColumnProperties },
  ) {
    super();
    this.tags = checkTags(o.tags ?? [], "AddMetadata");
    this.properties = o.properties ?? {};
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    const names = new Set(resolveSelector(this.selector, input, this.describe()));
    return input.map((c) =>
      names.has(c.name) ? { ...withTags(c, this.tags), properties: { ...c.properties, ...this.properties } } : c,
    );
  }
  sql(prev: string): string {
    return `SELECT p.* FROM ${prev} AS p`;
  }
  apply(rows: Row[]): Row[] {
    return rows;
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), tags: this.tags, properties: this.properties };
  }
  static fromJSON(j: OpJson): AddMetadata {
    return j.kind === "AddTags"
      ? new AddTags(j.selector as Selector, j.tags as string[])
      : new AddMetadata(j.selector as Selector, {
          tags: j.tags as string[],
          properties: j.properties as ColumnProperties,
        });
  }
}

export class AddTags extends AddMetadata {
  override readonly kind: string = "AddTags";
  constructor(selector: Selector, tags: string[]) {
    super(selector, { tags });
  }
}

/** Keeps only the selected columns, in the selector's order (the workflow's outputs). */
export class Select extends Op {
  readonly kind = "Select";
  constructor(readonly selector: Selector) {
    super();
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    const names = resolveSelector(this.selector, input, this.describe());
    return names.map((n) => input.find((c) => c.name === n) as TaggedColumn);
  }
  sql(prev: string, input: readonly TaggedColumn[], ctx: SqlContext): string {
    const cols = this.columns(input).map((c) => pcol(c.name));
    if (ctx.rowOrder) cols.push(pcol(ROW_COL));
    return `SELECT ${cols.join(", ")} FROM ${prev} AS p`;
  }
  apply(rows: Row[], input: readonly TaggedColumn[]): Row[] {
    const names = this.columns(input).map((c) => c.name);
    return rows.map((r) => {
      const o: Row = {};
      for (const n of names) o[n] = r[n] ?? null;
      return o;
    });
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector) };
  }
  static fromJSON(j: OpJson): Select {
    return new Select(j.selector as Selector);
  }
}

// ================================================================ row filters

/** Keeps the rows where a predicate (the expression subset of expr.ts) is true; null counts as false. */
export class Filter extends Op {
  readonly kind = "Filter";
  readonly tree: ExprNode;
  constructor(readonly predicate: string) {
    super();
    this.tree = parseExpr(predicate);
  }
  override describe(): string {
    return `Filter ${this.predicate}`;
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    resolveSelector([...exprColumns(this.tree)], input, this.describe());
    return [...input];
  }
  sql(prev: string, input: readonly TaggedColumn[]): string {
    this.columns(input);
    return `SELECT p.* FROM ${prev} AS p WHERE ${exprToSql(this.tree, pcol)}`;
  }
  apply(rows: Row[]): Row[] {
    return rows.filter((r) => evalExpr(this.tree, r) === true);
  }
  toJSON(): OpJson {
    return { kind: this.kind, predicate: this.predicate };
  }
  static fromJSON(j: OpJson): Filter {
    return new Filter(j.predicate as string);
  }
}

/** Drops rows with a null in any selected column (default: any column). */
export class Dropna extends Op {
  readonly kind = "Dropna";
  constructor(readonly selector: Selector = "*") {
    super();
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    resolveSelector(this.selector, input, this.describe());
    return [...input];
  }
  sql(prev: string, input: readonly TaggedColumn[]): string {
    const cols = resolveSelector(this.selector, input, this.describe());
    return `SELECT p.* FROM ${prev} AS p${cols.length ? ` WHERE ${cols.map((c) => `${pcol(c)} IS NOT NULL`).join(" AND ")}` : ""}`;
  }
  apply(rows: Row[], input: readonly TaggedColumn[]): Row[] {
    const cols = resolveSelector(this.selector, input, this.describe());
    return rows.filter((r) => cols.every((c) => r[c] !== null && r[c] !== undefined));
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector) };
  }
  static fromJSON(j: OpJson): Dropna {
    return new Dropna(j.selector as Selector);
  }
}

/** Compares two values as DuckDB's ORDER BY does (ascending, NULLS LAST). */
export function compareValues(a: Value | undefined, b: Value | undefined): number {
  const an = a === null || a === undefined;
  const bn = b === null || b === undefined;
  if (an || bn) return an && bn ? 0 : an ? 1 : -1;
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint"))
    return a < b ? -1 : a > b ? 1 : 0;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function sortRows(rows: Row[], keys: readonly string[]): Row[] {
  // Array.prototype.sort is stable: ties keep input order, as ORDER BY ..., __row does in SQL
  return [...rows].sort((x, y) => {
    for (const k of keys) {
      const c = compareValues(x[k], y[k]);
      if (c !== 0) return c;
    }
    return 0;
  });
}

/**
 * Removes consecutive repeats of the same item within a session (after sorting by session, then time):
 * [1, 2, 4, 1, 2, 2, 3, 3, 3] becomes [1, 2, 4, 1, 2, 3], as notebook 004 does.
 */
export class DedupeConsecutive extends Op {
  readonly kind = "DedupeConsecutive";
  override readonly needsRowOrder = true;
  constructor(readonly o: { session: string; item: string; sortBy: string[] }) {
    super();
    if (!o?.session || !o.item || !Array.isArray(o.sortBy))
      throw new ValidationError("DedupeConsecutive: needs session, item and sortBy (column list)");
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    resolveSelector([this.o.session, this.o.item, ...this.o.sortBy], input, this.describe());
    return [...input];
  }
  sql(prev: string, input: readonly TaggedColumn[]): string {
    this.columns(input);
    const w = `(PARTITION BY ${pcol(this.o.session)} ORDER BY ${[...this.o.sortBy.map(pcol), pcol(ROW_COL)].join(", ")})`;
    return `SELECT p.* FROM ${prev} AS p QUALIFY row_number() OVER ${w} = 1 OR lag(${pcol(this.o.item)}) OVER ${w} IS DISTINCT FROM ${pcol(this.o.item)}`;
  }
  apply(rows: Row[]): Row[] {
    const sorted = sortRows(rows, [this.o.session, ...this.o.sortBy]);
    const out: Row[] = [];
    let prev: Row | null = null;
    for (const r of sorted) {
      const same =
        prev !== null &&
        valueKey(prev[this.o.session]) === valueKey(r[this.o.session]) &&
        valueKey(prev[this.o.item]) === valueKey(r[this.o.item]);
      if (!same) out.push(r);
      prev = r;
    }
    return out;
  }
  toJSON(): OpJson {
    return { kind: this.kind, ...this.o };
  }
  static fromJSON(j: OpJson): DedupeConsecutive {
    return new DedupeConsecutive(j as unknown as { session: string; item: string; sortBy: string[] });
  }
}

// ================================================================ Groupby

export const AGGS = ["list", "count", "first", "last", "min", "max", "mean", "sum"] as const;
export type Agg = (typeof AGGS)[number];

export interface GroupbyOptions {
  groupBy: string[];
  sortBy?: string[];
  aggs: Record<string, Agg[]>;
  /** separator between column and aggregation in output names; "-" as in notebook 004 */
  sep?: string;
}

/**
 * Groups rows (e.g. by session or user), sorts each group by sortBy (ties in input order) and aggregates:
 * list (in sorted order, nulls kept), count (non-null), first/last (in sorted order), min, max, mean, sum.
 * Outputs the group columns, then `<col><sep><agg>` for each aggregation.
 */
export class Groupby extends Op {
  readonly kind = "Groupby";
  override readonly needsRowOrder = true;
  readonly sep: string;
  constructor(readonly o: GroupbyOptions) {
    super();
    if (!o?.groupBy?.length) throw new ValidationError("Groupby: needs groupBy columns");
    if (!o.aggs || Object.keys(o.aggs).length === 0)
      throw new ValidationError('Groupby: needs aggs, e.g. { product_id: ["list", "count"] }');
    for (const [c, as] of Object.entries(o.aggs))
      for (const a of as)
        if (!AGGS.includes(a))
          throw new ValidationError(`Groupby: column "${c}": unknown aggregation "${a}" (expected ${AGGS.join(", ")})`);
    this.sep = o.sep ?? "-";
  }
  private outputs(): Array<{ col: string; agg: Agg; name: string }> {
    const out: Array<{ col: string; agg: Agg; name: string }> = [];
    for (const [col, aggs] of Object.entries(this.o.aggs))
      for (const agg of aggs) out.push({ col, agg, name: `${col}${this.sep}${agg}` });
    return out;
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    resolveSelector([...this.o.groupBy, ...(this.o.sortBy ?? []), ...Object.keys(this.o.aggs)], input, this.describe());
    const byName = new Map(input.map((c) => [c.name, c]));
    const cols: TaggedColumn[] = this.o.groupBy.map((g) => byName.get(g) as TaggedColumn);
    for (const { col, agg, name } of this.outputs()) {
      const src = byName.get(col) as TaggedColumn;
      if (agg === "list") cols.push({ name, tags: withTags(src, ["list"]).tags, properties: { ...src.properties } });
      else if (agg === "count") cols.push({ name, tags: ["continuous"], properties: {} });
      else if (agg === "mean" || agg === "sum")
        cols.push({
          name,
          tags: src.tags
            .filter((t) => t !== "categorical")
            .concat(src.tags.includes("continuous") ? [] : ["continuous"]),
          properties: {},
        });
      else cols.push({ name, tags: [...src.tags], properties: { ...src.properties } });
    }
    return cols;
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    for (const { col, agg } of this.outputs()) if (agg === "mean" || agg === "sum") requireNumeric(this, [col], types);
  }
  sql(prev: string, input: readonly TaggedColumn[], ctx: SqlContext): string {
    this.columns(input);
    const keys = [...(this.o.sortBy ?? []).map(pcol), ...(ctx.rowOrder ? [pcol(ROW_COL)] : [])];
    const sortBy = this.o.sortBy ?? [];
    const seqCols = [
      ...new Set(
        this.outputs()
          .filter((o) => ["list", "first", "last"].includes(o.agg))
          .map((o) => o.col),
      ),
    ];
    // a sequence column that is also a sort key is read from its key field (one field less per row to aggregate and sort)
    const valueCols = seqCols.filter((c) => !sortBy.includes(c));
    const field = (c: string) => (sortBy.includes(c) ? `k${sortBy.indexOf(c)}` : `v${valueCols.indexOf(c)}`);
    const inner: string[] = this.o.groupBy.map(pcol);
    // One list of structs led by the sort keys, sorted per group with list_sort (structs compare field by field):
    // every list of a group gets the same order, and this is much faster than ORDER BY inside the aggregate.
    if (seqCols.length) {
      const fields = [...keys.map((k, i) => `k${i} := ${k}`), ...valueCols.map((c) => `${field(c)} := ${pcol(c)}`)];
      inner.push(`list_sort(list(struct_pack(${fields.join(", ")}))) AS __seq`);
    }
    const outer: string[] = this.o.groupBy.map((g) => `g.${ident(g)}`);
    this.outputs().forEach(({ col, agg, name }, i) => {
      const a = `a${i}`;
      switch (agg) {
        case "list":
          outer.push(`list_transform(g.__seq, lambda s: s.${field(col)}) AS ${ident(name)}`);
          return;
        case "first":
          outer.push(`g.__seq[1].${field(col)} AS ${ident(name)}`);
          return;
        case "last":
          outer.push(`g.__seq[-1].${field(col)} AS ${ident(name)}`);
          return;
        case "count":
          inner.push(`count(${pcol(col)}) AS ${a}`);
          break;
        case "min":
        case "max":
        case "sum":
          inner.push(`${agg}(${pcol(col)}) AS ${a}`);
          break;
        case "mean":
          inner.push(`avg(${pcol(col)})::DOUBLE AS ${a}`);
          break;
      }
      outer.push(`g.${a} AS ${ident(name)}`);
    });
    if (ctx.rowOrder) {
      inner.push(`min(${pcol(ROW_COL)}) AS ${ident(ROW_COL)}`);
      outer.push(`g.${ident(ROW_COL)}`);
    }
    const pass =
      ctx.groupPass && ctx.groupPass.n > 1 && !ctx.groupPass.atSource
        ? ` WHERE hash(${this.o.groupBy.map(pcol).join(", ")}) % ${ctx.groupPass.n} = ${ctx.groupPass.i}`
        : "";
    return `SELECT ${outer.join(", ")} FROM (SELECT ${inner.join(", ")} FROM ${prev} AS p${pass} GROUP BY ${this.o.groupBy.map(pcol).join(", ")}) AS g`;
  }
  apply(rows: Row[], input: readonly TaggedColumn[]): Row[] {
    this.columns(input);
    const groups = new Map<string, Row[]>();
    for (const r of rows) {
      const k = this.o.groupBy.map((g) => valueKey(r[g]) ?? "null").join("\u0001");
      const g = groups.get(k);
      if (g) g.push(r);
      else groups.set(k, [r]);
    }
    const out: Row[] = [];
    for (const g of groups.values()) {
      const sorted = sortRows(g, this.o.sortBy ?? []);
      const o: Row = {};
      for (const c of this.o.groupBy) o[c] = sorted[0][c] ?? null;
      for (const { col, agg, name } of this.outputs()) {
        const vals = sorted.map((r) => r[col] ?? null);
        const present = vals.filter((v) => v !== null) as Value[];
        switch (agg) {
          case "list":
            o[name] = vals;
            break;
          case "count":
            o[name] = present.length;
            break;
          case "first":
            o[name] = vals[0];
            break;
          case "last":
            o[name] = vals[vals.length - 1];
            break;
          case "min":
          case "max":
            o[name] = present.length
              ? present.reduce((a, b) => (compareValues(a, b) * (agg === "min" ? 1 : -1) <= 0 ? a : b))
              : null;
            break;
          case "sum":
            o[name] = present.length ? present.reduce((a: number, b) => a + (num(b) as number), 0) : null;
            break;
          case "mean":
            o[name] = present.length
              ? present.reduce((a: number, b) => a + (num(b) as number), 0) / present.length
              : null;
            break;
        }
      }
      out.push(o);
    }
    return out;
  }
  toJSON(): OpJson {
    return { kind: this.kind, ...this.o, sep: this.sep };
  }
  static fromJSON(j: OpJson): Groupby {
    return new Groupby(j as unknown as GroupbyOptions);
  }
}

export const OP_KINDS: Record<string, (j: OpJson) => Op> = {
  Categorify: Categorify.fromJSON,
  Normalize: Normalize.fromJSON,
  LogOp: LogOp.fromJSON,
  FillMissing: FillMissing.fromJSON,
  Clip: Clip.fromJSON,
  Rename: Rename.fromJSON,
  Cast: Cast.fromJSON,
  Expr: Expr.fromJSON,
  TimeFeatures: TimeFeatures.fromJSON,
  DayIndex: DayIndex.fromJSON,
  JoinGroupby: JoinGroupby.fromJSON,
  TargetEncoding: TargetEncoding.fromJSON,
  ListSlice: ListSlice.fromJSON,
  AddMetadata: AddMetadata.fromJSON,
  AddTags: AddMetadata.fromJSON,
  Select: Select.fromJSON,
  Filter: Filter.fromJSON,
  Dropna: Dropna.fromJSON,
  DedupeConsecutive: DedupeConsecutive.fromJSON,
  Groupby: Groupby.fromJSON,
};

export function opFromJSON(j: OpJson): Op {
  const f = OP_KINDS[j?.kind];
  if (!f)
    throw new ValidationError(
      `workflow: unknown operator kind ${JSON.stringify(j?.kind)} (known: ${Object.keys(OP_KINDS).join(", ")})`,
    );
  const op = f(j);
  if (!op.needsFit) op.fitted = true;
  return op;
}

export { requireFitted };
