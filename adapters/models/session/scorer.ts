// The request-time side of the session models: one session's item ids (and side features) in, the top-k next
// items out, on typed arrays only (no TensorFlow.js). Every model, neural or baseline, answers through the
// same base: the query is cut to the model's window (the latest items), unknown items become the OOV index,
// an empty session gets the popularity answer, and only items seen in training are ever recommended.
import { ValidationError } from "../../../common/errors.js";

export type SessionModelKind =
  "session-gru" | "session-transformer" | "session-knn" | "session-rules" | "session-popularity";

/** One session as a request gives it: item indices (encoded by the ETL), oldest first, and aligned side features. */
export interface SessionQuery {
  items: ArrayLike<number>;
  /** per categorical side input of the model, aligned with `items` (missing: the input's null index) */
  categorical?: ArrayLike<number>[];
  /** per continuous side input, aligned with `items` (missing: 0) */
  continuous?: ArrayLike<number>[];
}

export interface TopKAnswer {
  items: Int32Array;
  scores: Float32Array;
  /** "popularity" when the session had no items and the answer is the most popular items */
  fallback: "popularity" | null;
}

/** The catalogue a model knows: the items seen in its training sessions and how often. */
export interface Catalogue {
  itemCardinality: number;
  /** indices below this are padding / null / OOV */
  firstItemIndex: number;
  oovIndex: number;
  /** occurrences of each item index in the training sessions (0: never seen, so never recommended) */
  counts: Float32Array;
}

export function emptyCatalogue(itemCardinality: number, firstItemIndex: number, oovIndex: number): Catalogue {
  return { itemCardinality, firstItemIndex, oovIndex, counts: new Float32Array(itemCardinality) };
}

/** Adds the items of sessions [offsets[s], offsets[s+1]) for s in `idx` to the catalogue's counts. */
export function countItems(cat: Catalogue, offsets: Int32Array, items: Int32Array, idx: ArrayLike<number>): void {
  for (let j = 0; j < idx.length; j++) {
    const s = idx[j];
    for (let p = offsets[s]; p < offsets[s + 1]; p++) {
      const it = items[p];
      if (it >= cat.firstItemIndex && it < cat.itemCardinality) cat.counts[it]++;
    }
  }
}

/**
 * The k best known items: higher score first, equal scores by higher popularity, then by lower index (so
 * every caller, evaluation and serving alike, ranks ties the same way). Items with count 0 never appear.
 */
export function topKItems(
  scores: Float32Array,
  cat: Catalogue,
  k: number,
): { items: Int32Array; scores: Float32Array } {
  const idx = new Int32Array(k);
  const val = new Float32Array(k);
  const pop = new Float32Array(k);
  const counts = cat.counts;
  let size = 0;
  for (let i = cat.firstItemIndex; i < cat.itemCardinality; i++) {
    const c = counts[i];
    if (c === 0) continue;
    const s = scores[i];
    if (size === k) {
      const ls = val[k - 1];
      if (s < ls || (s === ls && c <= pop[k - 1])) continue;
    }
    let p = size < k ? size : k - 1;
    while (p > 0 && (val[p - 1] < s || (val[p - 1] === s && pop[p - 1] < c))) {
      val[p] = val[p - 1];
      pop[p] = pop[p - 1];
      idx[p] = idx[p - 1];
      p--;
    }
    val[p] = s;
    pop[p] = c;
    idx[p] = i;
    if (size < k) size++;
  }
  return { items: idx.slice(0, size), scores: val.slice(0, size) };
}

/** A query cut to the window, unknown and malformed items mapped to the OOV index. */
export interface NormalizedQuery {
  items: Int32Array;
  categorical: Int32Array[];
  continuous: Float32Array[];
}

export interface SideSpec {
  categorical: Array<{ name: string; cardinality: number; oovIndex: number; nullIndex: number }>;
  continuous: string[];
}

/** The shared request handling of every session model; subclasses fill `scoreInto`. */
export abstract class SessionScorer {
  abstract readonly kind: SessionModelKind;
  readonly catalogue: Catalogue;
  /** the latest `window` items of a session are used */
  readonly window: number;
  readonly side: SideSpec;
  private scratch: Float32Array;

  constructor(catalogue: Catalogue, window: number, side: SideSpec = { categorical: [], continuous: [] }) {
    if (!(window >= 1)) throw new ValidationError(`session scorer: window must be >= 1, got ${window}`);
    this.catalogue = catalogue;
    this.window = window;
    this.side = side;
    this.scratch = new Float32Array(catalogue.itemCardinality);
  }

  /** Scores of every item index for a normalised, non-empty query (entries of unknown items are ignored). */
  protected abstract scoreInto(q: NormalizedQuery, out: Float32Array): void;

  /** Cut to the latest `window` items; items never seen in training (or malformed) become the OOV index. */
  normalize(q: SessionQuery): NormalizedQuery {
    const n = q.items.length;
    const start = Math.max(0, n - this.window);
    const cat = this.catalogue;
    const items = new Int32Array(n - start);
    for (let p = start; p < n; p++) {
      const it = q.items[p];
      items[p - start] =
        Number.isInteger(it) && it >= cat.firstItemIndex && it < cat.itemCardinality && cat.counts[it] > 0
          ? it
          : cat.oovIndex;
    }
    const categorical = this.side.categorical.map((c, j) => {
      const src = q.categorical?.[j];
      const out = new Int32Array(n - start).fill(c.nullIndex);
      if (src)
        for (let p = start; p < Math.min(n, src.length); p++) {
          const v = src[p];
          out[p - start] = Number.isInteger(v) && v >= 0 && v < c.cardinality ? v : c.oovIndex;
        }
      return out;
    });
    const continuous = this.side.continuous.map((_, j) => {
      const src = q.continuous?.[j];
      const out = new Float32Array(n - start);
      if (src)
        for (let p = start; p < Math.min(n, src.length); p++) out[p - start] = Number.isFinite(src[p]) ? src[p] : 0;
      return out;
    });
    return { items, categorical, continuous };
  }

  /** Scores over all item indices (only known items are meaningful); null for an empty session. */
  scores(q: SessionQuery): Float32Array | null {
    const nq = this.normalize(q);
    if (nq.items.length === 0) return null;
    this.scratch.fill(0);
    this.scoreInto(nq, this.scratch);
    return this.scratch;
  }

  /** The top-k next items for one session. An empty session gets the most popular items. */
  topK(q: SessionQuery, k: number): TopKAnswer {
    if (!(Number.isInteger(k) && k >= 1)) throw new ValidationError(`top-k: k must be a positive integer, got ${k}`);
    const s = this.scores(q);
    if (!s) return { ...topKItems(this.catalogue.counts, this.catalogue, k), fallback: "popularity" };
    return { ...topKItems(s, this.catalogue, k), fallback: null };
  }
}

/** Popularity: the same scores (training counts) for every session. */
export class PopularityScorer extends SessionScorer {
  readonly kind = "session-popularity" as const;
  protected scoreInto(_q: NormalizedQuery, out: Float32Array): void {
    out.set(this.catalogue.counts);
  }
}
