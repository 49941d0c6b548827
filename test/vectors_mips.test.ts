// The inner-product index (stores/vectors/mips.ts): items stored as [x, sqrt(M^2 - |x|^2)] and searched in L2
// find the exact top 10 by dot product on vectors of unequal length and answer 1 - dot; M is read back from a
// saved index, mapped or loaded, so a process that reopens it keeps adding in the same space.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { newIndex, saveAtomic } from "../stores/vectors/hnsw.js";
import { rng } from "./vectors_fixture.js";

const N = 5_000;
const D = 16;

/** Gaussian directions with a shared component and lengths from 0.2 to 5, as trained embeddings have. */
function vectors(n: number, seed: number): Float32Array {
  const u = rng(seed);
  const g = () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  const common = Float32Array.from({ length: D }, () => g());
  const out = new Float32Array(n * D);
  for (let r = 0; r < n; r++) {
    const len = Math.exp(Math.log(0.2) + u() * Math.log(25));
    for (let i = 0; i < D; i++) out[r * D + i] = (0.3 * g() + 0.5 * common[i]) * len;
  }
  return out;
}

function exactTop(q: Float32Array, m: Float32Array, k: number): Array<[number, number]> {
  const dots: Array<[number, number]> = [];
  for (let r = 0; r < m.length / D; r++) {
    let dot = 0;
    for (let i = 0; i < D; i++) dot += q[i] * m[r * D + i];
    dots.push([r, dot]);
  }
  return dots.sort((a, b) => b[1] - a[1]).slice(0, k);
}

describe("inner-product index", () => {
  const data = vectors(N, 5);
  const keys = BigUint64Array.from({ length: N }, (_, i) => BigInt(i));
  const queries = vectors(20, 9);

  it("finds the exact top 10 by dot product and answers 1 - dot", () => {
    const index = newIndex(D, "inner_product");
    index.add(keys, data, 1);
    let hits = 0;
    for (let j = 0; j < 20; j++) {
      const q = queries.subarray(j * D, (j + 1) * D);
      const want = exactTop(q, data, 10);
      const got = index.search(q, 10, 1);
      const wantIds = new Set(want.map(([r]) => r));
      for (const k of got.keys) if (wantIds.has(Number(k))) hits++;
      got.distances.forEach((d, i) => {
        if (Number(got.keys[i]) === want[i][0]) expect(d).toBeCloseTo(1 - want[i][1], 2);
      });
    }
    expect(hits / 200).toBeGreaterThanOrEqual(0.97);
  });

  it("reads M back from a saved index, mapped or loaded, and keeps adding in the same space", () => {
    const dir = mkdtempSync(join(tmpdir(), "fstore-mips-"));
    try {
      const half = N / 2;
      const index = newIndex(D, "inner_product");
      index.add(keys.subarray(0, half), data.subarray(0, half * D), 1);
      saveAtomic(index, join(dir, "i.usearch"));
      const q = queries.subarray(0, D);
      const before = index.search(q, 10, 1);
      for (const read of ["view", "load"] as const) {
        const again = newIndex(D, "inner_product");
        again[read](join(dir, "i.usearch"));
        expect(again.dimensions()).toBe(D);
        const after = again.search(q, 10, 1);
        expect(Array.from(after.keys)).toEqual(Array.from(before.keys));
        after.distances.forEach((d, i) => expect(d).toBeCloseTo(before.distances[i], 3));
      }
      const loaded = newIndex(D, "inner_product");
      loaded.load(join(dir, "i.usearch"));
      loaded.add(keys.subarray(half), data.subarray(half * D), 1);
      const want = new Set(exactTop(q, data, 10).map(([r]) => r));
      const got = loaded.search(q, 10, 1);
      expect(Array.from(got.keys).filter((k) => want.has(Number(k))).length).toBeGreaterThanOrEqual(9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
