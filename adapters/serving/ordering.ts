// The final ordering of one row's candidates: greedy by score, or a sample without replacement from
// p ∝ exp(score / T) by the Gumbel-top-k trick (the k largest of score/T + Gumbel noise are such a sample), with a
// seeded PRNG so a seed gives the same list every time. An optional diversity cap keeps at most N items per value
// of a candidate column.

import { randomBytes } from "node:crypto";

/** A 32-bit PRNG (mulberry32): small, fast and good enough for sampling; not for secrets. */
export class Prng {
  private s: number;
  constructor(seed?: number) {
    this.s = seed === undefined ? randomBytes(4).readUInt32LE(0) : hashSeed(seed);
  }
  /** a uint32 */
  nextU32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** uniform in the open interval (0, 1), 53 bits */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }
}

/** Any finite number (also negative or fractional) to a 32-bit state, so nearby seeds give unrelated streams. */
function hashSeed(seed: number): number {
  let h = Math.floor(seed) ^ Math.floor(seed / 4294967296) ^ 0x9e3779b9;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export interface OrderOptions {
  topK: number;
  strategy: "greedy" | "softmax";
  temperature: number;
  /** the diversity column (indexed like `scores`), and the cap per value */
  diversity?: { values: ArrayLike<unknown>; maxPerValue: number };
}

/**
 * Candidate positions (into `scores[start..end)`, as absolute indices) in answer order. NaN scores rank last.
 * The softmax keys are score/T + Gumbel(0, 1); when score/T overflows (T → 0) the order is greedy.
 */
export function orderCandidates(
  scores: ArrayLike<number>,
  start: number,
  end: number,
  o: OrderOptions,
  rng: Prng,
): number[] {
  const n = end - start;
  const keys = new Float64Array(n);
  const idx = new Array<number>(n);
  let greedy = o.strategy === "greedy";
  for (let i = 0; i < n; i++) {
    idx[i] = start + i;
    const s = scores[start + i];
    keys[i] = Number.isNaN(s) ? -Infinity : s;
  }
  if (!greedy) {
    for (let i = 0; i < n; i++) {
      if (keys[i] === -Infinity) continue;
      const z = keys[i] / o.temperature;
      if (!Number.isFinite(z)) {
        greedy = true;
        break;
      }
      keys[i] = z - Math.log(-Math.log(rng.uniform()));
    }
    if (greedy) for (let i = 0; i < n; i++) keys[i] = Number.isNaN(scores[start + i]) ? -Infinity : scores[start + i];
  }
  const pos = Array.from({ length: n }, (_, i) => i);
  // ties keep candidate order, so greedy answers are deterministic
  pos.sort((a, b) => keys[b] - keys[a] || a - b);
  const out: number[] = [];
  const perValue = new Map<unknown, number>();
  for (const p of pos) {
    if (out.length >= o.topK) break;
    if (o.diversity) {
      const v = o.diversity.values[idx[p]];
      const c = perValue.get(v) ?? 0;
      if (c >= o.diversity.maxPerValue) continue;
      perValue.set(v, c + 1);
    }
    out.push(idx[p]);
  }
  return out;
}
