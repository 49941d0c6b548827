// Arrow <-> DuckDB: Arrow tables as entity dataframes, and retrieval results as Arrow tables.
import {
  Binary,
  Bool,
  DataType,
  Field,
  Float32,
  Float64,
  Int32,
  Int64,
  List,
  Precision,
  Table,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
  type Vector,
} from "apache-arrow";
import { ValidationError } from "../../common/errors.js";
import type { Dtype } from "../../registry/types.js";
import type { ColumnBatch } from "../types.js";
import { listElementType } from "./duck_types.js";
import { prepareColumn, type ColumnTarget, type PreparedColumn } from "./load.js";
import { readColumn, type ReadColumn, type ReadKind } from "./read.js";

/** The dtype an Arrow column loads as, or null when fstore has none for it. */
function dtypeOfArrow(t: DataType): Dtype | "timestamp" | null {
  if (DataType.isDictionary(t)) return dtypeOfArrow(t.valueType as DataType);
  if (DataType.isInt(t)) return t.bitWidth === 64 || (t.bitWidth === 32 && !t.isSigned) ? "int64" : "int32";
  if (DataType.isFloat(t)) return t.precision === Precision.SINGLE ? "float32" : "float64";
  if (DataType.isUtf8(t) || DataType.isLargeUtf8(t)) return "string";
  if (DataType.isBool(t)) return "bool";
  if (DataType.isBinary(t) || DataType.isLargeBinary(t)) return "bytes";
  if (DataType.isTimestamp(t) || DataType.isDate(t)) return "timestamp";
  if (DataType.isList(t)) {
    const child = t.children[0]?.type as DataType | undefined;
    const el = child ? dtypeOfArrow(child) : null;
    if (el === null || el.endsWith("[]")) return null;
    return el === "timestamp" ? "unix_timestamp[]" : (`${el}[]` as Dtype);
  }
  return null;
}

function plainValue(v: unknown): unknown {
  if (v !== null && typeof v === "object" && "toArray" in v && typeof (v as Vector).toArray === "function")
    return Array.from(v as Vector);
  return v;
}

/** An Arrow table's columns, checked and converted for loading. `timestampColumn` is parsed as a time. */
export function arrowToPrepared(table: Table, timestampColumn: string, what: string): PreparedColumn[] {
  return table.schema.fields.map((field, i) => {
    const dtype = dtypeOfArrow(field.type as DataType);
    if (dtype === null)
      throw new ValidationError(
        `${what}: column "${field.name}" has Arrow type ${String(field.type)}, which fstore cannot load`,
      );
    const vec = table.getChildAt(i);
    const values: unknown[] = new Array<unknown>(table.numRows);
    if (vec) {
      let j = 0;
      for (const v of vec) values[j++] = DataType.isList(field.type) ? plainValue(v) : v;
    }
    const target: ColumnTarget = field.name === timestampColumn ? "timestamp" : dtype;
    return prepareColumn(field.name, values, target, what);
  });
}

function arrowTypeOf(kind: ReadKind, duckType: string): DataType {
  switch (kind) {
    case "f64":
      return new Float64();
    case "f32":
      return new Float32();
    case "i32":
      return new Int32();
    case "i64":
      return new Int64();
    case "ts":
      return new TimestampMillisecond();
    case "bool":
      return new Bool();
    case "bytes":
      return new Binary();
    case "list": {
      const el = listElementType(duckType) ?? "VARCHAR";
      const child = readColumn({ name: "item", type: el });
      return new List(new Field("item", arrowTypeOf(child.kind, el), true));
    }
    default:
      return new Utf8();
  }
}

/** Values ready for an Arrow builder of `type` (Int64 wants bigints). */
function forArrow(values: ArrayLike<unknown>, type: DataType): unknown[] {
  const out = Array.from(values);
  if (DataType.isInt(type) && type.bitWidth === 64) {
    for (let i = 0; i < out.length; i++) if (typeof out[i] === "number") out[i] = BigInt(out[i] as number);
  } else if (DataType.isList(type)) {
    const child = type.children[0].type as DataType;
    for (let i = 0; i < out.length; i++)
      if (out[i] !== null && out[i] !== undefined) out[i] = forArrow(out[i] as ArrayLike<unknown>, child);
  }
  return out;
}

function concatColumn(parts: Array<ArrayLike<unknown>>): ArrayLike<unknown> {
  if (parts.length === 1) return parts[0];
  const typed = parts.every((p) => p instanceof Float64Array)
    ? Float64Array
    : parts.every((p) => p instanceof Int32Array)
      ? Int32Array
      : parts.every((p) => p instanceof Float32Array)
        ? Float32Array
        : null;
  const total = parts.reduce((n, p) => n + p.length, 0);
  if (typed) {
    const out = new typed(total);
    let off = 0;
    for (const p of parts) {
      out.set(p as ArrayLike<number>, off);
      off += p.length;
    }
    return out;
  }
  const out = new Array<unknown>(total);
  let off = 0;
  for (const p of parts) for (let i = 0; i < p.length; i++) out[off++] = p[i];
  return out;
}

/** An Arrow table from column batches read with `plan` (column types follow the DuckDB types). */
export async function batchesToArrow(plan: ReadColumn[], batches: AsyncIterable<ColumnBatch>): Promise<Table> {
  const parts: Array<Array<ArrayLike<unknown>>> = plan.map(() => []);
  for await (const b of batches) plan.forEach((c, j) => parts[j].push(b.columns[c.name]));
  const vectors: Record<string, Vector> = {};
  plan.forEach((c, j) => {
    const type = arrowTypeOf(c.kind, c.duckType);
    const values = concatColumn(parts[j]);
    const direct =
      (c.kind === "f64" && values instanceof Float64Array) ||
      (c.kind === "f32" && values instanceof Float32Array) ||
      (c.kind === "i32" && values instanceof Int32Array);
    // typed arrays without nulls become Arrow vectors without a copy
    vectors[c.name] = direct ? vectorFromArray(values) : vectorFromArray(forArrow(values, type), type);
  });
  return new Table(vectors);
}
