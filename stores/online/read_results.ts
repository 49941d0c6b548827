// The answer of one online read: payloads decoded straight into per-feature columns (no object per entity
// row or per payload), for both stores.

import type { FeatureViewSpec } from "../../registry/types.js";
import type { OnlineReadGroup, OnlineReadResult } from "../types.js";
import {
  HEADER_BYTES,
  LIST,
  PAYLOAD_VERSION,
  type PayloadSchema,
  type SchemaBook,
  T_BOOL,
  T_BYTES,
  T_FLOAT,
  T_INT32,
  T_INT64,
  T_STRING,
  T_TIMESTAMP,
  TS_OFFSET,
  payloadFingerprint,
} from "./payload.js";

const TWO32 = 4294967296;

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

function readInt64(dv: DataView, o: number): number | bigint {
  const hi = dv.getInt32(o + 4, true);
  if (hi >= -2097152 && hi < 2097152) return hi * TWO32 + dv.getUint32(o, true);
  return dv.getBigInt64(o, true);
}

const NO_BUFFER: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

/**
 * Unpacks payloads into output columns. Holds its position in the payload and a DataView over the buffer
 * it reads, made once per buffer (a read's payloads come in a few buffers: one per SQLite statement, one
 * per chunk of a Redis reply).
 */
class PayloadReader {
  private at = 0;
  private source: Buffer | undefined;
  private dv = NO_BUFFER;

  /**
   * Unpacks the payload at `start` of `b` (written with `schema`) into row `row` of `columns`: `columns[f]`
   * is the column of schema field f, or undefined when it was not asked for (skipped). Returns the
   * payload's event time (ms).
   */
  decode(
    b: Buffer,
    start: number,
    schema: PayloadSchema,
    columns: ReadonlyArray<unknown[] | undefined>,
    row: number,
  ): number {
    if (b[start] !== PAYLOAD_VERSION)
      throw new Error(`corrupt online payload: version ${b[start]}, expected ${PAYLOAD_VERSION}`);
    if (b !== this.source) {
      this.source = b;
      this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    const dv = this.dv;
    const codes = schema.codes;
    const bitmapAt = start + HEADER_BYTES;
    this.at = bitmapAt + schema.bitmapBytes;
    for (let f = 0; f < codes.length; f++) {
      const out = columns[f];
      if ((b[bitmapAt + (f >> 3)] & (1 << (f & 7))) === 0) {
        if (out !== undefined) out[row] = null;
        continue;
      }
      const code = codes[f];
      if (out === undefined) {
        this.skip(b, code);
      } else if (code === T_FLOAT) {
        out[row] = dv.getFloat64(this.at, true);
        this.at += 8;
      } else if ((code & LIST) === 0) {
        out[row] = this.scalar(b, code);
      } else {
        const len = this.varint(b);
        const arr = new Array<unknown>(len);
        const elem = code & 7;
        for (let i = 0; i < len; i++) arr[i] = this.scalar(b, elem);
        out[row] = arr;
      }
    }
    return dv.getFloat64(start + TS_OFFSET, true);
  }

  private varint(b: Buffer): number {
    let n = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = b[this.at++];
      n += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return n;
  }

  private scalar(b: Buffer, code: number): unknown {
    const o = this.at;
    switch (code) {
      case T_FLOAT:
        this.at = o + 8;
        return this.dv.getFloat64(o, true);
      case T_INT32:
        this.at = o + 4;
        return this.dv.getInt32(o, true);
      case T_INT64:
      case T_TIMESTAMP:
        this.at = o + 8;
        return readInt64(this.dv, o);
      case T_BOOL:
        this.at = o + 1;
        return b[o] === 1;
      case T_STRING: {
        const n = this.varint(b);
        const s = b.toString("utf8", this.at, this.at + n);
        this.at += n;
        return s;
      }
      case T_BYTES: {
        const n = this.varint(b);
        const out = Buffer.from(b.subarray(this.at, this.at + n));
        this.at += n;
        return out;
      }
    }
    throw new Error(`corrupt online payload: unknown type code ${code}`);
  }

  private skip(b: Buffer, code: number): void {
    if ((code & LIST) === 0) {
      const size = fixedSize(code);
      // (not `this.at += this.varint(b)`: that adds to `at` as it was before the varint was read)
      const n = size || this.varint(b);
      this.at += n;
      return;
    }
    const len = this.varint(b);
    const size = fixedSize(code & 7);
    if (size) {
      this.at += size * len;
      return;
    }
    for (let i = 0; i < len; i++) {
      const n = this.varint(b);
      this.at += n;
    }
  }
}

/**
 * `rows` NaNs in an array V8 keeps as unboxed doubles (packed), for numeric features: decoding a number into
 * a copy allocates nothing, where a null-filled array boxes every number it is given. Rows left without a
 * value are set to null by ReadResults.finish. Made once per read, copied per column.
 */
function nanColumn(rows: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < rows; i++) out.push(NaN);
  return out;
}

/** What one view of a read group is decoded into. */
interface Slot {
  features: readonly string[];
  /** the view's current payload schema (nearly every payload's)... */
  schema: PayloadSchema;
  /** ...and the output column of each of its fields (undefined: not asked for) */
  columns: Array<unknown[] | undefined>;
  /** output columns for payloads of older schemas, by fingerprint */
  older: Map<number, Array<unknown[] | undefined>> | undefined;
  result: OnlineReadResult;
}

/** The answer of one read, filled payload by payload; groups[g].views[v] is decoded into slot(g, v). */
export class ReadResults {
  private readonly reader = new PayloadReader();
  private readonly slots: Slot[] = [];
  /** per group: the slot of its first view */
  private readonly firstSlot: number[] = [];

  constructor(
    private readonly groups: readonly OnlineReadGroup[],
    /** payload schemas by fingerprint, for payloads written before a view's schema changed */
    private readonly book: SchemaBook,
    currentSchema: (view: FeatureViewSpec) => PayloadSchema,
  ) {
    for (const g of groups) {
      this.firstSlot.push(this.slots.length);
      const n = g.entityKeys.length;
      const nans = nanColumn(n);
      for (const { view, features } of g.views) {
        const schema = currentSchema(view);
        const values: Record<string, unknown[]> = {};
        for (const f of features) values[f] = schema.numeric.has(f) ? nans.slice() : new Array<unknown>(n).fill(null);
        this.slots.push({
          features,
          schema,
          columns: schema.names.map((name) => (Object.hasOwn(values, name) ? values[name] : undefined)),
          older: undefined,
          result: { eventTs: new Float64Array(n).fill(NaN), values },
        });
      }
    }
  }

  /** The slot of `groups[g].views[v]`. */
  slot(g: number, v: number): number {
    return this.firstSlot[g] + v;
  }

  /**
   * Decodes the payload at `at` of `b` into row `row` of slot `s`; false when it was written with a schema
   * the book does not hold (the store loads it, then decodes again). Features the payload's schema lacks
   * (added to the view since) are null in that row.
   */
  decode(s: number, row: number, b: Buffer, at: number): boolean {
    const slot = this.slots[s];
    const fingerprint = payloadFingerprint(b, at);
    if (fingerprint === slot.schema.fingerprint) {
      slot.result.eventTs[row] = this.reader.decode(b, at, slot.schema, slot.columns, row);
      return true;
    }
    const schema = this.book.get(fingerprint);
    if (schema === undefined) return false;
    let columns = slot.older?.get(fingerprint);
    if (columns === undefined) {
      const values = slot.result.values;
      columns = schema.names.map((name) => (Object.hasOwn(values, name) ? values[name] : undefined));
      (slot.older ??= new Map()).set(fingerprint, columns);
    }
    slot.result.eventTs[row] = this.reader.decode(b, at, schema, columns, row);
    for (const f of slot.features) if (!schema.names.includes(f)) slot.result.values[f][row] = null;
    return true;
  }

  /** The answers, once every payload is decoded: rows no payload was found for are null. */
  finish(): OnlineReadResult[][] {
    for (const { result } of this.slots) {
      const ts = result.eventTs;
      let cols: unknown[][] | undefined;
      for (let i = 0; i < ts.length; i++) {
        if (!Number.isNaN(ts[i])) continue;
        cols ??= Object.values(result.values);
        for (const c of cols) c[i] = null;
      }
    }
    return this.groups.map((g, gi) => g.views.map((_, v) => this.slots[this.firstSlot[gi] + v].result));
  }
}
