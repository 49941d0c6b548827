// Ordering: greedy by score; softmax samples without replacement from p ∝ exp(score / T), checked by a chi-square
// test at a fixed seed; T → 0 is greedy, a large T is uniform; the same seed gives the same list.
import { describe, expect, it } from "vitest";
import { Prng, orderCandidates } from "../adapters/serving/ordering.js";

const scores = Float64Array.from([0.1, 0.9, 0.5, -0.3, 0.7]);

/** Pearson chi-square of observed counts against expected probabilities. */
function chiSquare(counts: number[], probs: number[], n: number): number {
  return counts.reduce((a, c, i) => a + (c - n * probs[i]) ** 2 / (n * probs[i]), 0);
}
// 99.9% quantiles of chi-square with 4 degrees of freedom
const CHI2_4_999 = 18.47;

describe("orderCandidates", () => {
  it("greedy answers by score, ties in candidate order, at most topK", () => {
    const rng = new Prng(1);
    expect(orderCandidates(scores, 0, 5, { topK: 3, strategy: "greedy", temperature: 1 }, rng)).toEqual([1, 4, 2]);
    expect(orderCandidates([1, 2, 2, NaN], 0, 4, { topK: 10, strategy: "greedy", temperature: 1 }, rng)).toEqual([
      1, 2, 0, 3,
    ]);
    // a slice of a larger array answers absolute indices
    expect(orderCandidates([9, 9, 0.2, 0.4], 2, 4, { topK: 5, strategy: "greedy", temperature: 1 }, rng)).toEqual([
      3, 2,
    ]);
  });

  it("softmax: the first item follows p ∝ exp(s / T) (chi-square at a fixed seed)", () => {
    for (const T of [0.25, 1]) {
      const rng = new Prng(7);
      const n = 20000;
      const counts = [0, 0, 0, 0, 0];
      for (let i = 0; i < n; i++)
        counts[orderCandidates(scores, 0, 5, { topK: 1, strategy: "softmax", temperature: T }, rng)[0]]++;
      const w = Array.from(scores, (s) => Math.exp(s / T));
      const z = w.reduce((a, b) => a + b, 0);
      const p = w.map((x) => x / z);
      expect(chiSquare(counts, p, n)).toBeLessThan(CHI2_4_999);
      // the old SoftmaxSampling (exp(T s) / sum of raw scores, T an inverse temperature) is far off at T = 0.25
      if (T === 0.25) {
        const wrong = Array.from(scores, (s) => Math.exp(s * T));
        const zw = wrong.reduce((a, b) => a + b, 0);
        expect(
          chiSquare(
            counts,
            wrong.map((x) => x / zw),
            n,
          ),
        ).toBeGreaterThan(100);
      }
    }
  });

  it("softmax: the second item is drawn without replacement from the rest", () => {
    const rng = new Prng(11);
    const T = 0.5;
    const n = 20000;
    const w = Array.from(scores, (s) => Math.exp(s / T));
    // P(second = j) = sum over i != j of p_i * w_j / (Z - w_i)
    const z = w.reduce((a, b) => a + b, 0);
    const p2 = w.map((wj, j) => w.reduce((a, wi, i) => (i === j ? a : a + (wi / z) * (wj / (z - wi))), 0));
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < n; i++) {
      const list = orderCandidates(scores, 0, 5, { topK: 2, strategy: "softmax", temperature: T }, rng);
      expect(list[0]).not.toBe(list[1]);
      counts[list[1]]++;
    }
    expect(chiSquare(counts, p2, n)).toBeLessThan(CHI2_4_999);
  });

  it("T → 0 is greedy, a large T is uniform", () => {
    const rng = new Prng(3);
    for (let i = 0; i < 50; i++)
      expect(orderCandidates(scores, 0, 5, { topK: 5, strategy: "softmax", temperature: 1e-6 }, rng)).toEqual([
        1, 4, 2, 0, 3,
      ]);
    expect(orderCandidates(scores, 0, 5, { topK: 5, strategy: "softmax", temperature: 1e-320 }, rng)).toEqual([
      1, 4, 2, 0, 3,
    ]);
    const n = 20000;
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < n; i++)
      counts[orderCandidates(scores, 0, 5, { topK: 1, strategy: "softmax", temperature: 1e6 }, rng)[0]]++;
    expect(chiSquare(counts, [0.2, 0.2, 0.2, 0.2, 0.2], n)).toBeLessThan(CHI2_4_999);
  });

  it("the same seed gives the same list; no seed draws fresh", () => {
    const many = Float64Array.from({ length: 100 }, (_, i) => Math.sin(i));
    const o = { topK: 10, strategy: "softmax" as const, temperature: 1 };
    const a = orderCandidates(many, 0, 100, o, new Prng(42));
    expect(orderCandidates(many, 0, 100, o, new Prng(42))).toEqual(a);
    expect(orderCandidates(many, 0, 100, o, new Prng(43))).not.toEqual(a);
    const fresh = new Set(Array.from({ length: 5 }, () => orderCandidates(many, 0, 100, o, new Prng()).join(",")));
    expect(fresh.size).toBeGreaterThan(1);
  });

  it("diversity keeps at most N items per value", () => {
    const s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
    const category = [1, 1, 1, 2, 2, 3];
    const out = orderCandidates(
      s,
      0,
      6,
      { topK: 4, strategy: "greedy", temperature: 1, diversity: { values: category, maxPerValue: 1 } },
      new Prng(1),
    );
    expect(out).toEqual([0, 3, 5]);
    const two = orderCandidates(
      s,
      0,
      6,
      { topK: 4, strategy: "greedy", temperature: 1, diversity: { values: category, maxPerValue: 2 } },
      new Prng(1),
    );
    expect(two).toEqual([0, 1, 3, 4]);
  });
});
