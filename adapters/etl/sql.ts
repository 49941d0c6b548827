// DuckDB plumbing for the ETL: value literals, opening a dataset (parquet file/folder/glob or CSV) as a relation,
// running statements with errors that name the dataset, and reading small results as plain rows.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { type DuckDBSettings, parseByteSize, sqlString } from "../../common/duckdb.js";
import { ValidationError, errorMessage } from "../../common/errors.js";

import type { Row } from "../../common/expr.js";
export { literal, type Row, type Value } from "../../common/expr.js";

/** A path to a parquet file, a folder of parquet files (searched recursively), a glob, or a .csv/.tsv file. */
export type Dataset = string;

/** The FROM-clause text reading a dataset. Throws a ValidationError naming the path when nothing is there. */
export function datasetSql(dataset: Dataset): string {
  const p = resolve(dataset);
  const isGlob = /[*?[]/.test(dataset);
  if (!isGlob && !existsSync(p)) throw new ValidationError(`dataset ${dataset}: no such file or folder`);
  if (!isGlob && statSync(p).isDirectory()) {
    if (!hasParquet(p)) throw new ValidationError(`dataset ${dataset}: the folder holds no .parquet files`);
    return `read_parquet(${sqlString(join(p, "**", "*.parquet"))}, hive_partitioning = false, union_by_name = true)`;
  }
  if (/\.(csv|tsv)(\.gz)?$/i.test(dataset)) return `read_csv(${sqlString(isGlob ? dataset : p)}, header = true)`;
  return `read_parquet(${sqlString(isGlob ? dataset : p)}, union_by_name = true)`;
}

function hasParquet(dir: string): boolean {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name.endsWith(".parquet")) return true;
    if (statSync(p).isDirectory() && hasParquet(p)) return true;
  }
  return false;
}

/**
 * The dataset as a relation (text for a FROM clause). With rowOrder, a BIGINT column __row numbers the rows in
 * input order (file by file, sorted by path, then row within file): sorts use it to break ties the way the
 * online path does (input order).
 */
export async function sourceSql(conn: DuckDBConnection, dataset: Dataset, rowOrder: boolean): Promise<string> {
  const from = datasetSql(dataset);
  if (!rowOrder) return from;
  if (from.startsWith("read_csv")) return `(SELECT *, CAST(row_number() OVER () - 1 AS BIGINT) AS __row FROM ${from})`;
  const pattern = statSync(resolve(dataset), { throwIfNoEntry: false })?.isDirectory()
    ? join(resolve(dataset), "**", "*.parquet")
    : /[*?[]/.test(dataset)
      ? dataset
      : resolve(dataset);
  const files = (
    await queryRows(conn, `SELECT file FROM glob(${sqlString(pattern)}) ORDER BY file`, `dataset ${dataset}`)
  ).map((r) => String(r.file));
  if (files.length === 0) throw new ValidationError(`dataset ${dataset}: no parquet files match`);
  const parts = files.map(
    (f, i) =>
      `SELECT * EXCLUDE (file_row_number), (CAST(${i} AS BIGINT) << 40) + file_row_number AS __row FROM read_parquet(${sqlString(f)}, file_row_number = true)`,
  );
  return `(${parts.join(" UNION ALL BY NAME ")})`;
}

/** DuckDB settings from the ETL's options (a memory limit as text, e.g. "1GB"); a limit that is not a size is a clear error. */
export function duckdbSettings(o: { memoryLimit?: string; threads?: number; tempDirectory?: string }): DuckDBSettings {
  const settings: DuckDBSettings = {};
  if (o.memoryLimit) {
    const bytes = parseByteSize(o.memoryLimit);
    if (bytes === undefined)
      throw new ValidationError(
        `memoryLimit ${JSON.stringify(o.memoryLimit)} is not a size: expected e.g. "512MB", "4GB" or "2GiB"`,
      );
    settings.memoryLimitBytes = bytes;
  }
  if (o.threads) settings.threads = o.threads;
  if (o.tempDirectory) settings.tempDirectory = o.tempDirectory;
  return settings;
}

/** Runs a statement; a DuckDB error becomes a ValidationError that says what was being done. */
export async function exec(conn: DuckDBConnection, sql: string, what: string): Promise<void> {
  try {
    await conn.run(sql);
  } catch (e) {
    throw new ValidationError(`${what}: ${errorMessage(e)}`, { cause: e });
  }
}

export async function queryRows(conn: DuckDBConnection, sql: string, what: string): Promise<Row[]> {
  try {
    const r = await conn.runAndReadAll(sql);
    return r.getRowObjectsJS() as Row[];
  } catch (e) {
    throw new ValidationError(`${what}: ${errorMessage(e)}`, { cause: e });
  }
}

export interface ColumnType {
  name: string;
  /** DuckDB type text, e.g. BIGINT, VARCHAR, DOUBLE[] */
  type: string;
}

export async function describe(conn: DuckDBConnection, fromSql: string, what: string): Promise<ColumnType[]> {
  const rows = await queryRows(conn, `DESCRIBE SELECT * FROM ${fromSql}`, what);
  return rows.map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
}

/** Opens the dataset as a relation and checks it can be read and has columns: clear errors for bad files. */
export async function describeDataset(conn: DuckDBConnection, dataset: Dataset): Promise<ColumnType[]> {
  const from = datasetSql(dataset);
  return describe(conn, from, `cannot read dataset ${dataset}`);
}
