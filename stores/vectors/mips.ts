// Maximum inner product search on an L2 graph. An HNSW graph built on usearch's inner-product "distance"
// (1 - dot) connects poorly when vectors are not normalised, as two-tower item embeddings are not
// (scripts/recommend_quality.ts: it found a fifth of the exact top 200 on MovieLens, this reduction all of it).
// Each item x is stored as [x, sqrt(M^2 - |x|^2)] with M the largest norm of the first vectors added, and a
// query q as [q, 0], so |q' - x'|^2 = |q|^2 + M^2 - 2 q.x ranks items by q.x on a graph built in L2. M is not
// stored: every stored vector has norm M, so a search for the zero vector answers M^2 as its distance.
import usearch from "usearch";

type Keys = bigint | bigint[] | BigUint64Array;
type Usearch = InstanceType<typeof usearch.Index>;

/** What fstore's stores use of an HNSW index (usearch's Index satisfies it). */
export interface HnswIndex {
  add(keys: Keys, vectors: Float32Array, threads?: number): void;
  search(vector: Float32Array, k: number, threads: number): { keys: BigUint64Array; distances: Float32Array };
  contains(keys: Keys): boolean | boolean[];
  remove(keys: Keys): number | number[];
  dimensions(): number;
  size(): number;
  save(path: string): void;
  load(path: string): void;
  view(path: string): void;
}

/** An inner-product index answering distances as usearch's IP metric does (1 - dot), nearest first. */
export class MipsIndex implements HnswIndex {
  /** M squared; NaN until the first vectors arrive or a saved index is read */
  private m2 = Number.NaN;

  constructor(
    private readonly inner: Usearch,
    private readonly dims: number,
  ) {}

  dimensions(): number {
    return this.dims;
  }
  size(): number {
    return this.inner.size();
  }
  contains(keys: Keys): boolean | boolean[] {
    return this.inner.contains(keys);
  }
  remove(keys: Keys): number | number[] {
    return this.inner.remove(keys);
  }
  save(path: string): void {
    this.inner.save(path);
  }
  load(path: string): void {
    this.inner.load(path);
    this.readM();
  }
  view(path: string): void {
    this.inner.view(path);
    this.readM();
  }

  add(keys: Keys, vectors: Float32Array, threads?: number): void {
    const d = this.dims;
    const n = vectors.length / d;
    if (n === 0) return;
    if (Number.isNaN(this.m2)) {
      let max = 0;
      for (let r = 0; r < n; r++) max = Math.max(max, norm2(vectors, r * d, d));
      this.m2 = max > 0 ? max : 1;
    }
    const out = new Float32Array(n * (d + 1));
    for (let r = 0; r < n; r++) {
      out.set(vectors.subarray(r * d, (r + 1) * d), r * (d + 1));
      // a vector longer than M keeps 0 here: it ranks a little farther than its product says, and is still found
      out[r * (d + 1) + d] = Math.sqrt(Math.max(0, this.m2 - norm2(vectors, r * d, d)));
    }
    this.inner.add(keys, out, threads);
  }

  search(vector: Float32Array, k: number, threads: number): { keys: BigUint64Array; distances: Float32Array } {
    const d = this.dims;
    const q = new Float32Array(d + 1);
    q.set(vector.subarray(0, d));
    const m = this.inner.search(q, k, threads);
    const qq = norm2(vector, 0, d);
    const distances = new Float32Array(m.distances.length);
    for (let i = 0; i < distances.length; i++) distances[i] = 1 - (qq + this.m2 - m.distances[i]) / 2;
    return { keys: m.keys, distances };
  }

  private readM(): void {
    if (this.inner.size() === 0) {
      this.m2 = Number.NaN;
      return;
    }
    const m = this.inner.search(new Float32Array(this.dims + 1), 1, 1);
    this.m2 = m.distances.length ? m.distances[0] : Number.NaN;
  }
}

function norm2(v: Float32Array, o: number, d: number): number {
  let s = 0;
  for (let i = 0; i < d; i++) s += v[o + i] * v[o + i];
  return s;
}
