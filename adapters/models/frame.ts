// Columnar training data: typed arrays per column, lists as offsets + values. Built once from rows or column
// batches (e.g. a point-in-time join), then sliced by row index for every mini-batch without per-row objects.
import { ValidationError } from "../../common/errors.js";
import type { ColumnBatch } from "../../stores/types.js";
import type { CategoricalInput, ContinuousInput } from "./schema.js";

export interface ListColumn {
  /** row i holds values[offsets[i] .. offsets[i + 1]) */
  offsets: Int32Array;
  values: Int32Array;
}

export type Column = Int32Array | Float32Array | ListColumn;

export interface Frame {
  length: number;
  columns: Record<string, Column>;
}

export function isList(c: Column): c is ListColumn {
  return !ArrayBuffer.isView(c);
}

export interface FrameInputs {
  categorical: CategoricalInput[];
  continuous: ContinuousInput[];
  /** extra columns kept as they are read (numbers): ids, targets */
  extra?: string[];
}

function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "string" && v.trim() !== "") return Number(v);
  return NaN;
}

/**
 * Build a Frame from column batches (the shape of `RetrievalJob.batches()`), checking that every input column is
 * there and every categorical value is an index below its cardinality. Nulls become 0 (Categorify's null/OOV
 * index) for categoricals and 0 for continuous values. `where` names the data in errors.
 */
export function frameFromBatches(batches: Iterable<ColumnBatch>, inputs: FrameInputs, where = "training data"): Frame {
  const all = [...batches];
  const length = all.reduce((a, b) => a + b.length, 0);
  const present = new Set(all.length ? Object.keys(all[0].columns) : []);
  const needed = [
    ...inputs.categorical.map((c) => c.name),
    ...inputs.continuous.map((c) => c.name),
    ...(inputs.extra ?? []),
  ];
  const missing = needed.filter((n) => !present.has(n));
  if (all.length && missing.length) {
    throw new ValidationError(
      `${where}: missing feature column(s) ${missing.map((m) => `"${m}"`).join(", ")}; it has ${[...present].join(", ")}`,
    );
  }
  const columns: Record<string, Column> = {};
  for (const c of inputs.categorical) {
    if (c.isList) {
      const offsets = new Int32Array(length + 1);
      const vals: number[] = [];
      let r = 0;
      for (const b of all) {
        const col = b.columns[c.name];
        for (let i = 0; i < b.length; i++, r++) {
          const v = col[i];
          const arr =
            v == null
              ? []
              : Array.isArray(v) || ArrayBuffer.isView(v)
                ? Array.from(v as ArrayLike<unknown>)
                : typeof v === "object" && v !== null && "toArray" in v
                  ? Array.from((v as { toArray(): ArrayLike<unknown> }).toArray())
                  : [v];
          for (const x of arr) vals.push(checkIndex(num(x), c, where, r));
          offsets[r + 1] = vals.length;
        }
      }
      columns[c.name] = { offsets, values: Int32Array.from(vals) };
    } else {
      const out = new Int32Array(length);
      let r = 0;
      for (const b of all) {
        const col = b.columns[c.name];
        for (let i = 0; i < b.length; i++, r++) out[r] = col[i] == null ? 0 : checkIndex(num(col[i]), c, where, r);
      }
      columns[c.name] = out;
    }
  }
  for (const c of inputs.continuous) columns[c.name] = numericColumn(all, c.name, length, where, true);
  for (const name of inputs.extra ?? [])
    if (!(name in columns)) columns[name] = numericColumn(all, name, length, where, false);
  return { length, columns };
}

function numericColumn(
  all: ColumnBatch[],
  name: string,
  length: number,
  where: string,
  asFloat: boolean,
): Int32Array | Float32Array {
  const vals = new Float64Array(length);
  let r = 0;
  let integral = true;
  for (const b of all) {
    const col = b.columns[name];
    for (let i = 0; i < b.length; i++, r++) {
      const v = col[i];
      const x = v == null ? 0 : num(v);
      if (Number.isNaN(x))
        throw new ValidationError(
          `${where}: column "${name}" row ${r}: expected a number, got ${JSON.stringify(String(v))}`,
        );
      if (!Number.isInteger(x)) integral = false;
      vals[r] = x;
    }
  }
  return asFloat || !integral ? Float32Array.from(vals) : Int32Array.from(vals);
}

function checkIndex(x: number, c: CategoricalInput, where: string, row: number): number {
  if (!Number.isInteger(x) || x < 0 || x >= c.cardinality) {
    throw new ValidationError(
      `${where}: column "${c.name}" row ${row}: value ${x} is not a category index in [0, ${c.cardinality}) (cardinality from the schema)`,
    );
  }
  return x;
}

/** Build a Frame from row objects (as `RetrievalJob.toRows()` gives). */
export function frameFromRows(
  rows: Array<Record<string, unknown>>,
  inputs: FrameInputs,
  where = "training data",
): Frame {
  const names = rows.length ? Object.keys(rows[0]) : [];
  const columns: Record<string, unknown[]> = {};
  for (const n of names) columns[n] = rows.map((r) => r[n]);
  return frameFromBatches([{ length: rows.length, columns }], inputs, where);
}

/** Rows `idx` of the named columns (all when `names` is omitted). */
export function takeRows(frame: Frame, idx: Int32Array, names: string[] = Object.keys(frame.columns)): Frame {
  const columns: Record<string, Column> = {};
  for (const n of names) {
    const c = frame.columns[n];
    if (!c)
      throw new ValidationError(`column "${n}" is not in the data (have ${Object.keys(frame.columns).join(", ")})`);
    if (isList(c)) {
      let total = 0;
      for (let i = 0; i < idx.length; i++) total += c.offsets[idx[i] + 1] - c.offsets[idx[i]];
      const offsets = new Int32Array(idx.length + 1);
      const values = new Int32Array(total);
      let p = 0;
      for (let i = 0; i < idx.length; i++) {
        const s = c.offsets[idx[i]];
        const e = c.offsets[idx[i] + 1];
        values.set(c.values.subarray(s, e), p);
        p += e - s;
        offsets[i + 1] = p;
      }
      columns[n] = { offsets, values };
    } else {
      const out = c instanceof Float32Array ? new Float32Array(idx.length) : new Int32Array(idx.length);
      for (let i = 0; i < idx.length; i++) out[i] = c[idx[i]];
      columns[n] = out;
    }
  }
  return { length: idx.length, columns };
}

/** Columns of several frames of equal length side by side (later frames win on a name clash). */
export function joinColumns(...frames: Frame[]): Frame {
  const length = frames[0].length;
  for (const f of frames)
    if (f.length !== length) throw new Error(`joinColumns: lengths differ (${length} vs ${f.length})`);
  return { length, columns: Object.assign({}, ...frames.map((f) => f.columns)) as Record<string, Column> };
}

/** One row per distinct value of `key` (the last occurrence wins), ordered by key. */
export function uniqueBy(frame: Frame, key: string, names?: string[]): Frame {
  const k = frame.columns[key];
  if (!k || isList(k)) throw new ValidationError(`key column "${key}" must be a scalar column of the data`);
  const last = new Map<number, number>();
  for (let i = 0; i < frame.length; i++) last.set(k[i], i);
  const keys = [...last.keys()].sort((a, b) => a - b);
  return takeRows(frame, Int32Array.from(keys.map((x) => last.get(x) as number)), names ?? Object.keys(frame.columns));
}

/** A deterministic PRNG (mulberry32), so training and sampling are repeatable from a seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled(n: number, rand: () => number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** Rows [start, end) of a frame without copying scalar columns. */
export function sliceFrame(frame: Frame, start: number, end: number): Frame {
  const columns: Frame["columns"] = {};
  for (const [n, c] of Object.entries(frame.columns)) {
    if (ArrayBuffer.isView(c)) columns[n] = c.subarray(start, end);
    else {
      const offsets = new Int32Array(end - start + 1);
      const base = c.offsets[start];
      for (let i = 0; i <= end - start; i++) offsets[i] = c.offsets[start + i] - base;
      columns[n] = { offsets, values: c.values.subarray(base, c.offsets[end]) };
    }
  }
  return { length: end - start, columns };
}

/** Rows of `a` then rows of `b`, for the named columns. */
export function concatFrames(a: Frame, b: Frame, names: string[]): Frame {
  const idxA = new Int32Array(a.length).map((_, i) => i);
  const idxB = new Int32Array(b.length).map((_, i) => i);
  const columns: Frame["columns"] = {};
  for (const n of names) {
    const ca = takeRows(a, idxA, [n]).columns[n];
    const cb = takeRows(b, idxB, [n]).columns[n];
    if (ArrayBuffer.isView(ca) && ArrayBuffer.isView(cb)) {
      const out =
        ca instanceof Float32Array || cb instanceof Float32Array
          ? new Float32Array(a.length + b.length)
          : new Int32Array(a.length + b.length);
      out.set(ca);
      out.set(cb, a.length);
      columns[n] = out;
    } else if (!ArrayBuffer.isView(ca) && !ArrayBuffer.isView(cb)) {
      const offsets = new Int32Array(a.length + b.length + 1);
      offsets.set(ca.offsets);
      const base = ca.offsets[a.length];
      for (let i = 1; i <= b.length; i++) offsets[a.length + i] = base + cb.offsets[i];
      const values = new Int32Array(ca.values.length + cb.values.length);
      values.set(ca.values);
      values.set(cb.values, ca.values.length);
      columns[n] = { offsets, values };
    } else throw new Error(`column "${n}" is a list in one part and a scalar in the other`);
  }
  return { length: a.length + b.length, columns };
}
