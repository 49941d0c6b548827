// Rows that callers hand in (push, writeToOnlineStore, entity rows), as columns, checked against a schema.

import { ValidationError } from "../common/errors.js";
import { toEpochMs } from "../common/time.js";
import { type Dtype, type FeatureViewSpec, baseType, batchSourceOf, isListDtype } from "../registry/types.js";
import type { OnlineWriteBatch } from "./types.js";

/** Rows as objects, or columns as in Feast's `df` JSON ({"user_id": [1, 2], "age": [31, 40]}). */
export type RowsInput = Array<Record<string, unknown>> | Record<string, unknown[]>;

export interface Columns {
  length: number;
  columns: Record<string, unknown[]>;
}

export function toColumns(input: RowsInput, what: string): Columns {
  if (Array.isArray(input)) {
    const columns: Record<string, unknown[]> = {};
    const n = input.length;
    input.forEach((row, i) => {
      if (typeof row !== "object" || row === null || Array.isArray(row))
        throw new ValidationError(`${what}: row ${i} is not an object`);
      for (const k of Object.keys(row)) {
        if (!columns[k]) columns[k] = new Array(n).fill(undefined);
      }
    });
    for (const [k, col] of Object.entries(columns)) {
      for (let i = 0; i < n; i++) col[i] = input[i][k];
    }
    return { length: n, columns };
  }
  if (typeof input !== "object" || input === null)
    throw new ValidationError(
      `${what}: expected rows (an array of objects) or columns (an object of equal-length arrays)`,
    );
  let length = -1;
  let first = "";
  for (const [k, col] of Object.entries(input)) {
    if (!Array.isArray(col)) throw new ValidationError(`${what}: column "${k}" must be an array of values`);
    if (length === -1) {
      length = col.length;
      first = k;
    } else if (col.length !== length) {
      throw new ValidationError(
        `${what}: column "${k}" has ${col.length} values but "${first}" has ${length}; every column needs one value per row`,
      );
    }
  }
  return { length: Math.max(length, 0), columns: input };
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Check one value against a dtype; returns the value to store (timestamps as ms, int64 bigints as numbers). */
export function coerceValue(v: unknown, dtype: Dtype, where: () => string): unknown {
  if (v === null || v === undefined) return null;
  if (isListDtype(dtype)) {
    // a float list may come as a typed array (embeddings usually do)
    const list = v instanceof Float32Array || v instanceof Float64Array ? Array.from(v) : v;
    if (!Array.isArray(list))
      throw new ValidationError(`${where()}: expected a list of ${baseType(dtype)}, got ${describe(v)}`);
    const elem = baseType(dtype);
    return list.map((x, j) => coerceValue(x, elem, () => `${where()}[${j}]`));
  }
  switch (baseType(dtype)) {
    case "int32":
    case "int64":
      if (typeof v === "number" && Number.isInteger(v)) return v;
      if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
      throw new ValidationError(`${where()}: expected an integer (${dtype}), got ${describe(v)}`);
    case "float32":
    case "float64":
      if (typeof v === "number") return v;
      throw new ValidationError(`${where()}: expected a number (${dtype}), got ${describe(v)}`);
    case "string":
      if (typeof v === "string") return v;
      throw new ValidationError(`${where()}: expected a string, got ${describe(v)}`);
    case "bool":
      if (typeof v === "boolean") return v;
      throw new ValidationError(`${where()}: expected true or false, got ${describe(v)}`);
    case "bytes":
      if (v instanceof Uint8Array) return v;
      if (typeof v === "string") return Buffer.from(v, "base64");
      throw new ValidationError(`${where()}: expected bytes (a Uint8Array or a base64 string), got ${describe(v)}`);
    case "unix_timestamp":
      if (v instanceof Date || typeof v === "string" || typeof v === "number") return toEpochMs(v, where());
      throw new ValidationError(`${where()}: expected a timestamp, got ${describe(v)}`);
  }
}

/**
 * Rows for a view's online storage: join keys, every feature of the schema, and the event timestamp
 * (the source's timestamp field, or "event_timestamp"). Any row that does not match fails the whole call.
 */
export function toOnlineBatch(
  view: FeatureViewSpec,
  input: RowsInput,
  what: string,
  now = Date.now(),
): OnlineWriteBatch {
  const { length, columns } = toColumns(input, what);
  const source = batchSourceOf(view);
  // Rows may be named as in the source file (raw names) or as in the view; accept both.
  const rename = new Map(Object.entries(source.fieldMapping));
  const col = (name: string): unknown[] | undefined => {
    if (columns[name]) return columns[name];
    for (const [raw, mapped] of rename) if (mapped === name && columns[raw]) return columns[raw];
    return undefined;
  };
  const need = (name: string) => {
    const c = col(name);
    if (!c)
      throw new ValidationError(
        `${what}: column "${name}" is missing (feature view "${view.name}" needs ${[...view.entityColumns.map((e) => e.name), source.timestampField, ...view.features.map((f) => f.name)].join(", ")})`,
      );
    return c;
  };
  const known = new Set([
    ...view.entityColumns.map((c) => c.name),
    ...view.features.map((f) => f.name),
    source.timestampField,
    "event_timestamp",
    ...(source.createdTimestampColumn ? [source.createdTimestampColumn] : []),
    ...Object.keys(source.fieldMapping),
  ]);
  for (const k of Object.keys(columns)) {
    if (!known.has(k))
      throw new ValidationError(
        `${what}: column "${k}" is not a join key, feature or timestamp of feature view "${view.name}"`,
      );
  }
  const keys: Record<string, unknown[]> = {};
  for (const e of view.entityColumns) {
    const c = need(e.name);
    keys[e.name] = c.map((v, i) => {
      if (v === null || v === undefined) throw new ValidationError(`${what}: row ${i}: join key "${e.name}" is null`);
      return coerceValue(v, e.dtype, () => `${what}: row ${i}, join key "${e.name}"`);
    });
  }
  const features: Record<string, unknown[]> = {};
  for (const f of view.features) {
    const c = need(f.name);
    features[f.name] = c.map((v, i) =>
      coerceValue(v, f.dtype, () => `${what}: row ${i}, feature "${f.name}" of "${view.name}"`),
    );
  }
  const tsCol = col(source.timestampField) ?? columns.event_timestamp;
  if (!tsCol) throw new ValidationError(`${what}: column "${source.timestampField}" (the event timestamp) is missing`);
  const eventTs = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const v = tsCol[i];
    if (!(v instanceof Date) && typeof v !== "string" && typeof v !== "number")
      throw new ValidationError(`${what}: row ${i}: event timestamp ${describe(v)} is not a timestamp`);
    eventTs[i] = toEpochMs(v, `${what}: row ${i}, "${source.timestampField}"`);
  }
  const createdCol = source.createdTimestampColumn ? col(source.createdTimestampColumn) : undefined;
  const createdTs = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const v = createdCol?.[i];
    createdTs[i] =
      v === undefined || v === null
        ? now
        : toEpochMs(v as string | number | Date, `${what}: row ${i}, created timestamp`);
  }
  return { length, keys, features, eventTs, createdTs };
}
