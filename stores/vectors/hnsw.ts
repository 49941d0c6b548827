// The HNSW index (usearch) of one vector field: settings, metric names, distances, atomic saves.

import { renameSync, rmSync } from "node:fs";
import usearch, { type MetricKind } from "usearch";
import type { VectorIndexConfig } from "../../registry/config.js";
import type { VectorMetric } from "../../registry/types.js";
import { type HnswIndex, MipsIndex } from "./mips.js";

/** An index as the stores use it: usearch's own, or (inner product) the L2 reduction of mips.ts. */
export type UsearchIndex = HnswIndex;

/** HNSW settings; the defaults reach recall@10 >= 0.97 against exact search on 100k random 64-d vectors (bench/README.md). */
export interface HnswSettings {
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
  /** threads for adding a batch (0: usearch picks) */
  threads: number;
}

export const DEFAULT_HNSW: HnswSettings = { connectivity: 16, expansionAdd: 128, expansionSearch: 1024, threads: 0 };

/** Batches smaller than this are added on one thread. */
const PARALLEL_ADD_FROM = 10_000;

/**
 * Threads for adding `n` vectors: usearch's concurrent inserts leave some nodes unreachable (4.6% of top-10
 * queries missed a neighbour on 300 points, none on one thread), which a small batch cannot afford and gains
 * nothing from.
 */
export function addThreads(s: HnswSettings, n: number): number {
  return n < PARALLEL_ADD_FROM ? 1 : s.threads;
}

/** fstore's HNSW defaults with what online_store.vector_index sets. */
export function hnswSettings(c: VectorIndexConfig | undefined): HnswSettings {
  return {
    connectivity: c?.connectivity ?? DEFAULT_HNSW.connectivity,
    expansionAdd: c?.expansionAdd ?? DEFAULT_HNSW.expansionAdd,
    expansionSearch: c?.expansionSearch ?? DEFAULT_HNSW.expansionSearch,
    threads: DEFAULT_HNSW.threads,
  };
}

export function newIndex(dimensions: number, metric: VectorMetric, s: HnswSettings = DEFAULT_HNSW): UsearchIndex {
  const config = (dims: number, kind: MetricKind) => ({
    dimensions: dims,
    metric: kind,
    quantization: usearch.ScalarKind.F32,
    connectivity: s.connectivity,
    expansion_add: s.expansionAdd,
    expansion_search: s.expansionSearch,
    multi: false,
  });
  if (metric === "inner_product")
    return new MipsIndex(new usearch.Index(config(dimensions + 1, usearch.MetricKind.L2sq)), dimensions);
  return new usearch.Index(config(dimensions, metric === "cosine" ? usearch.MetricKind.Cos : usearch.MetricKind.L2sq));
}

/**
 * The distance answered for a raw usearch distance: cosine 1 - cos, inner_product 1 - dot (usearch's),
 * l2 the Euclidean distance (usearch ranks by its square).
 */
export function answerDistance(metric: VectorMetric, raw: number): number {
  return metric === "l2" ? Math.sqrt(Math.max(raw, 0)) : raw;
}

/** The raw distance (as usearch ranks) between `q` and row `row` of the flat matrix `m`. */
export function rawDistance(metric: VectorMetric, q: Float32Array, m: Float32Array, row: number): number {
  const d = q.length;
  const o = row * d;
  if (metric === "l2") {
    let s = 0;
    for (let i = 0; i < d; i++) {
      const x = q[i] - m[o + i];
      s += x * x;
    }
    return s;
  }
  let dot = 0;
  for (let i = 0; i < d; i++) dot += q[i] * m[o + i];
  if (metric === "inner_product") return 1 - dot;
  let qq = 0;
  let mm = 0;
  for (let i = 0; i < d; i++) {
    qq += q[i] * q[i];
    mm += m[o + i] * m[o + i];
  }
  return qq === 0 || mm === 0 ? 1 : 1 - dot / Math.sqrt(qq * mm);
}

/** Writes the index to a temporary file beside `path`, then renames it over `path`: a reader sees old or new. */
export function saveAtomic(index: UsearchIndex, path: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    index.save(tmp);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Labels (u64) of the index as numbers: fstore hands out labels below 2^53. */
export function labelsOf(keys: BigUint64Array): number[] {
  const out = new Array<number>(keys.length);
  for (let i = 0; i < keys.length; i++) out[i] = Number(keys[i]);
  return out;
}
