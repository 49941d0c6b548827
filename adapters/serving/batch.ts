// The data a pipeline's stages pass along: a batch of request rows (one per entity) and, per row, its candidates,
// stored column-wise with offsets (row r owns candidates offsets[r] .. offsets[r + 1]). Every stage works per row,
// so a batch of users never mixes their candidates.

import type { Column, Frame, ListColumn } from "../models/frame.js";

export interface RequestRows {
  n: number;
  /** the entity key and every query-side column a stage wrote, one value per row */
  columns: Record<string, unknown[]>;
  /** query embeddings, row-major [n, dim] (QueryTower) */
  embedding: Float32Array | null;
  dim: number;
  /** rows still served by the pipeline (0: answered by the fallback) */
  active: Uint8Array;
}

export interface Candidates {
  offsets: Int32Array;
  /** the item key and every candidate-side column a stage wrote, one value per candidate */
  columns: Record<string, unknown[]>;
  score: Float64Array;
}

export function emptyCandidates(n: number, names: string[]): Candidates {
  return {
    offsets: new Int32Array(n + 1),
    columns: Object.fromEntries(names.map((c) => [c, []])),
    score: new Float64Array(0),
  };
}

/** The candidates whose `keep` flag is set, in the same order (per row). */
export function selectCandidates(c: Candidates, keep: Uint8Array): Candidates {
  const n = c.offsets.length - 1;
  const offsets = new Int32Array(n + 1);
  const picked: number[] = [];
  for (let r = 0; r < n; r++) {
    for (let i = c.offsets[r]; i < c.offsets[r + 1]; i++) if (keep[i]) picked.push(i);
    offsets[r + 1] = picked.length;
  }
  return takeCandidates(c, offsets, picked);
}

/** The candidates at positions `picked` (grouped per row as `offsets` says). */
export function takeCandidates(c: Candidates, offsets: Int32Array, picked: number[]): Candidates {
  const columns: Record<string, unknown[]> = {};
  for (const [name, col] of Object.entries(c.columns)) columns[name] = picked.map((i) => col[i]);
  return { offsets, columns, score: Float64Array.from(picked, (i) => c.score[i]) };
}

/** Id values compared as the store compares keys: bigint and number of the same value are one id. */
export function idKey(v: unknown): unknown {
  return typeof v === "bigint" ? Number(v) : v;
}

function toNumber(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  return NaN;
}

function listOf(v: unknown): ArrayLike<unknown> {
  if (v == null) return [];
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return v as ArrayLike<unknown>;
  return [v];
}

export interface FrameInput {
  name: string;
  type: "categorical" | "continuous";
  isList?: boolean;
}

/**
 * Model input columns from stored values, for rows `rows` of `values`: a missing categorical is index 0 (the
 * model's null/OOV category, its default), a missing number 0, a missing list empty.
 */
export function frameOf(
  inputs: FrameInput[],
  values: (name: string) => unknown[],
  rows: ArrayLike<number> | { start: number; end: number },
): Frame {
  const idx: ArrayLike<number> =
    "start" in rows ? Array.from({ length: rows.end - rows.start }, (_, i) => rows.start + i) : rows;
  const n = idx.length;
  const columns: Record<string, Column> = {};
  for (const inp of inputs) {
    const src = values(inp.name);
    if (inp.type === "categorical" && inp.isList) {
      const offsets = new Int32Array(n + 1);
      const vals: number[] = [];
      for (let r = 0; r < n; r++) {
        const l = listOf(src[idx[r]]);
        for (let k = 0; k < l.length; k++) {
          const x = toNumber(l[k]);
          vals.push(Number.isFinite(x) ? x : 0);
        }
        offsets[r + 1] = vals.length;
      }
      columns[inp.name] = { offsets, values: Int32Array.from(vals) } satisfies ListColumn;
    } else if (inp.type === "categorical") {
      const col = new Int32Array(n);
      for (let r = 0; r < n; r++) {
        const x = toNumber(src[idx[r]]);
        col[r] = Number.isFinite(x) ? x : 0;
      }
      columns[inp.name] = col;
    } else {
      const col = new Float32Array(n);
      for (let r = 0; r < n; r++) {
        const x = toNumber(src[idx[r]]);
        col[r] = Number.isFinite(x) ? x : 0;
      }
      columns[inp.name] = col;
    }
  }
  return { length: n, columns };
}
