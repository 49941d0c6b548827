// Popularity from positive interactions: the counts saved with a model for cold start (raw item ids), and the
// ranking baseline's click probabilities (a logistic fit on each item's click count).
import type { ItemPopularity } from "./artifacts.js";

/** Positive interactions per raw item id, most first (ties by id); null ids are left out. */
export function itemPopularity(rawIds: ArrayLike<unknown>, idColumn: string): ItemPopularity {
  const counts = new Map<number | string, number>();
  for (let i = 0; i < rawIds.length; i++) {
    const id = jsonId(rawIds[i]);
    if (id !== null) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const entries = [...counts].sort(
    ([a, ca], [b, cb]) =>
      cb - ca || (typeof a === "number" && typeof b === "number" ? a - b : String(a) < String(b) ? -1 : 1),
  );
  return { idColumn, ids: entries.map(([id]) => id), counts: entries.map(([, c]) => c) };
}

/** An id as JSON can hold it: bigints within 2^53 as numbers, larger ones as strings. */
function jsonId(v: unknown): number | string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number" || typeof v === "string") return v;
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

/** The `k` most popular ids. */
export function topPopular(p: ItemPopularity, k: number): Array<number | string> {
  return p.ids.slice(0, k);
}

/**
 * Click probabilities of the item popularity baseline: p = sigmoid(a + b log(1 + clicks of the item)), with a
 * and b fitted by logistic regression on the training rows. A training row's own click is left out of its item's
 * count, so the fit sees counts as an unseen row would.
 * `clicks[i]`: positive training rows of item index i; `train`: item and 0/1 label of every training row.
 */
export function popularityProbabilities(
  clicks: ArrayLike<number>,
  train: { items: ArrayLike<number>; labels: ArrayLike<number> },
  evalItems: ArrayLike<number>,
): Float32Array {
  const n = train.items.length;
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    y[r] = train.labels[r] > 0.5 ? 1 : 0;
    x[r] = Math.log1p(Math.max(0, (clicks[train.items[r]] ?? 0) - y[r]));
  }
  const [a, b] = logisticFit(x, y);
  return Float32Array.from(evalItems, (i) => 1 / (1 + Math.exp(-(a + b * Math.log1p(clicks[i] ?? 0)))));
}

/** Intercept and slope of a one-feature logistic regression by Newton's method (tiny ridge for separable data). */
export function logisticFit(x: Float64Array, y: Float64Array): [number, number] {
  let a = 0;
  let b = 0;
  const ridge = 1e-6 * Math.max(1, x.length);
  for (let it = 0; it < 100; it++) {
    let g0 = -ridge * a;
    let g1 = -ridge * b;
    let h00 = ridge;
    let h01 = 0;
    let h11 = ridge;
    for (let r = 0; r < x.length; r++) {
      const p = 1 / (1 + Math.exp(-(a + b * x[r])));
      const w = p * (1 - p);
      const e = y[r] - p;
      g0 += e;
      g1 += e * x[r];
      h00 += w;
      h01 += w * x[r];
      h11 += w * x[r] * x[r];
    }
    const det = h00 * h11 - h01 * h01;
    if (!(Math.abs(det) > 0)) break;
    const da = (h11 * g0 - h01 * g1) / det;
    const db = (h00 * g1 - h01 * g0) / det;
    a += da;
    b += db;
    if (Math.abs(da) + Math.abs(db) < 1e-10) break;
  }
  return [a, b];
}
