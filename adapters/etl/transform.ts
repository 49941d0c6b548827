// Running a fitted workflow over a dataset and writing the result: the compiled query streamed to parquet with
// COPY (DuckDB spills to disk, so inputs may exceed memory), in group-by passes when a group by is too big for
// memory, laid out in partition and split folders, with schema.json beside the files.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ident, openDuckDB, sqlString } from "../../common/duckdb.js";
import { ValidationError, errorMessage } from "../../common/errors.js";
import { type ProgressSink, silentProgress } from "../../common/progress.js";
import { SCHEMA_FILE, type SchemaEntry, type TaggedColumn, schemaEntries } from "./columns.js";
import { firstGroupPasses, hasGroupby, passSources, retryWithMorePasses } from "./group_passes.js";
import { type Chain, compile, datasetColumns, needsRowOrder, requireRows, sqlContext, withFitTags } from "./plan.js";
import { type Dataset, describe, duckdbSettings, literal, sourceSql } from "./sql.js";

export interface Splits {
  train: number;
  valid?: number;
  test?: number;
}

export interface TransformOptions {
  /** a column of the output: one folder per value */
  partitionBy?: string;
  /** fractions per split (summing to 1); each partition is split the same way */
  splits?: Splits;
  /** order rows by this column to split (earliest rows train; with group-by passes, ranked within each pass);
   * default: a hash of the row (random, deterministic) */
  splitBy?: string;
  /** the data is training data: target encoding uses out-of-fold statistics */
  training?: boolean;
  progress?: ProgressSink;
  /** DuckDB memory limit, e.g. "1GB" (default: DuckDB's, 80% of RAM) */
  memoryLimit?: string;
  threads?: number;
  /**
   * Run a group by in this many passes, each over the groups with hash(key) % passes = i (list aggregates
   * cannot spill to disk). Default: one pass per ROWS_PER_GROUP_PASS_PER_GIB input rows per GiB of memoryLimit.
   */
  groupPasses?: number;
}

export interface TransformResult {
  outDir: string;
  rows: number;
  /** parquet files written, relative to outDir */
  files: string[];
  schema: SchemaEntry[];
}

/** Where rows go: partition folders by a column's value, split folders or files, or one file. */
interface OutputLayout {
  partitionBy: string | null;
  splits: Splits | null;
  splitBy: string | null;
  /** the output columns */
  names: string[];
}

/** Writes the transformed dataset as parquet under outDir, with schema.json. */
export async function transformDataset(
  chain: Chain,
  dataset: Dataset,
  outDir: string,
  opts: TransformOptions = {},
): Promise<TransformResult> {
  for (const op of chain.ops)
    if (op.needsFit && !op.fitted)
      throw new ValidationError(
        `Workflow: ${op.describe()} is not fitted; call fit(dataset) or Workflow.load(dir) first`,
      );
  const out = resolve(outDir);
  mkdirSync(out, { recursive: true });
  const settings = duckdbSettings({ memoryLimit: opts.memoryLimit, threads: opts.threads });
  const spill = mkdtempSync(join(tmpdir(), "fstore-spill-"));
  const duck = await openDuckDB({ ...settings, tempDirectory: spill });
  const conn = duck.connection;
  const training = opts.training ?? false;
  try {
    const input = withFitTags(chain, await datasetColumns(conn, dataset));
    const source = await sourceSql(conn, dataset, needsRowOrder(chain.ops));
    const inputRows = await requireRows(conn, source, dataset);
    const firstPasses = await firstGroupPasses(conn, chain.ops, inputRows, opts.groupPasses);
    const compiled = await compile(conn, chain.ops, source, input, chain.ops.length, sqlContext(chain, training));
    const types = new Map((await describe(conn, `(${compiled.sql})`, "workflow output")).map((t) => [t.name, t.type]));
    const schema = schemaEntries(compiled.columns, types);
    const names = compiled.columns.map((c) => c.name);
    if (opts.partitionBy && !names.includes(opts.partitionBy))
      throw new ValidationError(
        `transform: partitionBy column "${opts.partitionBy}" is not an output column (have: ${names.join(", ")})`,
      );
    if (opts.splitBy && !names.includes(opts.splitBy))
      throw new ValidationError(
        `transform: splitBy column "${opts.splitBy}" is not an output column (have: ${names.join(", ")})`,
      );
    const layout: OutputLayout = {
      partitionBy: opts.partitionBy || null,
      splits: opts.splits ? checkSplits(opts.splits) : null,
      splitBy: opts.splitBy || null,
      names,
    };

    // after a group by, row order means nothing: let DuckDB stream without keeping it (less memory, more parallel)
    if (hasGroupby(chain.ops)) await conn.run("SET preserve_insertion_order = false");
    let passes = firstPasses;
    let done: { rows: number; files: string[] } | null = null;
    while (!done) {
      try {
        done = await writePasses(conn, chain, {
          source,
          input,
          compiled: compiled.sql,
          passes,
          training,
          spill,
          dataset,
          out,
          layout,
          progress: opts.progress ?? silentProgress,
        });
      } catch (e) {
        if (!retryWithMorePasses(e, chain.ops, passes, inputRows, opts.groupPasses))
          throw e instanceof ValidationError
            ? e
            : new ValidationError(`transform of ${dataset}: ${errorMessage(e)}`, { cause: e });
        passes *= 2;
      }
    }
    const schemaJson = JSON.stringify({ columns: schema }, null, 2);
    writeFileSync(join(out, SCHEMA_FILE), schemaJson);
    if (layout.splits && !layout.partitionBy)
      for (const s of ["train", "valid", "test"])
        if (existsSync(join(out, s))) writeFileSync(join(out, s, SCHEMA_FILE), schemaJson);
    return { outDir: out, rows: done.rows, files: done.files, schema };
  } finally {
    duck.close();
    rmSync(spill, { recursive: true, force: true });
  }
}

/** One attempt at writing the output in `passes` passes; on failure the files it wrote are removed. */
async function writePasses(
  conn: DuckDBConnection,
  chain: Chain,
  w: {
    source: string;
    input: TaggedColumn[];
    compiled: string;
    passes: number;
    training: boolean;
    spill: string;
    dataset: Dataset;
    out: string;
    layout: OutputLayout;
    progress: ProgressSink;
  },
): Promise<{ rows: number; files: string[] }> {
  const { passes, out, layout, progress } = w;
  progress.start("etl transform", 100 * passes);
  let rows = 0;
  const files: string[] = [];
  const sources = await passSources(conn, chain, w.source, w.input, w.compiled, w);
  try {
    for (let pass = 0; pass < passes; pass++) {
      const sql = await sources.sql(pass);
      if (sql === null) continue;
      const { query, partCols } = layoutQuery(sql, layout);
      const staging = partCols.length ? join(out, `.staging-${process.pid}-${pass}`) : null;
      const fileName = passes === 1 ? "part_0.parquet" : `part_${pass}.parquet`;
      const target = staging ?? join(out, fileName);
      const copy = `COPY (${query}) TO ${sqlString(target)} (FORMAT parquet${partCols.length ? `, PARTITION_BY (${partCols.join(", ")}), OVERWRITE_OR_IGNORE true` : ""})`;
      const timer = setInterval(() => {
        const p = conn.progress.percentage;
        if (p >= 0) progress.tick(100 * pass + Math.floor(p));
      }, 250);
      try {
        const r = await conn.runAndReadAll(copy);
        rows += Number(r.getRowObjectsJS()[0]?.Count ?? 0);
      } catch (e) {
        if (staging) rmSync(staging, { recursive: true, force: true });
        throw e;
      } finally {
        clearInterval(timer);
      }
      progress.tick(100 * (pass + 1));
      if (staging) {
        files.push(...arrangePartitions(staging, out, layout, passes === 1 ? null : pass));
        rmSync(staging, { recursive: true, force: true });
      } else {
        files.push(fileName);
      }
    }
  } catch (e) {
    for (const f of files) rmSync(join(out, f), { force: true });
    throw e;
  } finally {
    if (sources.buckets) rmSync(sources.buckets, { recursive: true, force: true });
    progress.stop();
  }
  return { rows, files };
}

/** The query with the hidden __part / __split columns COPY partitions by, and their names. */
function layoutQuery(query: string, layout: OutputLayout): { query: string; partCols: string[] } {
  const { partitionBy, splits, splitBy } = layout;
  const partCols: string[] = [];
  if (!partitionBy && !splits) return { query, partCols };
  const extra: string[] = [];
  if (partitionBy) {
    extra.push(`${ident(partitionBy)} AS __part`);
    partCols.push("__part");
  }
  if (splits) {
    const r = splitBy
      ? `percent_rank() OVER (${partitionBy ? `PARTITION BY ${ident(partitionBy)} ` : ""}ORDER BY ${ident(splitBy)})`
      : `(hash(${layout.names.map(ident).join(", ")}) % 1000000) / 1000000.0`;
    const t = splits.train;
    const v = t + (splits.valid ?? 0);
    extra.push(
      `CASE WHEN __r < ${literal(t)} THEN 'train' WHEN __r < ${literal(v)} THEN 'valid' ELSE 'test' END AS __split`,
    );
    partCols.push("__split");
    return {
      query: `SELECT * EXCLUDE (__r), ${extra.join(", ")} FROM (SELECT *, ${r} AS __r FROM (${query}))`,
      partCols,
    };
  }
  return { query: `SELECT *, ${extra.join(", ")} FROM (${query})`, partCols };
}

function checkSplits(s: Splits): Splits {
  const parts = [s.train, s.valid ?? 0, s.test ?? 0];
  if (parts.some((x) => typeof x !== "number" || x < 0 || x > 1))
    throw new ValidationError(`transform: split fractions must be numbers in [0, 1], got ${JSON.stringify(s)}`);
  const sum = parts.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-9) throw new ValidationError(`transform: split fractions must sum to 1, got ${sum}`);
  return s;
}

/** DuckDB's __part=V/__split=S/data_i.parquet becomes V/S.parquet (notebook 004's layout), <col>=V/part_i.parquet, or S/part_i.parquet. */
function arrangePartitions(staging: string, out: string, layout: OutputLayout, pass: number | null): string[] {
  const { partitionBy } = layout;
  const split = layout.splits !== null;
  const files: string[] = [];
  const walk = (dir: string, keys: Record<string, string>) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        const m = /^(__part|__split)=(.*)$/.exec(name);
        walk(p, m ? { ...keys, [m[1]]: decodeURIComponent(m[2]) } : keys);
      } else if (name.endsWith(".parquet")) {
        const n = Number(/(\d+)\.parquet$/.exec(name)?.[1] ?? 0);
        // several passes write into the same folders: their files carry the pass number
        const i = pass === null ? n : `${pass}${n ? `_${n}` : ""}`;
        let rel: string;
        if (partitionBy && split)
          rel = join(keys.__part, i === 0 ? `${keys.__split}.parquet` : `${keys.__split}_${i}.parquet`);
        else if (partitionBy) rel = join(`${partitionBy}=${keys.__part}`, `part_${i}.parquet`);
        else rel = join(keys.__split, `part_${i}.parquet`);
        mkdirSync(dirname(join(out, rel)), { recursive: true });
        renameSync(p, join(out, rel));
        files.push(rel);
      }
    }
  };
  walk(staging, {});
  return files.sort();
}
