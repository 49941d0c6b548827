// DuckDB column types as DESCRIBE spells them, and how they relate to fstore dtypes.
import { ident } from "../../common/duckdb.js";
import { baseType, isListDtype, type Dtype, type ValueType } from "../../registry/types.js";

const INT_TYPES = new Set([
  "TINYINT",
  "SMALLINT",
  "INTEGER",
  "BIGINT",
  "HUGEINT",
  "UTINYINT",
  "USMALLINT",
  "UINTEGER",
  "UBIGINT",
  "UHUGEINT",
]);
const FLOAT_TYPES = new Set(["FLOAT", "DOUBLE"]);
const TIMESTAMP_TYPES = new Set([
  "TIMESTAMP",
  "TIMESTAMP WITH TIME ZONE",
  "TIMESTAMP_MS",
  "TIMESTAMP_NS",
  "TIMESTAMP_S",
  "DATETIME",
  "TIMESTAMPTZ",
]);

export type TypeFamily = "int" | "float" | "string" | "bool" | "bytes" | "timestamp" | "date" | "list" | "other";

/** The element type of a list type ("DOUBLE[]" -> "DOUBLE", "INTEGER[3]" -> "INTEGER"), or null. */
export function listElementType(t: string): string | null {
  const m = /^(.*)\[\d*\]$/.exec(t);
  return m ? m[1] : null;
}

export function typeFamily(t: string): TypeFamily {
  if (listElementType(t) !== null) return "list";
  if (INT_TYPES.has(t)) return "int";
  if (FLOAT_TYPES.has(t) || t.startsWith("DECIMAL")) return "float";
  if (t === "VARCHAR") return "string";
  if (t === "BOOLEAN") return "bool";
  if (t === "BLOB") return "bytes";
  if (TIMESTAMP_TYPES.has(t)) return "timestamp";
  if (t === "DATE") return "date";
  return "other";
}

function scalarCompatible(dtype: ValueType, t: string): boolean {
  const fam = typeFamily(t);
  switch (dtype) {
    case "int32":
    case "int64":
      return fam === "int";
    case "float32":
    case "float64":
      return fam === "float" || fam === "int";
    case "string":
      return fam === "string";
    case "bool":
      return fam === "bool";
    case "bytes":
      return fam === "bytes";
    case "unix_timestamp":
      return fam === "timestamp";
  }
}

/** Whether a column of DuckDB type `t` can hold values of the declared dtype. */
export function compatibleWithDtype(dtype: Dtype, t: string): boolean {
  if (isListDtype(dtype)) {
    const el = listElementType(t);
    return el !== null && scalarCompatible(baseType(dtype), el);
  }
  return scalarCompatible(dtype as ValueType, t);
}

const DUCK_OF_VALUE_TYPE: Record<ValueType, string> = {
  int32: "INTEGER",
  int64: "BIGINT",
  float32: "FLOAT",
  float64: "DOUBLE",
  string: "VARCHAR",
  bool: "BOOLEAN",
  bytes: "BLOB",
  unix_timestamp: "TIMESTAMP",
};

/** The DuckDB type a dtype is written as. */
export function duckTypeOf(dtype: Dtype): string {
  const base = DUCK_OF_VALUE_TYPE[baseType(dtype)];
  return isListDtype(dtype) ? `${base}[]` : base;
}

/** Whether two join-key column types can be compared (numbers with numbers, strings with strings, ...). */
export function joinTypesComparable(a: string, b: string): boolean {
  const fa = typeFamily(a);
  const fb = typeFamily(b);
  const numeric = (f: TypeFamily): boolean => f === "int" || f === "float";
  if (numeric(fa) && numeric(fb)) return true;
  if ((fa === "timestamp" || fa === "date") && (fb === "timestamp" || fb === "date")) return true;
  return fa === fb && fa !== "other" ? (fa === "list" ? a === b : true) : a === b;
}

/**
 * SQL turning column `col` of type `t` into a TIMESTAMP (UTC), or null when the type cannot hold a time.
 * Strings are ISO-8601 (no zone = UTC); numbers are ms since the epoch, as everywhere in fstore.
 */
export function timestampExpr(colSql: string, t: string): string | null {
  const fam = typeFamily(t);
  if (t === "TIMESTAMP") return colSql;
  if (fam === "timestamp" || fam === "date") return `CAST(${colSql} AS TIMESTAMP)`;
  if (fam === "string") return `CAST(CAST(${colSql} AS TIMESTAMPTZ) AS TIMESTAMP)`;
  if (fam === "int" || fam === "float") return `make_timestamp(CAST(round(${colSql} * 1000) AS BIGINT))`;
  return null;
}

/** Column list with types, for error messages. */
export function describeColumns(cols: Array<{ name: string; type: string }>): string {
  return cols.map((c) => `${c.name} ${c.type}`).join(", ");
}

export { ident };
