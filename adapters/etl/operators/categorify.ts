// Categorify: values to contiguous integer ids, most frequent first, with the vocabulary saved as parquet.
//
// Index layout (our choice, documented in the schema as startIndex): with startIndex s,
//   indices below s are never produced (free for padding: s = 1 reserves 0 as notebook 004 does),
//   s     = null,
//   s + 1 = out of vocabulary (unseen at fit time, rarer than freqThreshold, or beyond maxSize),
//   s + 2 ... = the vocabulary, most frequent first (ties by value).
// cardinality = s + 2 + vocabulary size; domain = [0, cardinality - 1].
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ident, sqlString } from "../../../common/duckdb.js";
import { ValidationError } from "../../../common/errors.js";
import {
  type ColumnProperties,
  type Selector,
  type TaggedColumn,
  embeddingDim,
  selectorToJSON,
  valueKey,
  withTags,
} from "../columns.js";
import { exec, queryRows } from "../sql.js";
import {
  type FitContext,
  type OpJson,
  type Output,
  type Projection,
  type SqlContext,
  NUMERIC,
  ProjectionOp,
  intOption,
  pcol,
} from "./base.js";

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
  /** per column, index -> the value it encodes (for answers in the caller's ids) */
  private values: Map<string, unknown[]> | null = null;

  constructor(selector: Selector, o: CategorifyOptions = {}) {
    super(selector);
    this.freqThreshold = intOption(o as Record<string, unknown>, "freqThreshold", 0);
    this.maxSize = intOption(o as Record<string, unknown>, "maxSize", 0);
    this.startIndex = intOption(o as Record<string, unknown>, "startIndex", 0);
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

  /** The value an index encodes (null for the null, OOV and padding indices); needs prepareOnline. */
  decode(column: string, index: number): unknown {
    const values = this.values?.get(column);
    if (!values)
      throw new ValidationError(
        `Categorify: the vocabulary of "${column}" is not loaded; call await workflow.prepareOnline() first`,
      );
    return values[index] ?? null;
  }

  override async loadOnline(conn: DuckDBConnection, stateDir: string): Promise<void> {
    this.maps = new Map();
    this.values = new Map();
    for (const c of Object.keys(this.vocab)) {
      const rows = await queryRows(
        conn,
        `SELECT ${ident(c)} AS v, "index" AS i FROM read_parquet(${sqlString(join(stateDir, Categorify.file(c)))})`,
        `loading vocabulary of "${c}"`,
      );
      const m = new Map<string, number>();
      const values: unknown[] = [];
      for (const r of rows) {
        const i = Number(r.i);
        m.set(valueKey(r.v) as string, i);
        values[i] = typeof r.v === "bigint" && Number.isSafeInteger(Number(r.v)) ? Number(r.v) : r.v;
      }
      this.maps.set(c, m);
      this.values.set(c, values);
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
