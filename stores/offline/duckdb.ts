// The DuckDB offline store: point-in-time joins, latest-per-entity pulls for materialize, source
// validation and appends, all computed inside one in-memory DuckDB over the parquet sources.
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Table } from "apache-arrow";
import { ident, sqlString, type DuckDBSettings } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import { batchSourceOf, type FeatureViewSpec, type FileSourceSpec } from "../../registry/types.js";
import type { ColumnBatch, HistoricalRequest, OfflineStore, PullLatestResult, RetrievalJob } from "../types.js";
import { batchesToArrow } from "./arrow.js";
import { OfflineDuckDB, type ColumnInfo } from "./db.js";
import {
  compatibleWithDtype,
  describeColumns,
  joinTypesComparable,
  listElementType,
  typeFamily,
  type TypeFamily,
} from "./duck_types.js";
import { loadEntityDf } from "./entity_df.js";
import { loadColumns, prepareColumn, type ColumnTarget } from "./load.js";
import { copyToParquet, FAST_PARQUET } from "./parquet.js";
import { pitSql, type PitView } from "./pit.js";
import { countedBatches, readPlan, readSql, streamBatches, type ReadColumn } from "./read.js";
import { timestampLiteral } from "./sql.js";
import {
  describeSource,
  locateSource,
  rawColumnOf,
  requireColumn,
  requireTimestampTypes,
  resolveSourceRead,
  rowIdExpr,
  sourceLabel,
  sourceRelation,
  viewOwner,
} from "./source.js";

const DEFAULT_BATCH = 65_536;

class DuckRetrievalJob implements RetrievalJob {
  private plan: ReadColumn[] | null = null;
  private closed = false;

  constructor(
    private readonly duck: OfflineDuckDB,
    private readonly view: string,
    private readonly tables: string[],
  ) {}

  private async readPlan(): Promise<ReadColumn[]> {
    this.plan ??= readPlan(await this.duck.describe(ident(this.view)));
    return this.plan;
  }

  async columns(): Promise<string[]> {
    return (await this.readPlan()).map((c) => c.name);
  }

  async *batches(): AsyncIterable<ColumnBatch> {
    const plan = await this.readPlan();
    yield* streamBatches(this.duck, readSql(plan, ident(this.view)), plan, DEFAULT_BATCH);
  }

  async toArrow(): Promise<Table> {
    return batchesToArrow(await this.readPlan(), this.batches());
  }

  async toParquet(path: string): Promise<void> {
    await this.duck.use((c) => copyToParquet(c, `SELECT * FROM ${ident(this.view)}`, path, FAST_PARQUET));
  }

  /** Row objects; timestamps come as Date (batches carry ms numbers). */
  async toRows(): Promise<Array<Record<string, unknown>>> {
    const plan = await this.readPlan();
    const rows: Array<Record<string, unknown>> = [];
    for await (const b of this.batches()) {
      for (let i = 0; i < b.length; i++) {
        const r: Record<string, unknown> = {};
        for (const c of plan) {
          const v = b.columns[c.name][i];
          r[c.name] = c.kind === "ts" && v !== null ? new Date(v as number) : v;
        }
        rows.push(r);
      }
    }
    return rows;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.duck.run(`DROP VIEW IF EXISTS ${ident(this.view)}`);
    for (const t of this.tables) await this.duck.run(`DROP TABLE IF EXISTS ${ident(t)}`);
  }
}

const FAMILY_TARGET: Partial<Record<TypeFamily, ColumnTarget>> = {
  int: "int64",
  float: "float64",
  string: "string",
  bool: "bool",
  bytes: "bytes",
  timestamp: "timestamp",
  date: "timestamp",
};

/** How JS values are checked before being cast to an existing file column's type (no silent rounding). */
function targetForFileType(t: string): ColumnTarget {
  const el = listElementType(t);
  if (el !== null) {
    const inner = FAMILY_TARGET[typeFamily(el)];
    if (inner === undefined || inner === "infer") return "infer";
    return inner === "timestamp" ? "unix_timestamp[]" : (`${inner}[]` as ColumnTarget);
  }
  return FAMILY_TARGET[typeFamily(t)] ?? "infer";
}

class DuckDBOfflineStore implements OfflineStore {
  constructor(private readonly duck: OfflineDuckDB) {}

  async getHistoricalFeatures(req: HistoricalRequest): Promise<RetrievalJob> {
    const tsColumn = req.timestampColumn ?? "event_timestamp";
    if (req.views.length === 0) throw new ValidationError("getHistoricalFeatures: no feature views requested");
    const entityTable = this.duck.uniqueName("entity");
    const entityCols = await loadEntityDf(this.duck, req.entityDf, entityTable, tsColumn);
    try {
      const taken = new Map<string, string>(entityCols.map((c) => [c.name, "an entity df column"]));
      const views: PitView[] = [];
      for (const { view, features } of req.views) {
        const owner = viewOwner(view);
        const source = batchSourceOf(view);
        const { loc, columns } = await describeSource(this.duck, source, owner);
        const read = resolveSourceRead(view, source, loc, columns);
        const keys = read.keys.map((k) => {
          const ec = entityCols.find((c) => c.name === k.name);
          if (!ec)
            throw new ValidationError(
              `${owner}: the entity df has no join key column "${k.name}" (entity df columns: ${describeColumns(entityCols)})`,
            );
          if (!joinTypesComparable(ec.type, k.type)) {
            throw new ValidationError(
              `${owner}: join key "${k.name}" is ${ec.type} in the entity df but ${k.type} in ${sourceLabel(loc)}; they cannot be compared`,
            );
          }
          return { entityColumn: k.name, sourceColumn: k.raw };
        });
        const feats = features.map((f) => {
          if (!view.features.some((vf) => vf.name === f.name)) {
            throw new ValidationError(
              `${owner} has no feature "${f.name}" (features: ${view.features.map((x) => x.name).join(", ")})`,
            );
          }
          const col = requireColumn(columns, source, loc, f.name, "feature", owner);
          const prior = taken.get(f.outputName);
          if (prior)
            throw new ValidationError(
              `${owner}: output column "${f.outputName}" clashes with ${prior}; use full feature names (view__feature)`,
            );
          taken.set(f.outputName, `feature "${f.name}" of ${owner}`);
          return { sourceColumn: col.name, outputName: f.outputName };
        });
        // a view asked for no features adds no columns (its source was still checked above)
        if (feats.length > 0)
          views.push({
            relation: sourceRelation(loc, true),
            rowId: rowIdExpr(loc),
            keys,
            tsExpr: read.tsExpr,
            createdExpr: read.createdExpr,
            features: feats,
            ttlSeconds: view.ttlSeconds,
          });
      }
      const sql = pitSql({
        entityTable,
        entityColumns: entityCols.map((c) => c.name),
        timestampColumn: tsColumn,
        views,
        filterByCreatedTimestamp: req.filterByCreatedTimestamp ?? false,
      });
      const resultView = this.duck.uniqueName("result");
      await this.duck.run(`CREATE VIEW ${ident(resultView)} AS ${sql}`);
      return new DuckRetrievalJob(this.duck, resultView, [entityTable]);
    } catch (e) {
      await this.duck.run(`DROP TABLE IF EXISTS ${ident(entityTable)}`);
      throw e;
    }
  }

  async pullLatest(
    view: FeatureViewSpec,
    startMs: number,
    endMs: number,
    opts: { batchSize?: number } = {},
  ): Promise<PullLatestResult> {
    const owner = viewOwner(view);
    const source = batchSourceOf(view);
    const { loc, columns } = await describeSource(this.duck, source, owner);
    const read = resolveSourceRead(view, source, loc, columns);
    const feats = view.features.map((f) => ({
      name: f.name,
      raw: requireColumn(columns, source, loc, f.name, "feature", owner).name,
    }));
    const keyNames = read.keys.map((k) => ident(k.name));
    const narrow = [
      ...read.keys.map((k) => `${ident(k.raw)} AS ${ident(k.name)}`),
      `${read.tsExpr} AS __ts`,
      `${read.createdExpr ?? "NULL::TIMESTAMP"} AS __cr`,
      `${rowIdExpr(loc)} AS __rid`,
    ];
    const wide = [...narrow, ...feats.map((f) => `${ident(f.raw)} AS ${ident(f.name)}`)];
    const inWindow = `__ts BETWEEN ${timestampLiteral(startMs)} AND ${timestampLiteral(endMs)} AND ${keyNames.map((k) => `${k} IS NOT NULL`).join(" AND ")}`;
    const rel = sourceRelation(loc, true);
    // Two passes: a narrow aggregate picks the winning row id per entity (event time in the high 64 bits of
    // a HUGEINT order, created time, a missing one lowest, in the low 64), then a semi join fetches those
    // rows. Cheaper than arg_max of a struct of the row or a window (QUALIFY row_number) over all columns,
    // which carry every feature through the aggregate, and exactly one row per entity even on full ties.
    const order = read.createdExpr
      ? "(epoch_us(__ts)::HUGEINT * 18446744073709551616 + coalesce(epoch_us(__cr)::HUGEINT, -9223372036854775807::HUGEINT) + 9223372036854775808::HUGEINT)"
      : "__ts";
    const winners = `SELECT arg_max(__rid, ${order}) AS __rid FROM (SELECT ${narrow.join(", ")} FROM ${rel}) WHERE ${inWindow} GROUP BY ${keyNames.join(", ")}`;
    // the winners go to a temp table first: its size is the row count (for progress), and the rows can
    // then be streamed while the online store writes them
    const latestOf = (
      rids: string,
    ) => `SELECT ${[...keyNames, ...feats.map((f) => ident(f.name)), "__ts", "__cr"].join(", ")}
      FROM (SELECT ${wide.join(", ")} FROM ${rel}) w
      WHERE ${inWindow} AND w.__rid IN (${rids})
      ORDER BY ${keyNames.map((k) => `CAST(${k} AS VARCHAR)`).join(", ")}`;
    const latest = latestOf("SELECT __rid FROM __fstore_winners");
    // Rows come out in the text order of their keys (as online stores spell them): a B-tree store then
    // appends or sweeps forward instead of dirtying a random page per row. DuckDB sorts larger-than-memory
    // on disk.
    const setup = [`CREATE TEMP TABLE __fstore_winners AS ${winners}`];
    const outCols: ColumnInfo[] = (await this.duck.describe(`(${latestOf(winners)})`)).filter(
      (c) => c.name !== "__ts" && c.name !== "__cr",
    );
    const plan: ReadColumn[] = [
      ...readPlan(outCols),
      { name: "__event_ts", kind: "f64", duckType: "DOUBLE", expr: "CAST(epoch_ms(__ts) AS DOUBLE) AS __event_ts" },
      {
        name: "__created_ts",
        kind: "f64",
        duckType: "DOUBLE",
        expr: "coalesce(CAST(epoch_ms(__cr) AS DOUBLE), 0) AS __created_ts",
      },
    ];
    return countedBatches(
      this.duck,
      setup,
      "SELECT count(*) FROM __fstore_winners",
      readSql(plan, `(${latest})`),
      plan,
      opts.batchSize ?? DEFAULT_BATCH,
      ["DROP TABLE IF EXISTS __fstore_winners"],
    );
  }

  async validateView(view: FeatureViewSpec): Promise<void> {
    const owner = viewOwner(view);
    const source = batchSourceOf(view);
    const { loc, columns } = await describeSource(this.duck, source, owner);
    resolveSourceRead(view, source, loc, columns);
    requireTimestampTypes(view, source, loc, columns);
    const check = (name: string, dtype: FeatureViewSpec["features"][number]["dtype"], role: string): void => {
      const col = requireColumn(columns, source, loc, name, role, owner);
      if (!compatibleWithDtype(dtype, col.type)) {
        const label = col.name === name ? `"${name}"` : `"${col.name}" (mapped to "${name}")`;
        throw new ValidationError(
          `${owner}: column ${label} in ${sourceLabel(loc)} is ${col.type} but the schema says ${dtype}`,
        );
      }
    };
    for (const k of view.entityColumns) check(k.name, k.dtype, "join key");
    for (const f of view.features) check(f.name, f.dtype, "feature");
  }

  async appendRows(source: FileSourceSpec, rows: ColumnBatch): Promise<void> {
    const owner = `source "${source.name}"`;
    const loc = locateSource(source);
    if (loc.kind === "glob")
      throw new ValidationError(
        `${owner}: cannot append to glob ${loc.path}; point the source at a parquet file or a folder`,
      );
    if (rows.length === 0) return;
    // existing columns and types, when there is data already
    let existing: ColumnInfo[] | null = null;
    const hasData = existsSync(loc.path);
    if (hasData) {
      try {
        existing = (await describeSource(this.duck, source, owner)).columns;
      } catch (e) {
        if (!(loc.kind === "folder" && e instanceof ValidationError && /no parquet files/.test(e.message))) throw e;
      }
    }
    const timeCols = new Set([
      source.timestampField,
      ...(source.createdTimestampColumn ? [source.createdTimestampColumn] : []),
    ]);
    // batch columns by raw file name
    const byRaw = new Map<string, ArrayLike<unknown>>();
    for (const [name, values] of Object.entries(rows.columns)) {
      if (values.length !== rows.length)
        throw new ValidationError(`${owner}: column "${name}" has ${values.length} values, expected ${rows.length}`);
      byRaw.set(timeCols.has(name) ? name : rawColumnOf(source, name), values);
    }
    if (!byRaw.has(source.timestampField)) {
      throw new ValidationError(
        `${owner}: rows to append lack the timestamp column "${source.timestampField}" (columns: ${[...Object.keys(rows.columns)].join(", ")})`,
      );
    }
    const what = `appending to ${loc.path}`;
    const table = this.duck.uniqueName("append");
    let targets: Array<{ name: string; target: ColumnTarget; castTo: string | null }>;
    if (existing) {
      const fileCols = existing;
      const unknown = [...byRaw.keys()].filter((n) => !fileCols.some((c) => c.name === n));
      if (unknown.length > 0)
        throw new ValidationError(
          `${owner}: columns ${unknown.map((n) => `"${n}"`).join(", ")} are not in ${loc.path} (columns: ${describeColumns(fileCols)})`,
        );
      targets = fileCols.map((c) => {
        return { name: c.name, target: targetForFileType(c.type), castTo: c.type };
      });
    } else {
      targets = [...byRaw.keys()].map((n) => ({
        name: n,
        target: timeCols.has(n) ? "timestamp" : "infer",
        castTo: null,
      }));
    }
    const cols = targets.map((t) =>
      prepareColumn(t.name, byRaw.get(t.name) ?? new Array<null>(rows.length).fill(null), t.target, what),
    );
    await this.duck.use(async (conn) => {
      await loadColumns(conn, table, cols, rows.length);
      try {
        const select = `SELECT ${targets.map((t) => (t.castTo ? `CAST(${ident(t.name)} AS ${t.castTo}) AS ${ident(t.name)}` : ident(t.name))).join(", ")} FROM ${ident(table)}`;
        if (loc.kind === "file") {
          const all = existing ? `SELECT * FROM read_parquet(${sqlString(loc.path)}) UNION ALL ${select}` : select;
          await copyToParquet(conn, all, loc.path);
        } else {
          mkdirSync(loc.path, { recursive: true });
          const part = join(loc.path, `part-${Date.now()}-${randomBytes(4).toString("hex")}.parquet`);
          // written under a name the folder glob does not match, then renamed: readers never see half a file
          const tmp = join(loc.path, `.${randomBytes(6).toString("hex")}.tmp`);
          try {
            await conn.run(`COPY (${select}) TO ${sqlString(tmp)} (FORMAT parquet)`);
            renameSync(tmp, part);
          } catch (e) {
            rmSync(tmp, { force: true });
            throw e;
          }
        }
      } catch (e) {
        if (e instanceof ValidationError) throw e;
        const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
        throw new ValidationError(`${owner}: cannot append to ${loc.path}: ${msg}`, { cause: e });
      } finally {
        await conn.run(`DROP TABLE IF EXISTS ${ident(table)}`);
      }
    });
  }

  async close(): Promise<void> {
    await this.duck.close();
  }
}

/** An offline store over one in-memory DuckDB instance (settings: feature_store.yaml offline_store); close() releases it. */
export async function createDuckDBOfflineStore(settings: DuckDBSettings = {}): Promise<OfflineStore> {
  return new DuckDBOfflineStore(await OfflineDuckDB.create(settings));
}
