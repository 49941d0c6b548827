// Loading JS columns into DuckDB: each column is checked and converted to a "wire" type the appender
// writes cheaply (numbers as DOUBLE, times as ms), then one SELECT casts the staged columns to their
// final types. Used for entity rows, Arrow tables, writeParquet and appendRows.
import {
  BIGINT,
  BLOB,
  BOOLEAN,
  DOUBLE,
  LIST,
  VARCHAR,
  blobValue,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from "@duckdb/node-api";
import { ident } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import { toEpochMs } from "../../common/time.js";
import { baseType, isListDtype, type Dtype, type ValueType } from "../../registry/types.js";
import { duckTypeOf } from "./duck_types.js";

type WireScalar = "DOUBLE" | "BIGINT" | "VARCHAR" | "BOOLEAN" | "BLOB";
export type WireType = WireScalar | `${WireScalar}[]`;

/** What a column should become: a dtype, a timestamp, or whatever its JS values suggest. */
export type ColumnTarget = Dtype | "timestamp" | "infer";

export interface PreparedColumn {
  name: string;
  wire: WireType;
  /** values fitting `wire`: numbers / bigints / strings / booleans / Uint8Arrays / arrays of those, or null */
  values: ArrayLike<unknown>;
  /** SQL turning the staged column into its final type, aliased to the column name */
  select: string;
  /** the final DuckDB type */
  duckType: string;
}

function isArrayLikeValue(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof Uint8Array));
}

function describeValue(v: unknown): string {
  if (v instanceof Date) return "a Date";
  if (v instanceof Uint8Array) return "bytes";
  if (Array.isArray(v)) return "an array";
  const s = typeof v === "string" ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : String(v);
  return `${typeof v} ${s}`;
}

/** Guess a dtype from JS values (entity rows, untyped pushes). */
export function inferDtype(values: ArrayLike<unknown>, timestampLike = false): Dtype | "timestamp" {
  let sawNumber = false;
  let allIntegers = true;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    if (typeof v === "number") {
      sawNumber = true;
      if (!Number.isInteger(v)) allIntegers = false;
      continue;
    }
    if (typeof v === "bigint") return "int64";
    if (typeof v === "string") return timestampLike ? "timestamp" : "string";
    if (typeof v === "boolean") return "bool";
    if (v instanceof Date) return "timestamp";
    if (v instanceof Uint8Array) return "bytes";
    if (isArrayLikeValue(v)) return inferListDtype(values);
    return "string";
  }
  if (sawNumber) return timestampLike ? "timestamp" : allIntegers ? "int64" : "float64";
  return timestampLike ? "timestamp" : "string";
}

function inferListDtype(values: ArrayLike<unknown>): Dtype {
  let allIntegers = true;
  let kind: "number" | "string" | "bool" | "bigint" | "date" | null = null;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!isArrayLikeValue(v)) continue;
    for (let j = 0; j < v.length; j++) {
      const x = v[j];
      if (x === null || x === undefined) continue;
      if (typeof x === "number") {
        kind = kind ?? "number";
        if (!Number.isInteger(x)) allIntegers = false;
      } else if (typeof x === "bigint") kind = "bigint";
      else if (typeof x === "string") return "string[]";
      else if (typeof x === "boolean") return "bool[]";
      else if (x instanceof Date) return "unix_timestamp[]";
    }
  }
  if (kind === "bigint") return "int64[]";
  if (kind === "number") return allIntegers ? "int64[]" : "float64[]";
  return "string[]";
}

const epochSelect = (q: string): string => `make_timestamp(CAST(round(${q} * 1000) AS BIGINT))`;

/** Check and convert one column of JS values for loading. `what` names the input in errors. */
export function prepareColumn(
  name: string,
  values: ArrayLike<unknown>,
  target: ColumnTarget,
  what: string,
): PreparedColumn {
  const dtype = target === "infer" ? inferDtype(values) : target;
  const q = ident(name);
  const fail = (i: number, v: unknown, expected: string): never => {
    throw new ValidationError(`${what}: column "${name}" row ${i}: expected ${expected}, got ${describeValue(v)}`);
  };
  const n = values.length;
  if (dtype === "timestamp" || dtype === "unix_timestamp") {
    const ms = new Array<number | null>(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || v === undefined) ms[i] = null;
      else if (v instanceof Date || typeof v === "string" || typeof v === "number")
        ms[i] = toEpochMs(v, `${what}: column "${name}" row ${i}`);
      else fail(i, v, "a timestamp (Date, ISO-8601 string or ms since the epoch)");
    }
    return { name, wire: "DOUBLE", values: ms, select: `${epochSelect(q)} AS ${q}`, duckType: "TIMESTAMP" };
  }
  const base = baseType(dtype);
  if (isListDtype(dtype)) return prepareList(name, values, base, fail);
  const duckType = duckTypeOf(base);
  const cast = (wire: WireType, out: ArrayLike<unknown> = values): PreparedColumn => ({
    name,
    wire,
    values: out,
    select: `${wire === duckType ? q : `CAST(${q} AS ${duckType})`} AS ${q}`,
    duckType,
  });
  switch (base) {
    case "int32":
    case "int64": {
      let anyBig = false;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) continue;
        if (typeof v === "bigint") anyBig = true;
        else if (typeof v !== "number" || !Number.isInteger(v)) fail(i, v, `an integer (${base})`);
      }
      if (!anyBig) return cast("DOUBLE");
      const out = new Array<bigint | null>(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        out[i] = v === null || v === undefined ? null : BigInt(v as number | bigint);
      }
      return cast("BIGINT", out);
    }
    case "float32":
    case "float64": {
      let anyBig = false;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined || typeof v === "number") continue;
        if (typeof v === "bigint") anyBig = true;
        else fail(i, v, `a number (${base})`);
      }
      if (!anyBig) return cast("DOUBLE");
      return cast(
        "DOUBLE",
        Array.from(values, (v) => (typeof v === "bigint" ? Number(v) : v)),
      );
    }
    case "string":
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined && typeof v !== "string") fail(i, v, "a string");
      }
      return cast("VARCHAR");
    case "bool":
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined && typeof v !== "boolean") fail(i, v, "a boolean");
      }
      return cast("BOOLEAN");
    case "bytes":
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v !== null && v !== undefined && !(v instanceof Uint8Array)) fail(i, v, "bytes (Uint8Array)");
      }
      return cast("BLOB");
    case "unix_timestamp":
      throw new Error("unreachable: handled above");
  }
}

function prepareList(
  name: string,
  values: ArrayLike<unknown>,
  base: ValueType,
  fail: (i: number, v: unknown, expected: string) => never,
): PreparedColumn {
  const q = ident(name);
  const n = values.length;
  const elemDuck = duckTypeOf(base);
  let wire: WireType;
  switch (base) {
    case "int32":
    case "int64":
    case "float32":
    case "float64":
    case "unix_timestamp":
      wire = "DOUBLE[]";
      break;
    case "string":
      wire = "VARCHAR[]";
      break;
    case "bool":
      wire = "BOOLEAN[]";
      break;
    case "bytes":
      wire = "BLOB[]";
      break;
  }
  const out = new Array<unknown[] | null>(n);
  let anyBig = false;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      out[i] = null;
      continue;
    }
    if (!isArrayLikeValue(v)) fail(i, v, `a list (${base}[])`);
    const arr = v;
    const items = new Array<unknown>(arr.length);
    for (let j = 0; j < arr.length; j++) {
      const x = arr[j];
      let ok: boolean;
      if (x === null || x === undefined) {
        items[j] = null;
        continue;
      }
      switch (base) {
        case "int32":
        case "int64":
          ok = (typeof x === "number" && Number.isInteger(x)) || typeof x === "bigint";
          if (typeof x === "bigint") anyBig = true;
          break;
        case "float32":
        case "float64":
          ok = typeof x === "number";
          break;
        case "unix_timestamp":
          ok = x instanceof Date || typeof x === "string" || typeof x === "number";
          break;
        case "string":
          ok = typeof x === "string";
          break;
        case "bool":
          ok = typeof x === "boolean";
          break;
        case "bytes":
          ok = x instanceof Uint8Array;
          break;
      }
      if (!ok) fail(i, x, `a ${base} list element`);
      items[j] =
        base === "unix_timestamp"
          ? toEpochMs(x as Date | string | number)
          : base === "bytes"
            ? blobValue(x as Uint8Array)
            : x;
    }
    out[i] = items;
  }
  if (anyBig) {
    wire = "BIGINT[]";
    for (const items of out)
      if (items)
        for (let j = 0; j < items.length; j++) if (items[j] !== null) items[j] = BigInt(items[j] as number | bigint);
  }
  const duckType = `${elemDuck}[]`;
  const select =
    base === "unix_timestamp"
      ? `list_transform(${q}, x -> ${epochSelect("x")}) AS ${q}`
      : `${wire === duckType ? q : `CAST(${q} AS ${duckType})`} AS ${q}`;
  return { name, wire, values: out, select, duckType };
}

const LIST_TYPES: Record<WireScalar, DuckDBType> = {
  DOUBLE: LIST(DOUBLE),
  BIGINT: LIST(BIGINT),
  VARCHAR: LIST(VARCHAR),
  BOOLEAN: LIST(BOOLEAN),
  BLOB: LIST(BLOB),
};

function appendFn(app: DuckDBAppender, wire: WireType): (v: unknown) => void {
  switch (wire) {
    case "DOUBLE":
      return (v) => (v === null || v === undefined ? app.appendNull() : app.appendDouble(v as number));
    case "BIGINT":
      return (v) => (v === null || v === undefined ? app.appendNull() : app.appendBigInt(v as bigint));
    case "VARCHAR":
      return (v) => (v === null || v === undefined ? app.appendNull() : app.appendVarchar(v as string));
    case "BOOLEAN":
      return (v) => (v === null || v === undefined ? app.appendNull() : app.appendBoolean(v as boolean));
    case "BLOB":
      return (v) => (v === null || v === undefined ? app.appendNull() : app.appendBlob(v as Uint8Array));
    default: {
      const t = LIST_TYPES[wire.slice(0, -2) as WireScalar];
      return (v) =>
        v === null || v === undefined
          ? app.appendNull()
          : app.appendList(v as DuckDBValue[], t as Parameters<DuckDBAppender["appendList"]>[1]);
    }
  }
}

/**
 * Stage the prepared columns' wire values in scratch table `stage` with the appender; returns the SELECT
 * converting them to their final types. The caller drops `stage`.
 */
export async function stageColumns(
  conn: DuckDBConnection,
  stage: string,
  cols: PreparedColumn[],
  length: number,
): Promise<string> {
  if (cols.length === 0) throw new ValidationError(`cannot load a table without columns into ${stage}`);
  await conn.run(
    `CREATE OR REPLACE TABLE ${ident(stage)} (${cols.map((c) => `${ident(c.name)} ${c.wire}`).join(", ")})`,
  );
  const app = await conn.createAppender(stage);
  try {
    const fns = cols.map((c) => appendFn(app, c.wire));
    const vals = cols.map((c) => c.values);
    const k = cols.length;
    for (let i = 0; i < length; i++) {
      for (let j = 0; j < k; j++) fns[j](vals[j][i]);
      app.endRow();
    }
    app.flushSync();
  } finally {
    app.closeSync();
  }
  return `SELECT ${cols.map((c) => c.select).join(", ")} FROM ${ident(stage)}`;
}

/** Create table `table` holding the prepared columns in their final types. */
export async function loadColumns(
  conn: DuckDBConnection,
  table: string,
  cols: PreparedColumn[],
  length: number,
): Promise<void> {
  const stage = `${table}__stage`;
  try {
    const select = await stageColumns(conn, stage, cols, length);
    await conn.run(`CREATE OR REPLACE TABLE ${ident(table)} AS ${select}`);
  } finally {
    await conn.run(`DROP TABLE IF EXISTS ${ident(stage)}`);
  }
}
