// The payload: one packed buffer per (entity, view), what both online stores keep.
//
//   u8 version (1) | u32 schema fingerprint | f64 event ts ms | f64 created ts ms | null bitmap | values
//
// Little endian. Values follow the schema's field order; only non-null fields are written. The fingerprint
// names the field list (names + dtypes) the payload was written with, so a payload stays readable after the
// view's schema changes (each store keeps fingerprint -> fields). Event and created ts sit at fixed offsets
// so that the Redis Lua script can compare them without knowing the schema. Decoding is in read_results.ts.

import { ValidationError } from "../../common/errors.js";
import type { FeatureViewSpec, FieldSpec, ValueType } from "../../registry/types.js";
import type { OnlineWriteBatch } from "../types.js";
import { describeValue } from "./entity_keys.js";

export const PAYLOAD_VERSION = 1;
/** byte offset of the event ts (f64), followed by the created ts (f64) */
export const TS_OFFSET = 5;

/**
 * Lua for the Redis write scripts: whether payload `new` may replace `old` (none, or not older by event time,
 * then created time), the store's rule that a write never replaces a newer value with an older one.
 */
export const LUA_NOT_OLDER = `
local function not_older(old, new)
  if not old then return true end
  local oe, oc = struct.unpack('<dd', old, ${TS_OFFSET + 1})
  local ne, nc = struct.unpack('<dd', new, ${TS_OFFSET + 1})
  return ne > oe or (ne == oe and nc >= oc)
end`;
/** version, fingerprint and the two timestamps; the null bitmap follows */
export const HEADER_BYTES = 21;

export const T_FLOAT = 0;
export const T_INT32 = 1;
export const T_INT64 = 2;
export const T_BOOL = 3;
export const T_STRING = 4;
export const T_BYTES = 5;
export const T_TIMESTAMP = 6;
/** flag of a list of the base type in the low 3 bits */
export const LIST = 8;

const TYPE_CODE: Record<ValueType, number> = {
  float32: T_FLOAT,
  float64: T_FLOAT,
  int32: T_INT32,
  int64: T_INT64,
  bool: T_BOOL,
  string: T_STRING,
  bytes: T_BYTES,
  unix_timestamp: T_TIMESTAMP,
};

/** The field list a payload is written with, and what decoding it needs. */
export interface PayloadSchema {
  fingerprint: number;
  fields: FieldSpec[];
  names: string[];
  codes: Uint8Array;
  bitmapBytes: number;
  /** fields decoded to JS numbers (an int64 beyond 2^53 still gives a bigint) */
  numeric: ReadonlySet<string>;
}

const NUMERIC_CODES = new Set([T_FLOAT, T_INT32, T_INT64, T_TIMESTAMP]);

/** FNV-1a (32 bit) of "name:dtype,..." */
function fingerprintOf(fields: FieldSpec[]): number {
  const s = fields.map((f) => `${f.name}:${f.dtype}`).join(",");
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function payloadSchema(fields: FieldSpec[]): PayloadSchema {
  const codes = new Uint8Array(fields.length);
  fields.forEach((f, i) => {
    const list = f.dtype.endsWith("[]");
    const base = (list ? f.dtype.slice(0, -2) : f.dtype) as ValueType;
    const code = TYPE_CODE[base];
    if (code === undefined) throw new ValidationError(`field "${f.name}": dtype "${f.dtype}" cannot be stored online`);
    codes[i] = code | (list ? LIST : 0);
  });
  return {
    fingerprint: fingerprintOf(fields),
    fields: fields.map((f) => ({ name: f.name, dtype: f.dtype })),
    names: fields.map((f) => f.name),
    codes,
    bitmapBytes: (fields.length + 7) >> 3,
    numeric: new Set(fields.filter((_, i) => NUMERIC_CODES.has(codes[i])).map((f) => f.name)),
  };
}

/** Fingerprint -> schema: the current ones, and those of payloads written before a view's schema changed. */
export class SchemaBook {
  private readonly byFingerprint = new Map<number, PayloadSchema>();

  /** The schema of the view's current features. */
  current(view: FeatureViewSpec): PayloadSchema {
    let s = this.byFingerprint.get(fingerprintOf(view.features));
    if (!s) {
      s = payloadSchema(view.features);
      this.byFingerprint.set(s.fingerprint, s);
    }
    return s;
  }

  get(fingerprint: number): PayloadSchema | undefined {
    return this.byFingerprint.get(fingerprint);
  }

  add(fields: FieldSpec[]): PayloadSchema {
    const s = payloadSchema(fields);
    this.byFingerprint.set(s.fingerprint, s);
    return s;
  }
}

export function payloadFingerprint(buf: Uint8Array, start = 0): number {
  return (buf[start + 1] | (buf[start + 2] << 8) | (buf[start + 3] << 16) | (buf[start + 4] << 24)) >>> 0;
}

// ---------------------------------------------------------------- encoding

const TWO32 = 4294967296;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Rows of a batch packed into one buffer: row r is buf[starts[r], ends[r]), with the headroom asked for
 * free before each start.
 */
export interface EncodedRows {
  buf: Buffer;
  starts: Float64Array;
  ends: Float64Array;
}

class Writer {
  buf: Buffer;
  dv: DataView;
  off = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafeSlow(Math.max(256, size));
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }
  ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.off + n + 1024));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
    this.dv = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.off++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[this.off++] = n;
  }
}

class EncodeError extends Error {
  constructor(readonly expected: string) {
    super(expected);
  }
}

function toInt64Parts(w: Writer, v: unknown): void {
  const dv = w.dv;
  const o = w.off;
  if (typeof v === "number" && Number.isSafeInteger(v)) {
    const hi = Math.floor(v / TWO32);
    dv.setUint32(o, v - hi * TWO32, true);
    dv.setInt32(o + 4, hi, true);
  } else if (typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v))) {
    const big = BigInt(v);
    if (big < INT64_MIN || big > INT64_MAX) throw new EncodeError("an int64 (out of range)");
    dv.setBigInt64(o, big, true);
  } else {
    throw new EncodeError("an integer (number or bigint)");
  }
  w.off = o + 8;
}

function timestampMs(v: unknown): number | bigint {
  if (v instanceof Date) {
    const t = v.getTime();
    if (Number.isNaN(t)) throw new EncodeError("a valid Date");
    return t;
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new EncodeError("a finite time in ms");
    return Math.round(v);
  }
  if (typeof v === "bigint") return v;
  throw new EncodeError("a timestamp (ms number or Date)");
}

/** Writes one non-null scalar of type `code` (no list flag). */
function writeScalar(w: Writer, code: number, v: unknown): void {
  switch (code) {
    case T_FLOAT:
      if (typeof v !== "number") {
        if (typeof v === "bigint") v = Number(v);
        else throw new EncodeError("a number");
      }
      w.ensure(8);
      w.dv.setFloat64(w.off, v as number, true);
      w.off += 8;
      return;
    case T_INT32:
      if (typeof v === "bigint") v = Number(v);
      if (typeof v !== "number" || !Number.isInteger(v) || v < -2147483648 || v > 2147483647)
        throw new EncodeError("an int32");
      w.ensure(4);
      w.dv.setInt32(w.off, v, true);
      w.off += 4;
      return;
    case T_INT64:
      w.ensure(8);
      toInt64Parts(w, v);
      return;
    case T_TIMESTAMP:
      w.ensure(8);
      toInt64Parts(w, timestampMs(v));
      return;
    case T_BOOL:
      if (typeof v !== "boolean") throw new EncodeError("a boolean");
      w.ensure(1);
      w.buf[w.off++] = v ? 1 : 0;
      return;
    case T_STRING: {
      if (typeof v !== "string") throw new EncodeError("a string");
      const max = v.length * 3;
      w.ensure(max + 5);
      // short strings: length is known after writing; reserve the varint by writing ASCII-fast path
      if (max < 128) {
        const n = w.buf.write(v, w.off + 1, "utf8");
        w.buf[w.off] = n;
        w.off += 1 + n;
      } else {
        const n = Buffer.byteLength(v, "utf8");
        w.varint(n);
        w.off += w.buf.write(v, w.off, "utf8");
      }
      return;
    }
    case T_BYTES: {
      if (!(v instanceof Uint8Array)) throw new EncodeError("bytes (Buffer or Uint8Array)");
      w.ensure(v.byteLength + 5);
      w.varint(v.byteLength);
      w.buf.set(v, w.off);
      w.off += v.byteLength;
      return;
    }
  }
}

function isListLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function writeValue(w: Writer, code: number, v: unknown): void {
  if ((code & LIST) === 0) return writeScalar(w, code, v);
  if (!isListLike(v) || (v instanceof Uint8Array && (code & 7) === T_BYTES)) throw new EncodeError("a list (array)");
  const base = code & 7;
  w.ensure(5);
  w.varint(v.length);
  if (base === T_FLOAT && v instanceof Float64Array) {
    w.ensure(v.length * 8);
    for (let i = 0; i < v.length; i++) {
      w.dv.setFloat64(w.off, v[i], true);
      w.off += 8;
    }
    return;
  }
  for (let i = 0; i < v.length; i++) {
    const e = v[i];
    if (e === null || e === undefined) throw new EncodeError("a list without null elements");
    writeScalar(w, base, e);
  }
}

/**
 * Packs the rows of a batch (features column-wise) into one buffer, leaving `headroom` bytes free before
 * each row (where the SQLite store writes its frame). Throws a ValidationError naming the view, feature,
 * row and value when a value does not fit its dtype; nothing is returned then, so a store can reject the
 * whole batch before touching storage.
 */
export function encodeRows(
  view: FeatureViewSpec,
  schema: PayloadSchema,
  batch: OnlineWriteBatch,
  headroom = 0,
): EncodedRows {
  const n = batch.length;
  const fields = schema.fields;
  const cols = fields.map((f) => batch.features[f.name]);
  for (let i = 0; i < fields.length; i++) {
    const c = cols[i];
    if (c && c.length < n)
      throw new ValidationError(
        `feature view "${view.name}": feature column "${fields[i].name}" has ${c.length} values, expected ${n}`,
      );
  }
  for (const name of Object.keys(batch.features)) {
    if (!schema.names.includes(name))
      throw new ValidationError(
        `feature view "${view.name}" has no feature "${name}" (has ${schema.names.join(", ")})`,
      );
  }
  if (batch.eventTs.length < n || batch.createdTs.length < n)
    throw new ValidationError(`feature view "${view.name}": eventTs/createdTs must hold ${n} values`);
  const codes = schema.codes;
  const bm = schema.bitmapBytes;
  const w = new Writer(n * (headroom + HEADER_BYTES + bm + fields.length * 9));
  const starts = new Float64Array(n);
  const ends = new Float64Array(n);
  const fp = schema.fingerprint;
  let r = 0;
  let f = 0;
  try {
    for (r = 0; r < n; r++) {
      if (headroom) {
        w.ensure(headroom);
        w.off += headroom;
      }
      starts[r] = w.off;
      const ev = batch.eventTs[r];
      const cr = batch.createdTs[r];
      if (typeof ev !== "number" || !Number.isFinite(ev))
        throw new ValidationError(
          `feature view "${view.name}": event timestamp of row ${r} is ${describeValue(ev)}, expected ms since the epoch`,
        );
      w.ensure(HEADER_BYTES + bm);
      const b = w.buf;
      const dv = w.dv;
      let o = w.off;
      b[o] = PAYLOAD_VERSION;
      dv.setUint32(o + 1, fp, true);
      dv.setFloat64(o + 5, ev, true);
      dv.setFloat64(o + 13, typeof cr === "number" && Number.isFinite(cr) ? cr : 0, true);
      o += HEADER_BYTES;
      const bitmapAt = o;
      for (let i = 0; i < bm; i++) b[o + i] = 0;
      w.off = o + bm;
      for (f = 0; f < codes.length; f++) {
        const col = cols[f];
        const v = col === undefined ? null : col[r];
        if (v === null || v === undefined) continue;
        if (typeof v === "number" && codes[f] === T_FLOAT) {
          // the common case, inline
          w.ensure(8);
          w.dv.setFloat64(w.off, v, true);
          w.off += 8;
        } else {
          writeValue(w, codes[f], v);
        }
        w.buf[bitmapAt + (f >> 3)] |= 1 << (f & 7);
      }
      ends[r] = w.off;
    }
  } catch (e) {
    if (e instanceof EncodeError) {
      const field = fields[f];
      const col = cols[f];
      throw new ValidationError(
        `feature view "${view.name}": feature "${field.name}" (${field.dtype}) value ${describeValue(col?.[r])} in row ${r} is not ${e.expected}`,
      );
    }
    throw e;
  }
  return { buf: w.buf, starts, ends };
}
