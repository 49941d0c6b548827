// Entity keys and packed feature values shared by the online stores.
//
// Entity key: a string, normalised by the join key's dtype so that 1, 1n and "1" of an int64 key are the
// same key. Parts are joined by "," and string parts are JSON-quoted, so the form is unambiguous.
//
// Payload (one per entity and view), little endian:
//   u8 version (1) | u32 schema fingerprint | f64 event ts ms | f64 created ts ms | null bitmap | values
// Values follow the schema's field order; only non-null fields are written. The fingerprint names the
// field list (names + dtypes) the payload was written with, so a payload stays readable after the view's
// schema changes (the store keeps fingerprint -> fields). Event/created ts sit at fixed offsets so the
// Redis Lua script can compare them without knowing the schema.

import { ValidationError } from "../../common/errors.js";
import type { Dtype, FeatureViewSpec, FieldSpec, ValueType } from "../../registry/types.js";
import type { OnlineReadRequest, OnlineReadResult, OnlineWriteBatch } from "../types.js";

export const PAYLOAD_VERSION = 1;
/** byte offset of the event ts (f64), followed by the created ts (f64) */
export const TS_OFFSET = 5;
const HEADER_BYTES = 21;
const COLON = 58;

// ---------------------------------------------------------------- entity keys

type KeyPart = (v: unknown) => string | undefined;

const INT_RE = /^\s*[+-]?\d+\s*$/;
const FLOAT_RE = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

function intKeyPart(v: unknown): string | undefined {
  if (typeof v === "number") {
    if (Number.isSafeInteger(v)) return String(v === 0 ? 0 : v);
    return Number.isInteger(v) ? BigInt(v).toString() : undefined;
  }
  if (typeof v === "string") {
    if (!INT_RE.test(v)) return undefined;
    const s = v.trim();
    return s.length <= 15 ? String(Number(s) || 0) : BigInt(s).toString();
  }
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Date && !Number.isNaN(v.getTime())) return String(v.getTime());
  return undefined;
}

function floatKeyPart(v: unknown): string | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? String(v === 0 ? 0 : v) : undefined;
  if (typeof v === "string" && FLOAT_RE.test(v)) return String(Number(v) || 0);
  if (typeof v === "bigint") return String(Number(v));
  return undefined;
}

function stringKeyPart(v: unknown): string | undefined {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" && Number.isFinite(v)) return JSON.stringify(String(v));
  if (typeof v === "bigint") return JSON.stringify(v.toString());
  return undefined;
}

function boolKeyPart(v: unknown): string | undefined {
  if (v === true || v === "true" || v === 1) return "true";
  if (v === false || v === "false" || v === 0) return "false";
  return undefined;
}

function bytesKeyPart(v: unknown): string | undefined {
  if (v instanceof Uint8Array) return "0x" + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex");
  return undefined;
}

function keyPartFor(dtype: Dtype): KeyPart {
  switch (dtype) {
    case "int32":
    case "int64":
    case "unix_timestamp":
      return intKeyPart;
    case "float32":
    case "float64":
      return floatKeyPart;
    case "string":
      return stringKeyPart;
    case "bool":
      return boolKeyPart;
    case "bytes":
      return bytesKeyPart;
    default:
      throw new ValidationError(`join key dtype "${dtype}" cannot be an entity key (lists are not allowed)`);
  }
}

function describe(v: unknown): string {
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return `bytes[${v.byteLength}]`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function badKey(view: FeatureViewSpec, col: FieldSpec, v: unknown, row: number): ValidationError {
  if (v === null || v === undefined) {
    return new ValidationError(
      `feature view "${view.name}": join key "${col.name}" is missing (${v === null ? "null" : "undefined"}) in entity row ${row}`,
    );
  }
  return new ValidationError(
    `feature view "${view.name}": join key "${col.name}" value ${describe(v)} (entity row ${row}) is not a valid ${col.dtype} key`,
  );
}

/**
 * Serializes entity keys of `view`. `withNames` prefixes each part with its join key name
 * ("user_id=1,item_id=\"a\""), as Redis keys shared by views need; without, only the values ("1,\"a\"").
 */
export class EntityKeyCodec {
  private readonly parts: KeyPart[];
  private readonly prefixes: string[];
  /** codecs with equal spellings turn equal join-key values into equal keys */
  readonly spelling: string;

  constructor(
    private readonly view: FeatureViewSpec,
    withNames: boolean,
  ) {
    if (view.entityColumns.length === 0)
      throw new ValidationError(`feature view "${view.name}" has no join keys; the online store needs at least one`);
    this.parts = view.entityColumns.map((c) => keyPartFor(c.dtype));
    this.prefixes = view.entityColumns.map((c, i) => (i > 0 ? "," : "") + (withNames ? `${c.name}=` : ""));
    this.spelling = view.entityColumns.map((c, i) => `${this.prefixes[i]}${c.dtype}`).join("");
  }

  /** One key from join-key values in `view.entityColumns` order. */
  key(values: ArrayLike<unknown>, row = 0): string {
    const cols = this.view.entityColumns;
    if (values.length !== cols.length) {
      throw new ValidationError(
        `feature view "${this.view.name}": entity row ${row} has ${values.length} join key values, expected ${cols.length} (${cols.map((c) => c.name).join(", ")})`,
      );
    }
    let out = "";
    for (let i = 0; i < cols.length; i++) {
      const s = this.parts[i](values[i]);
      if (s === undefined) throw badKey(this.view, cols[i], values[i], row);
      out += this.prefixes[i] + s;
    }
    return out;
  }

  /** Keys of a column-wise batch (columns named as the join keys). */
  keysOfColumns(columns: Record<string, ArrayLike<unknown>>, length: number): string[] {
    const cols = this.view.entityColumns;
    const arrays = cols.map((c) => {
      const a = columns[c.name];
      if (!a)
        throw new ValidationError(
          `feature view "${this.view.name}": the batch has no join key column "${c.name}" (has ${Object.keys(columns).join(", ") || "none"})`,
        );
      if (a.length < length)
        throw new ValidationError(
          `feature view "${this.view.name}": join key column "${c.name}" has ${a.length} values, expected ${length}`,
        );
      return a;
    });
    const out = new Array<string>(length);
    if (cols.length === 1) {
      const part = this.parts[0];
      const a = arrays[0];
      const p = this.prefixes[0];
      for (let r = 0; r < length; r++) {
        const s = part(a[r]);
        if (s === undefined) throw badKey(this.view, cols[0], a[r], r);
        out[r] = p + s;
      }
      return out;
    }
    for (let r = 0; r < length; r++) {
      let k = "";
      for (let i = 0; i < cols.length; i++) {
        const s = this.parts[i](arrays[i][r]);
        if (s === undefined) throw badKey(this.view, cols[i], arrays[i][r], r);
        k += this.prefixes[i] + s;
      }
      out[r] = k;
    }
    return out;
  }
}

/**
 * The serialized keys of each request's entity rows, `prefix` first. Requests given the same entity-row
 * array (the facade passes one array to every view of the same join keys) and spelled alike get the
 * same keys array, computed once: a store can group requests by it.
 */
export function keysOfRequests(
  requests: readonly OnlineReadRequest[],
  codecOf: (view: FeatureViewSpec) => EntityKeyCodec,
  prefix = "",
): string[][] {
  const cache = new Map<unknown[][], Map<string, string[]>>();
  return requests.map((req) => {
    const codec = codecOf(req.view);
    let bySpelling = cache.get(req.entityKeys);
    if (!bySpelling) cache.set(req.entityKeys, (bySpelling = new Map<string, string[]>()));
    let keys = bySpelling.get(codec.spelling);
    if (!keys) {
      keys = req.entityKeys.map((k, i) => prefix + codec.key(k, i));
      bySpelling.set(codec.spelling, keys);
    }
    return keys;
  });
}

// ---------------------------------------------------------------- payload schema

const T_FLOAT = 0;
const T_INT32 = 1;
const T_INT64 = 2;
const T_BOOL = 3;
const T_STRING = 4;
const T_BYTES = 5;
const T_TIMESTAMP = 6;
const LIST = 8;

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
}

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
  };
}

/** Fingerprint -> schema, for payloads written before a view's schema changed. */
export class SchemaBook {
  private readonly byFingerprint = new Map<number, PayloadSchema>();
  private readonly byView = new WeakMap<FeatureViewSpec, PayloadSchema>();

  /** The schema of the view's current features (cached per spec object). */
  ofView(view: FeatureViewSpec): PayloadSchema {
    let s = this.byView.get(view);
    if (!s) {
      s = this.byFingerprint.get(fingerprintOf(view.features)) ?? payloadSchema(view.features);
      this.byView.set(view, s);
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

/** Rows of a batch packed into one buffer; row r is buf[offsets[r], offsets[r+1]). */
export interface EncodedRows {
  buf: Buffer;
  offsets: Float64Array;
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
 * Packs the rows of a batch (features column-wise) into one buffer. Throws a ValidationError naming the
 * view, feature, row and value when a value does not fit its dtype; nothing is returned then, so a
 * store can reject the whole batch before touching storage.
 */
export function encodeRows(view: FeatureViewSpec, schema: PayloadSchema, batch: OnlineWriteBatch): EncodedRows {
  const { buf, offsets } = encode(view, schema, batch, undefined);
  return { buf, offsets };
}

/** Rows of a batch packed into one buffer, each framed; row r is buf[starts[r], ends[r]) (gaps between). */
export interface FramedRows {
  buf: Buffer;
  starts: Float64Array;
  ends: Float64Array;
}

/** Room left before each payload for `<length>:` (7 digits: payloads up to ~10 MB need no move). */
const FRAME_DIGITS = 8;

/**
 * encodeRows, each payload framed as `<frame><length>:<payload>` (the SQLite store's rows, `frame` being
 * `<view>:`). The frame is written into room left before each payload, so framing costs no second copy.
 */
export function encodeFramedRows(
  view: FeatureViewSpec,
  schema: PayloadSchema,
  batch: OnlineWriteBatch,
  frame: Buffer,
): FramedRows {
  const { buf, starts, ends } = encode(view, schema, batch, frame);
  return { buf, starts: starts!, ends: ends! };
}

function encode(
  view: FeatureViewSpec,
  schema: PayloadSchema,
  batch: OnlineWriteBatch,
  frame: Buffer | undefined,
): EncodedRows & { starts?: Float64Array; ends?: Float64Array } {
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
  const w = new Writer(n * (HEADER_BYTES + bm + fields.length * 9));
  const offsets = new Float64Array(n + 1);
  const starts = frame ? new Float64Array(n) : undefined;
  const ends = frame ? new Float64Array(n) : undefined;
  const room = frame ? frame.length + FRAME_DIGITS : 0;
  const fp = schema.fingerprint;
  let r = 0;
  let f = 0;
  try {
    for (r = 0; r < n; r++) {
      if (room) {
        w.ensure(room);
        w.off += room;
      }
      offsets[r] = w.off;
      const ev = batch.eventTs[r];
      const cr = batch.createdTs[r];
      if (typeof ev !== "number" || !Number.isFinite(ev))
        throw new ValidationError(
          `feature view "${view.name}": event timestamp of row ${r} is ${describe(ev)}, expected ms since the epoch`,
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
      if (frame) frameRow(w, frame, offsets[r], room, r, starts!, ends!);
    }
  } catch (e) {
    if (e instanceof EncodeError) {
      const field = fields[f];
      const col = cols[f];
      throw new ValidationError(
        `feature view "${view.name}": feature "${field.name}" (${field.dtype}) value ${describe(col?.[r])} in row ${r} is not ${e.expected}`,
      );
    }
    throw e;
  }
  offsets[n] = w.off;
  return { buf: w.buf, offsets, starts, ends };
}

/** Writes `<frame><length>:` into the room before the payload at `at` (moving a payload too long for it). */
function frameRow(
  w: Writer,
  frame: Buffer,
  at: number,
  room: number,
  r: number,
  starts: Float64Array,
  ends: Float64Array,
): void {
  let len = w.off - at;
  const digits = String(len).length;
  if (frame.length + digits + 1 > room) {
    // a payload of 10 MB or more: shift it right to make room for its length
    const extra = frame.length + digits + 1 - room;
    w.ensure(extra);
    w.buf.copyWithin(at + extra, at, w.off);
    w.off += extra;
    at += extra;
  }
  const b = w.buf;
  let p = at;
  b[--p] = COLON;
  do {
    const q = Math.floor(len / 10);
    b[--p] = 48 + (len - q * 10);
    len = q;
  } while (len > 0);
  p -= frame.length;
  frame.copy(b, p);
  starts[r] = p;
  ends[r] = w.off;
}

// ---------------------------------------------------------------- decoding

function readInt64(dv: DataView, o: number): number | bigint {
  const hi = dv.getInt32(o + 4, true);
  if (hi >= -2097152 && hi < 2097152) return hi * TWO32 + dv.getUint32(o, true);
  return dv.getBigInt64(o, true);
}

interface Cursor {
  o: number;
}

function readVarint(b: Buffer, c: Cursor): number {
  let n = 0;
  let shift = 0;
  let byte: number;
  do {
    byte = b[c.o++];
    n += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return n;
}

/** A fixed-size scalar at `o` of `b` (`dv` spans b's whole ArrayBuffer, `base` is b's offset in it). */
function readFixed(b: Buffer, dv: DataView, base: number, code: number, o: number): unknown {
  switch (code) {
    case T_FLOAT:
      return dv.getFloat64(base + o, true);
    case T_INT32:
      return dv.getInt32(base + o, true);
    case T_INT64:
    case T_TIMESTAMP:
      return readInt64(dv, base + o);
    case T_BOOL:
      return b[o] === 1;
  }
  throw new Error(`corrupt online payload: type code ${code} is not fixed-size`);
}

function readScalar(b: Buffer, dv: DataView, base: number, code: number, c: Cursor): unknown {
  const o = c.o;
  switch (code) {
    case T_FLOAT:
    case T_INT32:
    case T_INT64:
    case T_TIMESTAMP:
    case T_BOOL:
      c.o = o + fixedSize(code);
      return readFixed(b, dv, base, code, o);
    case T_STRING: {
      const n = readVarint(b, c);
      const s = b.toString("utf8", c.o, c.o + n);
      c.o += n;
      return s;
    }
    case T_BYTES: {
      const n = readVarint(b, c);
      const out = Buffer.from(b.subarray(c.o, c.o + n));
      c.o += n;
      return out;
    }
  }
  throw new Error(`corrupt online payload: unknown type code ${code}`);
}

// ---------------------------------------------------------------- column-wise decoding

/** Bytes of a fixed-size scalar, 0 for variable-size ones (string, bytes). */
function fixedSize(code: number): number {
  switch (code) {
    case T_FLOAT:
    case T_INT64:
    case T_TIMESTAMP:
      return 8;
    case T_INT32:
      return 4;
    case T_BOOL:
      return 1;
    default:
      return 0;
  }
}

function skipValue(b: Buffer, code: number, c: Cursor): void {
  if ((code & LIST) === 0) {
    const size = fixedSize(code);
    // (not `c.o += readVarint(...)`: that adds to c.o as it was before the varint was read)
    const n = size || readVarint(b, c);
    c.o += n;
    return;
  }
  const len = readVarint(b, c);
  const size = fixedSize(code & 7);
  if (size) {
    c.o += size * len;
    return;
  }
  for (let i = 0; i < len; i++) {
    const n = readVarint(b, c);
    c.o += n;
  }
}

/** Cursor over a payload's values, reused (decoding is synchronous): no object per decoded payload. */
const cursor: Cursor = { o: 0 };
/** The DataView of the last ArrayBuffer decoded from: payloads sliced from one reply buffer share it. */
let viewBuffer: ArrayBufferLike | undefined;
const NO_VIEW: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
let view = NO_VIEW;

/** A DataView over all of b's ArrayBuffer (decodeInto adds b.byteOffset); cached for the last buffer. */
export function dataViewOf(b: Uint8Array): DataView {
  if (b.buffer !== viewBuffer) {
    viewBuffer = b.buffer;
    view = new DataView(b.buffer);
  }
  return view;
}

/** Lets go of the last decoded buffer (the cached DataView would otherwise keep it alive). */
export function releaseDecodeBuffer(): void {
  viewBuffer = undefined;
  view = NO_VIEW;
}

/**
 * Unpacks the payload at `start` of `b` (written with `schema`) into row `row` of output columns (`dv`
 * is dataViewOf(b), fetched once per buffer by the caller):
 * `columns[f]` is the column of schema field f, or undefined when it was not asked for (skipped).
 * Returns the payload's event time (ms). No object per payload: a read of 100 entities x 25 views
 * fills 250 arrays instead of making 2,500 records.
 */
export function decodeInto(
  b: Buffer,
  dv: DataView,
  start: number,
  schema: PayloadSchema,
  columns: ReadonlyArray<unknown[] | undefined>,
  row: number,
): number {
  if (b[start] !== PAYLOAD_VERSION)
    throw new Error(`corrupt online payload: version ${b[start]}, expected ${PAYLOAD_VERSION}`);
  const base = b.byteOffset;
  const codes = schema.codes;
  const bitmapAt = start + HEADER_BYTES;
  const c = cursor;
  c.o = bitmapAt + schema.bitmapBytes;
  for (let f = 0; f < codes.length; f++) {
    const out = columns[f];
    if ((b[bitmapAt + (f >> 3)] & (1 << (f & 7))) === 0) {
      if (out !== undefined) out[row] = null;
      continue;
    }
    const code = codes[f];
    if (out === undefined) {
      skipValue(b, code, c);
    } else if (code === T_FLOAT) {
      out[row] = dv.getFloat64(base + c.o, true);
      c.o += 8;
    } else if ((code & LIST) === 0) {
      out[row] = readScalar(b, dv, base, code, c);
    } else {
      const len = readVarint(b, c);
      const arr = new Array<unknown>(len);
      const elem = code & 7;
      for (let i = 0; i < len; i++) arr[i] = readScalar(b, dv, base, elem, c);
      out[row] = arr;
    }
  }
  return dv.getFloat64(base + start + TS_OFFSET, true);
}

const doubleTemplates = new Map<number, unknown[]>();
/** dtypes decoded to JS numbers (int64 beyond 2^53 gives a bigint: the column then holds any value) */
const NUMERIC = new Set<string>(["float64", "float32", "int32", "int64", "unix_timestamp"]);

/**
 * A column of `rows` NaNs whose elements V8 keeps as unboxed doubles, for numeric features: decoding a
 * number into it allocates nothing (a null-filled array boxes every number it is given: 25,000 heap
 * numbers for 100 x 250 features). Rows left without a value are set to null by ReadResults.finish.
 */
function doubleColumn(rows: number): unknown[] {
  if (rows === 1) return [NaN];
  let t = doubleTemplates.get(rows);
  if (t === undefined) {
    t = [];
    for (let i = 0; i < rows; i++) t.push(NaN);
    if (doubleTemplates.size < 64) doubleTemplates.set(rows, t);
  }
  return t.slice();
}

const numericOf = new WeakMap<FeatureViewSpec, Set<string>>();

/** The view's features decoded to numbers (cached per spec object). */
function numericFeatures(view: FeatureViewSpec): Set<string> {
  let set = numericOf.get(view);
  if (!set) {
    set = new Set(view.features.filter((f) => NUMERIC.has(f.dtype)).map((f) => f.name));
    numericOf.set(view, set);
  }
  return set;
}

/** The answers of one read, and decodeInto's output columns per request and payload schema. */
export class ReadResults {
  private readonly out: OnlineReadResult[];
  /** per request: the columns for its view's current payload schema (nearly always the only one)... */
  private readonly columns: Array<{ fingerprint: number; columns: Array<unknown[] | undefined> } | undefined>;
  /** ...and for older schemas, by fingerprint */
  private older: Map<string, Array<unknown[] | undefined>> | undefined;

  constructor(private readonly requests: readonly OnlineReadRequest[]) {
    this.out = requests.map((r) => {
      const n = r.entityKeys.length;
      const values: Record<string, unknown[]> = {};
      const numeric = numericFeatures(r.view);
      for (const f of r.features) values[f] = numeric.has(f) ? doubleColumn(n) : new Array<unknown>(n).fill(null);
      return { eventTs: new Float64Array(n).fill(NaN), values };
    });
    this.columns = new Array<(typeof this.columns)[number]>(requests.length).fill(undefined);
  }

  /** The event-time column of request `req` (NaN until a row is decoded). */
  eventTsOf(req: number): Float64Array {
    return this.out[req].eventTs;
  }

  /** The answers, once every payload is decoded: rows no payload was found for are null. */
  finish(): OnlineReadResult[] {
    for (const res of this.out) {
      const ts = res.eventTs;
      let cols: unknown[][] | undefined;
      for (let i = 0; i < ts.length; i++) {
        if (!Number.isNaN(ts[i])) continue;
        cols ??= Object.values(res.values);
        for (const c of cols) c[i] = null;
      }
    }
    return this.out;
  }

  /** decodeInto's output columns of request `req` for payloads written with `schema`. */
  columnsFor(req: number, schema: PayloadSchema): Array<unknown[] | undefined> {
    const first = this.columns[req];
    if (first !== undefined && first.fingerprint === schema.fingerprint) return first.columns;
    const key = `${req}:${schema.fingerprint}`;
    let cols = first === undefined ? undefined : this.older?.get(key);
    if (!cols) {
      const values = this.out[req].values;
      cols = schema.names.map((n) => (Object.hasOwn(values, n) ? values[n] : undefined));
      if (first === undefined) this.columns[req] = { fingerprint: schema.fingerprint, columns: cols };
      else (this.older ??= new Map()).set(key, cols);
    }
    return cols;
  }

  /**
   * Decodes the payload at `start` of `b`, written with `schema`, into row `row` of request `req`.
   * Features the payload's schema does not have (added to the view since) are null in that row.
   */
  decode(req: number, row: number, b: Buffer, start: number, schema: PayloadSchema): void {
    const res = this.out[req];
    res.eventTs[row] = decodeInto(b, dataViewOf(b), start, schema, this.columnsFor(req, schema), row);
    for (const f of this.requests[req].features) if (!schema.names.includes(f)) res.values[f][row] = null;
  }
}
