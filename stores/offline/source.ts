// File sources: where the parquet lives, how to read it, and how view names map to raw columns.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { ident, sqlString } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import type { FeatureViewSpec, FileSourceSpec } from "../../registry/types.js";
import type { ColumnInfo, OfflineDuckDB } from "./db.js";
import { describeColumns, timestampExpr, typeFamily } from "./duck_types.js";

export type SourceLocation = { kind: "file" | "folder" | "glob"; path: string; pattern: string };

const GLOB_CHARS = /[*?[{]/;

/** Where a file source's data is: a parquet file, a folder (all parquet files below it) or a glob. */
export function locateSource(source: FileSourceSpec): SourceLocation {
  const p = source.path;
  if (GLOB_CHARS.test(p)) return { kind: "glob", path: p, pattern: p };
  const folder = existsSync(p) ? statSync(p).isDirectory() : !/\.parquet$/i.test(p);
  // a path that does not exist yet is a folder unless it names a .parquet file
  return folder
    ? { kind: "folder", path: p, pattern: join(p, "**", "*.parquet") }
    : { kind: "file", path: p, pattern: p };
}

/**
 * The table function reading a source (union by name so part files may differ in column order). With
 * `rowIds`, it also yields `__fs_rid`-able columns: file_row_number, and __fs_file for multi-file sources.
 */
export function sourceRelation(loc: SourceLocation, rowIds = false): string {
  const opts = [
    sqlString(loc.pattern),
    ...(loc.kind === "file" ? [] : ["union_by_name = true"]),
    ...(rowIds ? ["file_row_number = true", ...(loc.kind === "file" ? [] : ["filename = '__fs_file'"])] : []),
  ];
  return `read_parquet(${opts.join(", ")})`;
}

/** SQL naming one source row uniquely (needs sourceRelation(loc, true)): a row number, plus a file hash. */
export function rowIdExpr(loc: SourceLocation): string {
  return loc.kind === "file"
    ? "file_row_number"
    : "((hash(__fs_file) >> 1)::HUGEINT * 18446744073709551616 + file_row_number)";
}

/** The error-message name of a source's data. */
export function sourceLabel(loc: SourceLocation): string {
  return loc.path;
}

/** Read a source's columns; a missing or unreadable source is a ValidationError naming `owner` and the path. */
export async function describeSource(
  duck: OfflineDuckDB,
  source: FileSourceSpec,
  owner: string,
): Promise<{ loc: SourceLocation; columns: ColumnInfo[] }> {
  const loc = locateSource(source);
  if (loc.kind === "file" && !existsSync(loc.path)) {
    throw new ValidationError(`${owner}: source file ${loc.path} does not exist (source "${source.name}")`);
  }
  if (loc.kind === "folder" && !existsSync(loc.path)) {
    throw new ValidationError(`${owner}: source folder ${loc.path} does not exist (source "${source.name}")`);
  }
  try {
    const columns = await duck.describe(sourceRelation(loc));
    return { loc, columns };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/No files found/i.test(msg))
      throw new ValidationError(`${owner}: no parquet files match ${loc.pattern} (source "${source.name}")`, {
        cause: e,
      });
    throw new ValidationError(
      `${owner}: cannot read ${loc.path} as parquet (source "${source.name}"): ${msg.split("\n")[0]}`,
      { cause: e },
    );
  }
}

/** The raw file column holding view-level name `name` (fieldMapping maps raw -> name). */
export function rawColumnOf(source: FileSourceSpec, name: string): string {
  for (const [raw, mapped] of Object.entries(source.fieldMapping)) if (mapped === name) return raw;
  return name;
}

/** A raw-or-mapped column name as found in the file: the raw name itself, else the raw column mapped to it. */
function findColumn(columns: ColumnInfo[], source: FileSourceSpec, name: string): ColumnInfo | undefined {
  return columns.find((c) => c.name === name) ?? columns.find((c) => c.name === rawColumnOf(source, name));
}

function columnLabel(source: FileSourceSpec, name: string): string {
  const raw = rawColumnOf(source, name);
  return raw === name ? `"${name}"` : `"${raw}" (mapped to "${name}")`;
}

/** A needed source column, or a ValidationError naming the view, file and the columns there are. */
export function requireColumn(
  columns: ColumnInfo[],
  source: FileSourceSpec,
  loc: SourceLocation,
  name: string,
  role: string,
  owner: string,
  byRawName = false,
): ColumnInfo {
  const found = byRawName
    ? findColumn(columns, source, name)
    : columns.find((c) => c.name === rawColumnOf(source, name));
  if (!found) {
    throw new ValidationError(
      `${owner}: ${role} column ${columnLabel(source, name)} not found in ${sourceLabel(loc)} (columns: ${describeColumns(columns)})`,
    );
  }
  return found;
}

/** What a view reads from its source, with SQL for each piece. */
export interface SourceRead {
  loc: SourceLocation;
  columns: ColumnInfo[];
  /** join keys as named in the view, with their file types */
  keys: Array<{ name: string; raw: string; type: string }>;
  /** event timestamp as a TIMESTAMP expression over the raw file columns */
  tsExpr: string;
  /** created timestamp as a TIMESTAMP expression, or null when the source has none */
  createdExpr: string | null;
}

export function viewOwner(view: FeatureViewSpec): string {
  return `feature view "${view.name}"`;
}

/** Resolve the key and timestamp columns of a view's source; features are checked by the caller. */
export function resolveSourceRead(
  view: FeatureViewSpec,
  source: FileSourceSpec,
  loc: SourceLocation,
  columns: ColumnInfo[],
): SourceRead {
  const owner = viewOwner(view);
  const keys = view.entityColumns.map((k) => {
    const col = requireColumn(columns, source, loc, k.name, "join key", owner);
    return { name: k.name, raw: col.name, type: col.type };
  });
  const tsCol = requireColumn(columns, source, loc, source.timestampField, "timestamp", owner, true);
  const tsExpr = timestampExpr(ident(tsCol.name), tsCol.type);
  if (tsExpr === null)
    throw new ValidationError(
      `${owner}: timestamp column "${tsCol.name}" in ${sourceLabel(loc)} is ${tsCol.type}, which is not a timestamp (expected TIMESTAMP, DATE, an ISO-8601 string or ms since the epoch)`,
    );
  let createdExpr: string | null = null;
  if (source.createdTimestampColumn) {
    const cCol = requireColumn(columns, source, loc, source.createdTimestampColumn, "created timestamp", owner, true);
    createdExpr = timestampExpr(ident(cCol.name), cCol.type);
    if (createdExpr === null)
      throw new ValidationError(
        `${owner}: created timestamp column "${cCol.name}" in ${sourceLabel(loc)} is ${cCol.type}, which is not a timestamp`,
      );
  }
  return { loc, columns, keys, tsExpr, createdExpr };
}

/**
 * At apply, a source's event and created timestamp columns must be TIMESTAMP or DATE columns: text or numbers
 * would be parsed row by row at materialize, where one unreadable value fails the run after other views were
 * written (and a number of seconds would pass for milliseconds).
 */
export function requireTimestampTypes(
  view: FeatureViewSpec,
  source: FileSourceSpec,
  loc: SourceLocation,
  columns: ColumnInfo[],
): void {
  const owner = viewOwner(view);
  const roles: Array<[string, string]> = [[source.timestampField, "timestamp"]];
  if (source.createdTimestampColumn) roles.push([source.createdTimestampColumn, "created timestamp"]);
  for (const [name, role] of roles) {
    const col = requireColumn(columns, source, loc, name, role, owner, true);
    const family = typeFamily(col.type);
    if (family !== "timestamp" && family !== "date")
      throw new ValidationError(
        `${owner}: ${role} column "${col.name}" in ${sourceLabel(loc)} is ${col.type}, not a timestamp: expected a TIMESTAMP or DATE column (write it as one, e.g. DuckDB's CAST("${col.name}" AS TIMESTAMP))`,
      );
  }
}
