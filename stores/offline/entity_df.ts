// Entity dataframes into DuckDB: rows, Arrow tables, parquet paths and SQL queries all become one table
// whose rowid is the input order and whose timestamp column is a UTC TIMESTAMP.
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { Table } from "apache-arrow";
import { ident, sqlString } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import type { EntityDfInput } from "../types.js";
import { arrowToPrepared } from "./arrow.js";
import type { ColumnInfo, OfflineDuckDB } from "./db.js";
import { describeColumns, timestampExpr } from "./duck_types.js";
import { loadColumns, prepareColumn, type PreparedColumn } from "./load.js";

const WHAT = "entity df";

function rowsToPrepared(rows: Array<Record<string, unknown>>, timestampColumn: string): PreparedColumn[] {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    if (r === null || typeof r !== "object")
      throw new ValidationError(`${WHAT}: every row must be an object of column values, got ${String(r)}`);
    for (const k of Object.keys(r)) {
      if (!seen.has(k)) {
        seen.add(k);
        names.push(k);
      }
    }
  }
  return names.map((n) =>
    prepareColumn(
      n,
      rows.map((r) => r[n]),
      n === timestampColumn ? "timestamp" : "infer",
      WHAT,
    ),
  );
}

/** Whether a string entity df names a parquet file or folder rather than being a SQL query. */
function looksLikePath(s: string): boolean {
  const t = s.trim();
  return /\.parquet$/i.test(t) || (!/\s/.test(t) && existsSync(t));
}

/**
 * Load the entity df into table `table` (input order = rowid). The timestamp column keeps its place and
 * becomes a TIMESTAMP. Returns the table's columns.
 */
export async function loadEntityDf(
  duck: OfflineDuckDB,
  input: EntityDfInput,
  table: string,
  timestampColumn: string,
): Promise<ColumnInfo[]> {
  let relation: string;
  let staged: string | null = null;
  if (typeof input === "string") {
    if (looksLikePath(input)) {
      const p = resolve(input.trim());
      if (!existsSync(p)) throw new ValidationError(`${WHAT}: parquet file ${p} does not exist`);
      relation = statSync(p).isDirectory()
        ? `read_parquet(${sqlString(join(p, "**", "*.parquet"))}, union_by_name = true)`
        : `read_parquet(${sqlString(p)})`;
    } else {
      relation = `(${input.trim().replace(/;+\s*$/, "")})`;
    }
  } else {
    const cols =
      input instanceof Table
        ? arrowToPrepared(input, timestampColumn, WHAT)
        : Array.isArray(input)
          ? rowsToPrepared(input, timestampColumn)
          : null;
    if (cols === null)
      throw new ValidationError(
        `${WHAT}: expected an array of row objects, an Arrow table, a parquet path or a SQL query`,
      );
    const length = input instanceof Table ? input.numRows : (input as unknown[]).length;
    if (cols.length === 0)
      throw new ValidationError(`${WHAT}: it has no columns (it needs the join keys and "${timestampColumn}")`);
    staged = `${table}_in`;
    await duck.use((c) => loadColumns(c, staged as string, cols, length));
    relation = ident(staged);
  }
  try {
    let columns: ColumnInfo[];
    try {
      columns = await duck.describe(relation);
    } catch (e) {
      const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
      throw new ValidationError(
        `${WHAT}: cannot read ${typeof input === "string" ? JSON.stringify(input.length > 200 ? `${input.slice(0, 200)}...` : input) : "input"}: ${msg}`,
        { cause: e },
      );
    }
    const ts = columns.find((c) => c.name === timestampColumn);
    if (!ts)
      throw new ValidationError(
        `${WHAT}: no timestamp column "${timestampColumn}" (columns: ${describeColumns(columns)})`,
      );
    if (columns.some((c) => c.name.toLowerCase() === "rowid"))
      throw new ValidationError(`${WHAT}: a column may not be named "rowid" (DuckDB reserves it)`);
    const tsExpr = timestampExpr(ident(ts.name), ts.type);
    if (tsExpr === null)
      throw new ValidationError(
        `${WHAT}: timestamp column "${timestampColumn}" is ${ts.type}, expected a TIMESTAMP, DATE, ISO-8601 string or ms since the epoch`,
      );
    const select = tsExpr === ident(ts.name) ? "*" : `* REPLACE (${tsExpr} AS ${ident(ts.name)})`;
    try {
      await duck.run(`CREATE OR REPLACE TABLE ${ident(table)} AS SELECT ${select} FROM ${relation}`);
    } catch (e) {
      const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
      throw new ValidationError(`${WHAT}: cannot read timestamp column "${timestampColumn}" (${ts.type}): ${msg}`, {
        cause: e,
      });
    }
    return duck.describe(ident(table));
  } finally {
    if (staged) await duck.run(`DROP TABLE IF EXISTS ${ident(staged)}`);
  }
}
