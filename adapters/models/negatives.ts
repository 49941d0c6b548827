// Negative sampling for ranking models: N negatives per positive, drawn uniformly from the rows of the batch (as
// Merlin's UniformNegativeSampling does), from the whole item catalogue, or from each row's own list of
// candidates (hard negatives: the items the retrieval stage put before the user). A negative never carries the
// item of its positive: candidates equal to it are rejected and redrawn (up to a bounded number of tries).
import type { ListColumn } from "./frame.js";

export type NegativeSource = "batch" | "catalogue" | "column";

export interface NegativeDraw {
  /** for each negative: the row of its positive in the batch */
  positiveRow: Int32Array;
  /** for each negative: the row it takes its item features from (in the batch or the catalogue) */
  candidateRow: Int32Array;
}

/**
 * `positiveItems[i]` is the item of batch row i; `candidateItems[j]` the item of candidate row j (the batch's own
 * items for "batch", the catalogue's for "catalogue"). Draws `perPositive` candidates per row uniformly, skipping
 * those equal to the positive; a row whose candidates are all its own item gets fewer (possibly none).
 */
export function sampleNegatives(
  positiveItems: Int32Array,
  candidateItems: Int32Array,
  perPositive: number,
  rand: () => number,
): NegativeDraw {
  const n = candidateItems.length;
  const pos: number[] = [];
  const cand: number[] = [];
  const maxTries = perPositive * 10 + 10;
  for (let i = 0; i < positiveItems.length; i++) {
    const p = positiveItems[i];
    let got = 0;
    for (let t = 0; t < maxTries && got < perPositive && n > 0; t++) {
      const j = Math.floor(rand() * n);
      if (candidateItems[j] === p) continue;
      pos.push(i);
      cand.push(j);
      got++;
    }
  }
  return { positiveRow: Int32Array.from(pos), candidateRow: Int32Array.from(cand) };
}

/**
 * `perPositive` items per row drawn uniformly from that row's list in `lists` (e.g. its retrieval candidates),
 * never the row's positive; a row whose list holds nothing else gets none.
 */
export function sampleFromLists(
  positiveItems: Int32Array,
  lists: ListColumn,
  perPositive: number,
  rand: () => number,
): { positiveRow: Int32Array; item: Int32Array } {
  const pos: number[] = [];
  const item: number[] = [];
  const maxTries = perPositive * 10 + 10;
  for (let i = 0; i < positiveItems.length; i++) {
    const s = lists.offsets[i];
    const n = lists.offsets[i + 1] - s;
    let got = 0;
    for (let t = 0; t < maxTries && got < perPositive && n > 0; t++) {
      const v = lists.values[s + Math.floor(rand() * n)];
      if (v === positiveItems[i]) continue;
      pos.push(i);
      item.push(v);
      got++;
    }
  }
  return { positiveRow: Int32Array.from(pos), item: Int32Array.from(item) };
}
