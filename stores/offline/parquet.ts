// writeParquet: JS rows or columns -> a parquet file with exact column types, through DuckDB.
import { mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ident, openDuckDB, sqlString } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import { isDtype, type Dtype } from "../../registry/types.js";
import type { ColumnBatch } from "../types.js";
import { prepareColumn, stageColumns, type PreparedColumn } from "./load.js";

export type ParquetColumnType = Dtype | "timestamp";

function isColumnBatch(data: Array<Record<string, unknown>> | ColumnBatch): data is ColumnBatch {
  return !Array.isArray(data);
}

/** Columns of `data` in the order of `types`; every column of the data needs a type. */
export function prepareColumns(
  data: Array<Record<string, unknown>> | ColumnBatch,
  types: Record<string, ParquetColumnType>,
  what: string,
): { cols: PreparedColumn[]; length: number } {
  for (const [name, t] of Object.entries(types)) {
    if (t !== "timestamp" && !isDtype(t))
      throw new ValidationError(
        `${what}: column "${name}" has unknown type "${String(t)}" (expected a dtype such as int64, float32[], or "timestamp")`,
      );
  }
  const names = Object.keys(types);
  if (names.length === 0) throw new ValidationError(`${what}: no columns given`);
  let length: number;
  let columnOf: (name: string) => ArrayLike<unknown>;
  if (isColumnBatch(data)) {
    length = data.length;
    for (const name of Object.keys(data.columns)) {
      if (!(name in types))
        throw new ValidationError(`${what}: column "${name}" has no type (typed columns: ${names.join(", ")})`);
    }
    for (const name of names) {
      const col = data.columns[name];
      if (col !== undefined && col.length !== length)
        throw new ValidationError(`${what}: column "${name}" has ${col.length} values, expected ${length}`);
    }
    columnOf = (name) => data.columns[name] ?? new Array<null>(length).fill(null);
  } else {
    length = data.length;
    const known = new Set(names);
    for (let i = 0; i < data.length; i++) {
      for (const k of Object.keys(data[i])) {
        if (!known.has(k))
          throw new ValidationError(
            `${what}: row ${i} has column "${k}" with no type (typed columns: ${names.join(", ")})`,
          );
      }
    }
    columnOf = (name) => data.map((r) => r[name]);
  }
  return { cols: names.map((n) => prepareColumn(n, columnOf(n), types[n], what)), length };
}

/**
 * Parquet writer options for wide numeric results: no dictionary attempts. DuckDB's writer tries (and
 * abandons) a dictionary per column, which costs it much time on high-cardinality floats and saves little
 * size.
 */
export const FAST_PARQUET = "DICTIONARY_SIZE_LIMIT 0";

/** COPY a relation to a parquet file atomically (temp file in the same folder, then rename). */
export async function copyToParquet(
  conn: DuckDBConnection,
  selectSql: string,
  path: string,
  options = "",
): Promise<void> {
  const target = resolve(path);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await conn.run(`COPY (${selectSql}) TO ${sqlString(tmp)} (FORMAT parquet${options ? `, ${options}` : ""})`);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Write rows or columns to `path` on an existing connection. */
export async function writeParquetWith(
  conn: DuckDBConnection,
  path: string,
  data: Array<Record<string, unknown>> | ColumnBatch,
  types: Record<string, ParquetColumnType>,
): Promise<void> {
  const { cols, length } = prepareColumns(data, types, `writing ${path}`);
  const stage = `__fs_write_${randomBytes(4).toString("hex")}`;
  try {
    const select = await stageColumns(conn, stage, cols, length);
    await copyToParquet(conn, select, path);
  } finally {
    await conn.run(`DROP TABLE IF EXISTS ${ident(stage)}`);
  }
}

/**
 * Write a parquet file with exactly the given column types (columns in the order of `types`).
 * Timestamps ("timestamp" / "unix_timestamp") accept Date, ISO-8601 strings (no zone = UTC) and ms numbers
 * and are stored as TIMESTAMP (UTC, microseconds). Lists take arrays (or typed arrays).
 */
export async function writeParquet(
  path: string,
  data: Array<Record<string, unknown>> | ColumnBatch,
  types: Record<string, ParquetColumnType>,
): Promise<void> {
  const db = await openDuckDB();
  try {
    await writeParquetWith(db.connection, path, data, types);
  } finally {
    db.close();
  }
}
