// Offline metrics: top-K retrieval metrics over the full catalogue (Recall, Precision, NDCG, MRR, MAP @K), AUC and
// log loss for ranking, and a popularity baseline scored the same way.

export interface TopKMetrics {
  recall: number;
  precision: number;
  ndcg: number;
  mrr: number;
  map: number;
}

/**
 * Metrics of one ranked list (best first, at least `k` long or shorter when the catalogue is) against the set of
 * relevant items. MAP@K divides by min(|relevant|, K); with one relevant item MAP equals MRR, as in Merlin.
 */
export function listMetrics(ranked: ArrayLike<number>, relevant: ReadonlySet<number>, k: number): TopKMetrics {
  const n = Math.min(k, ranked.length);
  let hits = 0;
  let dcg = 0;
  let firstHit = 0;
  let apSum = 0;
  for (let r = 0; r < n; r++) {
    if (!relevant.has(ranked[r])) continue;
    hits++;
    dcg += 1 / Math.log2(r + 2);
    if (!firstHit) firstHit = r + 1;
    apSum += hits / (r + 1);
  }
  let idcg = 0;
  for (let r = 0; r < Math.min(k, relevant.size); r++) idcg += 1 / Math.log2(r + 2);
  const rel = Math.max(relevant.size, 1);
  return {
    recall: hits / rel,
    precision: hits / k,
    ndcg: idcg ? dcg / idcg : 0,
    mrr: firstHit ? 1 / firstHit : 0,
    map: apSum / Math.max(1, Math.min(rel, k)),
  };
}

/** Indices of the `k` largest scores (ties to the lower index), skipping those in `exclude`; best first. */
export function topK(scores: ArrayLike<number>, k: number, exclude?: ReadonlySet<number>): Int32Array {
  const idx = new Int32Array(k).fill(-1);
  const val = new Float64Array(k).fill(-Infinity);
  let size = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (size === k && !(s > val[k - 1])) continue;
    if (exclude && exclude.has(i)) continue;
    let p = size < k ? size : k - 1;
    while (p > 0 && val[p - 1] < s) {
      val[p] = val[p - 1];
      idx[p] = idx[p - 1];
      p--;
    }
    val[p] = s;
    idx[p] = i;
    if (size < k) size++;
  }
  return idx.subarray(0, size);
}

/**
 * Mean top-K metrics over users. `scoreUsers(start, end)` returns [end-start, nItems] scores row-major;
 * items are catalogue indices. `exclude[u]` (e.g. items seen in training) are never recommended.
 */
export function evaluateTopK(opts: {
  nUsers: number;
  nItems: number;
  k: number;
  relevant: Array<ReadonlySet<number>>;
  exclude?: Array<ReadonlySet<number> | undefined>;
  scoreUsers: (start: number, end: number) => Float32Array;
  chunk?: number;
}): TopKMetrics & { users: number } {
  const { nUsers, nItems, k } = opts;
  const chunk = opts.chunk ?? Math.max(1, Math.floor(4_000_000 / Math.max(nItems, 1)));
  const sum: TopKMetrics = { recall: 0, precision: 0, ndcg: 0, mrr: 0, map: 0 };
  let users = 0;
  for (let s = 0; s < nUsers; s += chunk) {
    const e = Math.min(nUsers, s + chunk);
    const scores = opts.scoreUsers(s, e);
    for (let u = s; u < e; u++) {
      if (opts.relevant[u].size === 0) continue;
      const ranked = topK(scores.subarray((u - s) * nItems, (u - s + 1) * nItems), k, opts.exclude?.[u]);
      const m = listMetrics(ranked, opts.relevant[u], k);
      for (const key of Object.keys(sum) as Array<keyof TopKMetrics>) sum[key] += m[key];
      users++;
    }
  }
  const d = Math.max(users, 1);
  return {
    recall: sum.recall / d,
    precision: sum.precision / d,
    ndcg: sum.ndcg / d,
    mrr: sum.mrr / d,
    map: sum.map / d,
    users,
  };
}

/** ROC AUC by the rank-sum (Mann-Whitney) statistic; tied scores share their average rank. */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let rankSumPos = 0;
  let nPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++)
      if (labels[order[t]] > 0.5) {
        rankSumPos += avgRank;
        nPos++;
      }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Mean binary log loss with probabilities clipped to [eps, 1 - eps]. */
export function logLoss(probs: ArrayLike<number>, labels: ArrayLike<number>, eps = 1e-7): number {
  let s = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = Math.min(1 - eps, Math.max(eps, probs[i]));
    s += labels[i] > 0.5 ? -Math.log(p) : -Math.log(1 - p);
  }
  return s / Math.max(probs.length, 1);
}

/** Item interaction counts: the popularity baseline's scores. */
export function itemCounts(items: ArrayLike<number>, nItems: number): Float32Array {
  const c = new Float32Array(nItems);
  for (let i = 0; i < items.length; i++) c[items[i]]++;
  return c;
}
