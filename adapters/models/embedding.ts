// Embedding tables with two update modes:
// - "lazy": the table lives in host memory; each step gathers only the rows the batch touches into a small
//   variable, differentiates with respect to it, and applies Adam to those rows only (TF's LazyAdam).
//   The cost of a step no longer grows with the table size.
// - "dense": the table is a tf.Variable updated by tf.train.adam as a whole (the baseline the bench compares).
import { tf } from "./backend.js";
import { rng } from "./frame.js";

export type EmbeddingUpdate = "lazy" | "dense";

export interface AdamConfig {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

export const DEFAULT_ADAM: AdamConfig = { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };

/** Tensors for one lookup: `tf.gather(source, index)` gives the embeddings; `leaf` is what to differentiate. */
export interface PreparedLookup {
  source: tf.Tensor2D;
  index: tf.Tensor1D;
  leaf?: tf.Variable;
  table: EmbeddingTable;
  unique?: Int32Array;
}

let leafCounter = 0;

export class EmbeddingTable {
  readonly name: string;
  readonly rows: number;
  readonly dim: number;
  readonly mode: EmbeddingUpdate;
  /** host weights (lazy mode) */
  private weights: Float32Array | null = null;
  private m: Float32Array | null = null;
  private v: Float32Array | null = null;
  /** scratch: row id -> local slot during one lookup, -1 otherwise */
  private slot: Int32Array | null = null;
  /** the table (dense mode) */
  readonly variable: tf.Variable | null = null;

  constructor(name: string, rows: number, dim: number, mode: EmbeddingUpdate, seed: number, init?: Float32Array) {
    this.name = name;
    this.rows = rows;
    this.dim = dim;
    this.mode = mode;
    let w = init;
    if (w && w.length !== rows * dim)
      throw new Error(`embedding ${name}: initial weights have ${w.length} values, expected ${rows}x${dim}`);
    if (!w) {
      // Keras' default embedding initialiser: uniform(-0.05, 0.05).
      const r = rng(seed);
      w = new Float32Array(rows * dim);
      for (let i = 0; i < w.length; i++) w[i] = (r() - 0.5) * 0.1;
    }
    if (mode === "lazy") {
      this.weights = w;
      this.m = new Float32Array(rows * dim);
      this.v = new Float32Array(rows * dim);
      this.slot = new Int32Array(rows).fill(-1);
    } else {
      const w0 = tf.tensor2d(w, [rows, dim]);
      this.variable = tf.variable(w0, true, `emb_${name}_${seed}_${leafCounter++}`);
      w0.dispose();
    }
  }

  /** A copy of the current weights, row-major [rows, dim]. */
  getWeights(): Float32Array {
    if (this.weights) return this.weights.slice();
    return (this.variable as tf.Variable).dataSync() as Float32Array;
  }

  /**
   * Tensors for looking up `ids`. Lazy mode gathers the distinct rows on the host (a leaf variable when
   * training); dense mode indexes the table variable directly.
   */
  prepare(ids: Int32Array, training: boolean): PreparedLookup {
    if (this.variable)
      return { source: this.variable as unknown as tf.Tensor2D, index: tf.tensor1d(ids, "int32"), table: this };
    const slot = this.slot as Int32Array;
    const w = this.weights as Float32Array;
    const local = new Int32Array(ids.length);
    const uniq: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      let s = slot[id];
      if (s < 0) {
        s = uniq.length;
        slot[id] = s;
        uniq.push(id);
      }
      local[i] = s;
    }
    const unique = Int32Array.from(uniq);
    for (const id of unique) slot[id] = -1;
    const d = this.dim;
    const rows = new Float32Array(Math.max(1, unique.length) * d);
    for (let k = 0; k < unique.length; k++) rows.set(w.subarray(unique[k] * d, unique[k] * d + d), k * d);
    const t = tf.tensor2d(rows, [Math.max(1, unique.length), d]);
    if (!training) return { source: t, index: tf.tensor1d(local, "int32"), table: this, unique };
    const leaf = tf.variable(t, true, `leaf_${this.name}_${leafCounter++}`);
    t.dispose();
    return { source: leaf, index: tf.tensor1d(local, "int32"), leaf, table: this, unique };
  }

  /** Adam on the touched rows only (lazy mode); `t` is the 1-based global step. */
  applySparseAdam(unique: Int32Array, grad: Float32Array, cfg: AdamConfig, t: number): void {
    const w = this.weights as Float32Array;
    const m = this.m as Float32Array;
    const v = this.v as Float32Array;
    const d = this.dim;
    const { beta1: b1, beta2: b2, epsilon: eps } = cfg;
    const lrT = (cfg.learningRate * Math.sqrt(1 - Math.pow(b2, t))) / (1 - Math.pow(b1, t));
    const epsT = eps * Math.sqrt(1 - Math.pow(b2, t));
    for (let k = 0; k < unique.length; k++) {
      const base = unique[k] * d;
      const gb = k * d;
      for (let j = 0; j < d; j++) {
        const g = grad[gb + j];
        const i = base + j;
        const mi = b1 * m[i] + (1 - b1) * g;
        const vi = b2 * v[i] + (1 - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        w[i] -= (lrT * mi) / (Math.sqrt(vi) + epsT);
      }
    }
  }

  dispose(): void {
    this.variable?.dispose();
  }
}

export function disposeLookup(l: PreparedLookup): void {
  l.index.dispose();
  if (l.leaf) l.leaf.dispose();
  else if (!l.table.variable) l.source.dispose();
}
