// Exact full-catalogue retrieval for batch jobs: every item scored for a block of query rows by a blocked matrix
// product (an item tile stays in cache while every row of the block passes over it), a bounded min-heap per row
// keeping the top k, and a row's seen items skipped as they reach the heap, so a row still gets k unseen items.
// Scores are the same doubles exactCandidates computes (each dot product summed in dimension order).

import { ValidationError } from "../../common/errors.js";
import { idKey, type Candidates } from "./batch.js";
import type { CandidateSource, RunContext } from "./context.js";

/** The catalogue: item ids and their embeddings, row-major [ids.length, dim]. */
export interface ItemMatrix {
  ids: ArrayLike<unknown>;
  embeddings: Float32Array;
  dim: number;
}

/** items scored per tile: 2,048 x 64 floats (512 KB) stay in a core's L2 cache while a block passes over them */
const TILE_ITEMS = 2048;

/** Each row's top k, best first: item positions and scores, row r at offsets[r] .. offsets[r + 1]. */
export interface TopK {
  offsets: Int32Array;
  index: Int32Array;
  score: Float64Array;
}

/**
 * The k best items for each of `n` query rows (row-major [n, dim] in `queries`); rows with active[r] = 0 get
 * none, items in exclude(r) are skipped. Ties go to the lower item position.
 */
export function blockedTopK(
  queries: Float32Array,
  n: number,
  items: ItemMatrix,
  k: number,
  active?: Uint8Array,
  exclude?: (r: number) => Set<number> | null,
): TopK {
  const { embeddings: E, dim } = items;
  const m = items.ids.length;
  if (queries.length < n * dim)
    throw new ValidationError(`exact retrieval: ${queries.length} query values for ${n} rows of ${dim}`);
  const kk = Math.max(0, Math.min(k, m));
  const hs = new Float64Array(n * kk);
  const hi = new Int32Array(n * kk);
  const size = new Int32Array(n);
  const excluded: Array<Set<number> | null> = Array.from({ length: n }, (_, r) => exclude?.(r) ?? null);
  const push = (r: number, j: number, s: number) => {
    const base = r * kk;
    let len = size[r];
    if (len < kk) {
      if (excluded[r]?.has(j)) return;
      let c = len;
      size[r] = ++len;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!worse(s, j, hs[base + p], hi[base + p])) break;
        hs[base + c] = hs[base + p];
        hi[base + c] = hi[base + p];
        c = p;
      }
      hs[base + c] = s;
      hi[base + c] = j;
      return;
    }
    if (!worse(hs[base], hi[base], s, j)) return;
    if (excluded[r]?.has(j)) return;
    siftDown(hs, hi, base, kk, s, j);
  };
  const offer = (r: number, j: number, sc: number) => {
    if (size[r] < kk || sc >= hs[r * kk]) push(r, j, sc);
  };
  const rows: number[] = [];
  if (kk > 0) for (let r = 0; r < n; r++) if (!active || active[r]) rows.push(r);
  for (let j0 = 0; j0 < m; j0 += TILE_ITEMS) {
    const j1 = Math.min(m, j0 + TILE_ITEMS);
    let p = 0;
    // two rows by four items at a time: each loaded value serves four (query) or two (item) products
    for (; p + 2 <= rows.length; p += 2) {
      const ra = rows[p];
      const rb = rows[p + 1];
      const qa = ra * dim;
      const qb = rb * dim;
      let j = j0;
      for (; j + 4 <= j1; j += 4) {
        const o0 = j * dim;
        const o1 = o0 + dim;
        const o2 = o1 + dim;
        const o3 = o2 + dim;
        let a0 = 0;
        let a1 = 0;
        let a2 = 0;
        let a3 = 0;
        let b0 = 0;
        let b1 = 0;
        let b2 = 0;
        let b3 = 0;
        for (let t = 0; t < dim; t++) {
          const x = queries[qa + t];
          const y = queries[qb + t];
          const e0 = E[o0 + t];
          const e1 = E[o1 + t];
          const e2 = E[o2 + t];
          const e3 = E[o3 + t];
          a0 += e0 * x;
          a1 += e1 * x;
          a2 += e2 * x;
          a3 += e3 * x;
          b0 += e0 * y;
          b1 += e1 * y;
          b2 += e2 * y;
          b3 += e3 * y;
        }
        offer(ra, j, a0);
        offer(ra, j + 1, a1);
        offer(ra, j + 2, a2);
        offer(ra, j + 3, a3);
        offer(rb, j, b0);
        offer(rb, j + 1, b1);
        offer(rb, j + 2, b2);
        offer(rb, j + 3, b3);
      }
      for (; j < j1; j++) {
        offer(ra, j, dot(E, j * dim, queries, qa, dim));
        offer(rb, j, dot(E, j * dim, queries, qb, dim));
      }
    }
    if (p < rows.length) {
      const r = rows[p];
      for (let j = j0; j < j1; j++) offer(r, j, dot(E, j * dim, queries, r * dim, dim));
    }
  }
  const offsets = new Int32Array(n + 1);
  for (let r = 0; r < n; r++) offsets[r + 1] = offsets[r] + size[r];
  const index = new Int32Array(offsets[n]);
  const score = new Float64Array(offsets[n]);
  for (let r = 0; r < n; r++) {
    // popping the min-heap gives the row worst first
    const base = r * kk;
    for (let len = size[r]; len > 0; len--) {
      const at = offsets[r] + len - 1;
      index[at] = hi[base];
      score[at] = hs[base];
      const lastS = hs[base + len - 1];
      const lastI = hi[base + len - 1];
      siftDown(hs, hi, base, len - 1, lastS, lastI);
    }
  }
  return { offsets, index, score };
}

/** The product of a[ao ..] and b[bo ..], summed in dimension order (as every kernel here sums). */
function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, dim: number): number {
  let s = 0;
  for (let t = 0; t < dim; t++) s += a[ao + t] * b[bo + t];
  return s;
}

/** a ranks below b: a lower score, or the same score at a higher item position */
function worse(sa: number, ia: number, sb: number, ib: number): boolean {
  return sa < sb || (sa === sb && ia > ib);
}

/** Put (s, j) at the root of the heap base[0 .. len) and sift it down. */
function siftDown(hs: Float64Array, hi: Int32Array, base: number, len: number, s: number, j: number): void {
  let c = 0;
  for (;;) {
    const l = 2 * c + 1;
    if (l >= len) break;
    let w = l;
    if (l + 1 < len && worse(hs[base + l + 1], hi[base + l + 1], hs[base + l], hi[base + l])) w = l + 1;
    if (!worse(hs[base + w], hi[base + w], s, j)) break;
    hs[base + c] = hs[base + w];
    hi[base + c] = hi[base + w];
    c = w;
  }
  hs[base + c] = s;
  hi[base + c] = j;
}

/** Item positions by id (as the store compares keys). */
export function itemPositions(items: ItemMatrix): Map<unknown, number> {
  const at = new Map<unknown, number>();
  for (let j = 0; j < items.ids.length; j++) at.set(idKey(items.ids[j]), j);
  return at;
}

/**
 * A Retrieve replacement scoring the whole catalogue exactly. When the pipeline has a FilterSeen stage, each
 * row's seen items (the runner passes them as `exclude`) are excluded before the top k, so the filter drops none.
 */
export function blockedExactCandidates(items: ItemMatrix): CandidateSource {
  const positions = itemPositions(items);
  return (req, _stage, topK, ctx, exclude) => {
    if (req.dim !== items.dim)
      throw new ValidationError(`exact retrieval: query embeddings have ${req.dim} values, items ${items.dim}`);
    const seen = exclude ? seenPositions(exclude, positions) : undefined;
    const top = blockedTopK(req.embedding as Float32Array, req.n, items, topK, req.active, seen);
    return Promise.resolve(candidatesOf(top, items, ctx));
  };
}

function candidatesOf(top: TopK, items: ItemMatrix, ctx: RunContext): Candidates {
  const itemKey = ctx.typed.itemKey as string;
  return {
    offsets: top.offsets,
    columns: { [itemKey]: Array.from(top.index, (j) => items.ids[j]) },
    score: top.score,
  };
}

/** Each row's excluded items as catalogue positions (items the catalogue lacks are skipped). */
function seenPositions(exclude: unknown[], positions: Map<unknown, number>): (r: number) => Set<number> | null {
  return (r) => {
    const list = exclude[r];
    if (list == null) return null;
    const set = new Set<number>();
    for (const id of Array.from(list as ArrayLike<unknown>)) {
      const j = positions.get(idKey(id));
      if (j !== undefined) set.add(j);
    }
    return set;
  };
}
