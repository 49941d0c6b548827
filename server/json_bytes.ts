// JSON text written straight into one growing byte buffer, for the online answer the feature server sends.
//
// Why not strings: an answer built as string parts, joined, then prefixed with the HTTP header by node makes
// young garbage in proportion to its size, and the scavenges it triggers set the server's tail latency.
// Here the answer's bytes live outside the V8 heap, constant pieces are copied as bytes, and numbers and
// times are written digit by digit: the only heap garbage left is the text of strings and of numbers with
// many digits. With a BufferPool the buffers are reused too, since every buffer a scavenge finds dead costs
// it a free().

import { inCivilRange, isoUtc, utcFields } from "../common/time.js";

/** Bytes of an ASCII/latin-1 constant, for `JsonBytes.bytes` (made once, copied many times). */
export function asciiBytes(s: string): Uint8Array {
  return Buffer.from(s, "latin1");
}

const COMMA = 44;
/** "00" to "99", two bytes each */
const PAIRS = asciiBytes(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, "0")).join(""));
/** isoTime's calendar fields, reused: writing answers is synchronous. */
const TIME_FIELDS = new Int32Array(7);
const NULL = asciiBytes("null");
const TRUE = asciiBytes("true");
const FALSE = asciiBytes("false");
/** strings up to this length are copied char by char in JS; longer ones in one native utf8 write */
const SHORT = 32;

/**
 * Reusable byte buffers in power-of-two sizes from 16 KB to 4 MB, a few of each and at most
 * `maxHeldBytes` in all: for answers handed to a socket and given back once written. Only buffers the
 * pool made are taken back.
 * defended by: `npm run bench -- server` 1 row x 250 features @1000 req/s p99
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly made = new WeakSet<ArrayBufferLike>();
  /** bytes of the buffers waiting in `free` */
  private held = 0;

  constructor(
    private readonly perSize = 16,
    private readonly maxHeldBytes = 32 << 20,
  ) {}

  /** A buffer of at least `min` bytes, its content undefined. */
  take(min: number): Buffer {
    if (this.perSize === 0) return Buffer.allocUnsafeSlow(Math.max(64, min));
    const size = sizeFor(min);
    const ab = size <= MAX_POOLED ? this.free.get(size)?.pop() : undefined;
    if (ab !== undefined) {
      this.held -= ab.byteLength;
      return Buffer.from(ab);
    }
    // not from node's shared 8 KB slab: the answer is handed to the socket and must stay as written
    const b = Buffer.allocUnsafeSlow(size);
    if (size <= MAX_POOLED) this.made.add(b.buffer);
    return b;
  }

  /** Gives back the buffer under `b` (a view of a buffer from take()) once nothing reads it any more. */
  give(b: Uint8Array): void {
    const ab = b.buffer;
    if (!this.made.has(ab) || !(ab instanceof ArrayBuffer)) return;
    let list = this.free.get(ab.byteLength);
    if (list === undefined) this.free.set(ab.byteLength, (list = []));
    if (list.length >= this.perSize || this.held + ab.byteLength > this.maxHeldBytes || list.includes(ab)) return;
    list.push(ab);
    this.held += ab.byteLength;
  }
}

const MIN_POOLED = 16_384;
const MAX_POOLED = 4 << 20;

function sizeFor(min: number): number {
  let size = MIN_POOLED;
  while (size < min) size *= 2;
  return size;
}

/** A throwaway pool: buffers taken from it are never given back. */
const NO_POOL = new BufferPool(0);

export class JsonBytes {
  private buf: Buffer;
  private at = 0;

  constructor(
    capacity: number,
    private readonly pool: BufferPool = NO_POOL,
  ) {
    this.buf = pool.take(capacity);
  }

  /** The bytes written so far (a view of the buffer, not a copy). */
  finish(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = this.pool.take(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.pool.give(this.buf);
    this.buf = bigger;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.at;
  }

  /** Appends a copy of bytes [start, end) already written. */
  copyOf(start: number, end: number): void {
    this.room(end - start);
    this.buf.copyWithin(this.at, start, end);
    this.at += end - start;
  }

  byte(c: number): void {
    this.room(1);
    this.buf[this.at++] = c;
  }

  bytes(b: Uint8Array): void {
    const n = b.length;
    this.room(n);
    if (n > 24) {
      this.buf.set(b, this.at);
      this.at += n;
      return;
    }
    // a loop beats TypedArray#set's setup on a few bytes
    const buf = this.buf;
    let o = this.at;
    for (let i = 0; i < n; i++) buf[o++] = b[i];
    this.at = o;
  }

  /** Text already in JSON form (a number's, or JSON.stringify's output), any Unicode, as UTF-8. */
  raw(s: string): void {
    const n = s.length;
    if (n <= SHORT) {
      this.room(n * 3);
      let i = 0;
      // ASCII (all number text, most strings) char by char: a native call per short string costs more
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 127) break;
        this.buf[this.at++] = c;
      }
      if (i < n) this.at += this.buf.write(s.slice(i), this.at, "utf8");
      return;
    }
    this.room(n * 3);
    this.at += this.buf.write(s, this.at, "utf8");
  }

  /**
   * A number as JSON.stringify writes it (the shortest text that reads back as the same double), with
   * no string made for most values: integers below 2^53 are written digit by digit, and so are numbers
   * with at most 6 decimals below 1e9 (see decimals()); others go through JSON.stringify. NaN and the
   * infinities are written as null.
   */
  number(x: number): void {
    if (Number.isSafeInteger(x)) {
      this.room(17);
      if (x < 0) {
        this.buf[this.at++] = 45; // '-'
        this.digits(-x);
      } else this.digits(x);
      return;
    }
    const v = x < 0 ? -x : x;
    if (v >= 1e-6 && v < 1e9) {
      const r = Math.round(v * 1e6);
      if (r / 1e6 === v) {
        this.room(18);
        if (x < 0) this.buf[this.at++] = 45;
        this.decimals(r);
        return;
      }
    }
    if (Number.isFinite(x)) this.raw(JSON.stringify(x));
    else this.bytes(NULL);
  }

  /** The digits of a non-negative safe integer (room made by the caller), two at a time. */
  private digits(v: number): void {
    const b = this.buf;
    let n = 1;
    for (let p = 10; p <= v; p *= 10) n++;
    let o = this.at + n;
    this.at = o;
    while (v >= 100) {
      const q = Math.floor(v / 100);
      const d = (v - q * 100) * 2;
      b[--o] = PAIRS[d + 1];
      b[--o] = PAIRS[d];
      v = q;
    }
    if (v >= 10) {
      b[--o] = PAIRS[v * 2 + 1];
      b[--o] = PAIRS[v * 2];
    } else b[--o] = 48 + v;
  }

  /**
   * r / 1e6 in decimal, trailing zeros dropped, where r / 1e6 (correctly rounded) is the double being
   * written. That text is the one JSON.stringify gives: it reads back as the double, and no text with
   * fewer decimals does, because any such text differs from it by at least 1e-6 while doubles below 1e9
   * are less than 2.4e-7 apart; and between 1e-6 and 1e21 JSON.stringify writes no exponent.
   */
  private decimals(r: number): void {
    const whole = Math.floor(r / 1e6);
    let fraction = r - whole * 1e6;
    this.digits(whole);
    let places = 6;
    while (fraction % 10 === 0) {
      fraction /= 10;
      places--;
    }
    const b = this.buf;
    b[this.at++] = 46; // '.'
    let o = this.at + places;
    this.at = o;
    // leading zeros included: `places` digits, two at a time
    for (; places >= 2; places -= 2) {
      const q = Math.floor(fraction / 100);
      const d = (fraction - q * 100) * 2;
      b[--o] = PAIRS[d + 1];
      b[--o] = PAIRS[d];
      fraction = q;
    }
    if (places === 1) b[--o] = 48 + fraction;
  }

  /**
   * A time (ms since the epoch) as the JSON string of isoUtc(ms) ("2024-01-31T12:00:00Z", ".123" before
   * the Z when it has milliseconds), digit by digit for years 0000-9999: no string is made.
   */
  isoTime(ms: number): void {
    if (!inCivilRange(ms)) {
      this.raw(JSON.stringify(isoUtc(ms)));
      return;
    }
    const f = TIME_FIELDS;
    utcFields(ms, f);
    const y = f[0];
    const m = f[1];
    const d = f[2];
    const hh = f[3];
    const mi = f[4];
    const ss = f[5];
    const milli = f[6];
    this.room(26);
    const b = this.buf;
    let o = this.at;
    b[o++] = 34; // '"'
    const hi = Math.floor(y / 100);
    b[o++] = PAIRS[hi * 2];
    b[o++] = PAIRS[hi * 2 + 1];
    b[o++] = PAIRS[(y - hi * 100) * 2];
    b[o++] = PAIRS[(y - hi * 100) * 2 + 1];
    b[o++] = 45; // '-'
    b[o++] = PAIRS[m * 2];
    b[o++] = PAIRS[m * 2 + 1];
    b[o++] = 45;
    b[o++] = PAIRS[d * 2];
    b[o++] = PAIRS[d * 2 + 1];
    b[o++] = 84; // 'T'
    b[o++] = PAIRS[hh * 2];
    b[o++] = PAIRS[hh * 2 + 1];
    b[o++] = 58; // ':'
    b[o++] = PAIRS[mi * 2];
    b[o++] = PAIRS[mi * 2 + 1];
    b[o++] = 58;
    b[o++] = PAIRS[ss * 2];
    b[o++] = PAIRS[ss * 2 + 1];
    if (milli !== 0) {
      b[o++] = 46; // '.'
      const h = Math.floor(milli / 100);
      b[o++] = 48 + h;
      b[o++] = PAIRS[(milli - h * 100) * 2];
      b[o++] = PAIRS[(milli - h * 100) * 2 + 1];
    }
    b[o++] = 90; // 'Z'
    b[o++] = 34;
    this.at = o;
  }

  /** Any JSON value of a feature column (number, string, boolean, null, bigint, list, bytes...). */
  value(x: unknown): void {
    if (typeof x === "number") this.number(x);
    else if (x === null || x === undefined) this.bytes(NULL);
    else if (typeof x === "string") this.raw(JSON.stringify(x));
    else if (typeof x === "boolean") this.bytes(x ? TRUE : FALSE);
    else if (typeof x === "bigint") this.raw(x.toString());
    else if (Array.isArray(x)) {
      this.byte(91); // '['
      for (let i = 0; i < x.length; i++) {
        if (i) this.byte(COMMA);
        this.value(x[i]);
      }
      this.byte(93); // ']'
    } else this.raw(JSON.stringify(x) ?? "null");
  }
}
