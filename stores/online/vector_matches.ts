// The two ways an online store answers a vector search, shared by SQLite and Redis: from its HNSW index (labels
// mapped back to the stored entity keys) and by brute force over every stored vector.
import type { FeatureViewSpec, VectorMetric } from "../../registry/types.js";
import type { VectorMatches } from "../types.js";
import { type UsearchIndex, answerDistance, rawDistance } from "../vectors/hnsw.js";
import { entityKeyValues } from "./entity_key_values.js";

/** The `k` nearest labels of `index`; a label without a stored entity key is not answered, whatever the index says. */
export function indexMatches(
  view: FeatureViewSpec,
  index: UsearchIndex,
  metric: VectorMetric,
  keyOf: (label: number) => string | undefined,
  query: Float32Array,
  k: number,
): VectorMatches {
  const size = index.size();
  if (size === 0) return { entityKeys: [], distances: new Float64Array(0), exhausted: true };
  // one thread: a single query gains nothing from a pool and pays for waking it
  const m = index.search(query, Math.min(k, size), 1);
  const entityKeys: unknown[][] = [];
  const distances: number[] = [];
  for (let i = 0; i < m.keys.length; i++) {
    const key = keyOf(Number(m.keys[i]));
    if (key === undefined) continue;
    entityKeys.push(entityKeyValues(view, key));
    distances.push(answerDistance(metric, m.distances[i]));
  }
  return { entityKeys, distances: Float64Array.from(distances), exhausted: k >= size || m.keys.length < k };
}

/** Brute force: the `k` nearest of the row-major vectors `all`, whose entity keys are `keys`. */
export function exactMatches(
  view: FeatureViewSpec,
  metric: VectorMetric,
  keys: readonly string[],
  all: Float32Array,
  query: Float32Array,
  k: number,
): VectorMatches {
  const dist = Float64Array.from(keys, (_, i) => rawDistance(metric, query, all, i));
  const order = Array.from(dist.keys())
    .sort((a, b) => dist[a] - dist[b])
    .slice(0, k);
  return {
    entityKeys: order.map((i) => entityKeyValues(view, keys[i])),
    distances: Float64Array.from(order, (i) => answerDistance(metric, dist[i])),
    exhausted: keys.length <= k,
  };
}
