// Per-category statistics fitted as parquet and joined back: JoinGroupby (count, sum, mean... of continuous
// columns) and TargetEncoding (smoothed target means, out of fold for training data).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ident, sqlString } from "../../../common/duckdb.js";
import { ValidationError } from "../../../common/errors.js";
import { type Selector, type TaggedColumn, resolveSelector, selectorToJSON, valueKey } from "../columns.js";
import { exec, literal, queryRows, type Value } from "../sql.js";
import {
  type FitContext,
  type OpJson,
  type Output,
  type Projection,
  type SqlContext,
  ProjectionOp,
  ROW_COL,
  finiteOrNull,
  intOption,
  pcol,
  requireNumeric,
} from "./base.js";

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
    this.kfold = intOption(o, "kfold", 3, 1);
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
