// DLRM scoring on plain typed arrays, for serving: a trained DlrmModel (or a loaded DLRM layers model) copied
// into Float32Arrays once, then each request is a few hundred thousand multiply-adds in JavaScript with no tensor
// allocation, no kernel dispatch and no garbage per call. At the sizes a request scores (one user, ~100
// candidates) that is several times faster than TensorFlow.js, whose cost there is per-op overhead.
// scoreCandidates() also computes the user/context side once per request: those vectors, their pairwise
// interactions and their share of the first top layer are the same for every candidate.
import { ValidationError } from "../../common/errors.js";
import type { LoadedModel } from "./artifacts.js";
import { tf } from "./backend.js";
import type { DlrmModel } from "./dlrm.js";
import { isList, type Column, type Frame } from "./frame.js";
import type { DenseLayer } from "./nn.js";
import { poolingWeights, type ListPooling, type Side } from "./schema.js";
import {
  activate,
  addRowTimes,
  clampId,
  denseOf,
  denseRow,
  layerActivation,
  layerWeights,
  type Dense,
} from "./typed_layers.js";

interface CategoricalTable {
  name: string;
  side: Side;
  isList: boolean;
  /** list inputs: how the rows are pooled (absent: mean) */
  pooling?: ListPooling;
  rows: number;
  /** row-major [rows, D] */
  table: Float32Array;
}

export interface DlrmScorerWeights {
  /** dimension of every interacting vector */
  D: number;
  categorical: CategoricalTable[];
  continuous: Array<{ name: string; side: Side }>;
  bottom: Dense[];
  /** interaction terms: the dot product of vectors i and j (i <= j) feeds `pairWeights` row k */
  pairs: Array<[number, number]>;
  /** [pairs, U]: the first top layer's kernel rows of the interaction terms */
  pairWeights: Float32Array;
  /** [D, U]: the first top layer's kernel rows of the bottom MLP output (empty without continuous inputs) */
  bottomWeights: Float32Array;
  /** the first top layer's bias [U] and activation */
  firstBias: Float32Array;
  firstActivation: DenseLayer["activation"];
  /** the other top layers, then the output unit (its activation is replaced by the sigmoid) */
  top: Dense[];
  out: Dense;
}

function fromVariable(l: DenseLayer): Dense {
  const [i, o] = l.kernel.shape as [number, number];
  return denseOf(
    Float32Array.from(l.kernel.dataSync() as Float32Array),
    Float32Array.from(l.bias.dataSync() as Float32Array),
    i,
    o,
    l.activation,
  );
}

/** a[aOff..aOff+n) . b[bOff..bOff+n) with four accumulators (about twice as fast in V8 as one). */
function dot(a: Float32Array, aOff: number, b: Float32Array, bOff: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += a[aOff + k] * b[bOff + k];
    s1 += a[aOff + k + 1] * b[bOff + k + 1];
    s2 += a[aOff + k + 2] * b[bOff + k + 2];
    s3 += a[aOff + k + 3] * b[bOff + k + 3];
  }
  for (; k < n; k++) s0 += a[aOff + k] * b[bOff + k];
  return s0 + s1 + (s2 + s3);
}

export type ScorerEngine = "auto" | "tfjs" | "js";

/** The first top layer's input terms of one path, and its kernel rows for them. */
interface TermPlan {
  /** -1 is the bottom MLP output (D values), k >= 0 the interaction pair k (one value) */
  terms: number[];
  /** values per row: 1 per pair, D for the bottom output */
  width: number;
  /** row-major [width, U] */
  kernel: Float32Array;
  /** per term: the offsets of its two vectors (f*D) and whether each comes from the request's shared row */
  left: Int32Array;
  right: Int32Array;
  leftShared: Uint8Array;
  rightShared: Uint8Array;
  /** the same kernel on the TensorFlow.js backend (created on first use) */
  tensor: tf.Tensor2D | null;
}

export class DlrmScorer {
  readonly weights: DlrmScorerWeights;
  /** number of interacting vectors: one per categorical input, plus the bottom MLP output */
  private readonly F: number;
  private readonly U: number;
  private readonly engineOption: ScorerEngine;
  /** every term (score) / the terms involving an item-side vector (scoreCandidates) / the others */
  private readonly allPlan: TermPlan;
  private readonly rowPlan: TermPlan;
  private readonly sharedPlan: TermPlan;
  /** which vectors come from the request's shared row (user and context side) */
  private readonly sharedVectors: number[];
  private readonly rowVectors: number[];
  private topTensors: Array<{ kernel: tf.Tensor2D; bias: tf.Tensor1D; activation: DenseLayer["activation"] }> | null =
    null;
  /** scratch, grown on demand and reused across calls */
  private vecs: Float32Array = new Float32Array(0);
  private z: Float32Array = new Float32Array(0);
  private sharedVecs: Float32Array = new Float32Array(0);
  private layerA: Float32Array = new Float32Array(0);
  private layerB: Float32Array = new Float32Array(0);

  /**
   * `engine`: where the top MLP runs. "tfjs" batches every candidate through one fused matMul per layer (wasm
   * SIMD, ~0.2 ms for 100 candidates); "js" runs it on typed arrays (no tensors at all; the fast choice on the
   * plain cpu backend); "auto" takes "js" on the cpu backend, "tfjs" otherwise. Vectors and interactions are
   * always computed on typed arrays.
   */
  constructor(w: DlrmScorerWeights, engine: ScorerEngine = "auto") {
    this.weights = w;
    this.engineOption = engine;
    this.F = w.categorical.length + (w.continuous.length ? 1 : 0);
    this.U = w.firstBias.length;
    if (w.pairWeights.length !== w.pairs.length * this.U)
      throw new Error(
        `dlrm scorer: ${w.pairWeights.length} pair weights for ${w.pairs.length} pairs x ${this.U} units`,
      );
    for (const t of w.categorical)
      if (t.table.length !== t.rows * w.D)
        throw new Error(`dlrm scorer: table ${t.name} has ${t.table.length} values, expected ${t.rows}x${w.D}`);
    const isShared = (f: number) =>
      f < w.categorical.length ? w.categorical[f].side !== "item" : w.continuous.every((c) => c.side !== "item");
    this.sharedVectors = [];
    this.rowVectors = [];
    for (let f = 0; f < this.F; f++) (isShared(f) ? this.sharedVectors : this.rowVectors).push(f);
    const all = [...(w.continuous.length ? [-1] : []), ...w.pairs.map((_, k) => k)];
    const termShared = (t: number) =>
      t < 0 ? isShared(this.F - 1) : isShared(w.pairs[t][0]) && isShared(w.pairs[t][1]);
    const sharedSet = new Set(this.sharedVectors);
    this.allPlan = this.plan(all, new Set());
    this.rowPlan = this.plan(
      all.filter((t) => !termShared(t)),
      sharedSet,
    );
    this.sharedPlan = this.plan(all.filter(termShared), sharedSet);
  }

  /** A snapshot of a trained model's weights (later training does not change it). */
  static fromModel(m: DlrmModel, engine: ScorerEngine = "auto"): DlrmScorer {
    const D = m.options.embeddingDim;
    const hasBottom = m.enc.continuous.length > 0;
    const first = fromVariable(m.top[0]);
    const U = first.outDim;
    const offset = hasBottom ? D : 0;
    return new DlrmScorer(
      {
        D,
        categorical: m.enc.categorical.map((c, i) => ({
          name: c.name,
          side: c.side,
          isList: c.isList,
          pooling: c.pooling,
          rows: m.enc.tables[i].rows,
          table: m.enc.tables[i].getWeights(),
        })),
        continuous: m.enc.continuous.map((c) => ({ name: c.name, side: c.side })),
        bottom: m.bottom.map(fromVariable),
        pairs: m.pairs.map(([i, j]) => [i, j]),
        pairWeights: first.w.slice(offset * U),
        bottomWeights: first.w.slice(0, offset * U),
        firstBias: first.b,
        firstActivation: first.activation,
        top: m.top.slice(1).map(fromVariable),
        out: fromVariable(m.out),
      },
      engine,
    );
  }

  /**
   * From a DLRM layers model (dlrmToLayers, or loadModel of a saved one): its interaction layer feeds all F x F
   * dot products to `top_0`; since the products are symmetric, entries (i, j) and (j, i) fold into one term and
   * all-zero terms (the pairs the model never trained) are dropped.
   */
  static fromLayers(loaded: LoadedModel, engine: ScorerEngine = "auto"): DlrmScorer {
    const { model, meta } = loaded;
    if (meta.kind !== "dlrm") throw new ValidationError(`dlrm scorer: the model is a ${meta.kind}, not a dlrm`);
    const layerOf = (name: string) => model.layers.find((l) => l.name === name);
    const weightsOf = (name: string) => layerWeights(model, name, "dlrm scorer");
    const activationOf = (name: string) => layerActivation(model, name, "dlrm scorer");
    const cats = meta.inputs.filter((i) => i.type === "categorical");
    const conts = meta.inputs.filter((i) => i.type === "continuous");
    const D = cats[0]?.dim ?? 0;
    const categorical = cats.map((c) => {
      if (c.dim !== D) throw new ValidationError(`dlrm scorer: embedding ${c.name} has dim ${c.dim}, expected ${D}`);
      const [table] = weightsOf(`emb_${c.name}`);
      const rows = c.cardinality as number;
      return { name: c.name, side: c.side, isList: c.isList ?? false, pooling: c.pooling, rows, table };
    });
    const denseLayers = (prefix: string): Dense[] => {
      const out: Dense[] = [];
      for (let i = 0; layerOf(`${prefix}_${i}`); i++) {
        const [k, b] = weightsOf(`${prefix}_${i}`);
        out.push(denseOf(k, b, k.length / b.length, b.length, activationOf(`${prefix}_${i}`)));
      }
      return out;
    };
    const bottom = denseLayers("bottom");
    const top = denseLayers("top");
    if (top.length === 0) throw new ValidationError("dlrm scorer: the model has no top_0 layer");
    const F = categorical.length + (conts.length ? 1 : 0);
    const offset = conts.length ? D : 0;
    const first = top[0];
    const U = first.outDim;
    if (first.inDim !== offset + F * F)
      throw new ValidationError(`dlrm scorer: top_0 takes ${first.inDim} inputs, expected ${offset + F * F}`);
    const pairs: Array<[number, number]> = [];
    const rows: number[] = [];
    for (let i = 0; i < F; i++) {
      for (let j = i; j < F; j++) {
        const row = new Float32Array(U);
        for (let u = 0; u < U; u++)
          row[u] = first.w[(offset + i * F + j) * U + u] + (i === j ? 0 : first.w[(offset + j * F + i) * U + u]);
        if (row.some((v) => v !== 0)) {
          pairs.push([i, j]);
          rows.push(...row);
        }
      }
    }
    const [ok, ob] = weightsOf("prediction");
    return new DlrmScorer(
      {
        D,
        categorical,
        continuous: conts.map((c) => ({ name: c.name, side: c.side })),
        bottom,
        pairs,
        pairWeights: Float32Array.from(rows),
        bottomWeights: first.w.slice(0, offset * U),
        firstBias: first.b,
        firstActivation: first.activation,
        top: top.slice(1),
        out: denseOf(ok, ob, ok.length, 1, "linear"),
      },
      engine,
    );
  }

  /** Where the top MLP runs now ("auto" resolved against the current TensorFlow.js backend). */
  get engine(): "tfjs" | "js" {
    if (this.engineOption !== "auto") return this.engineOption;
    return tf.getBackend() === "cpu" ? "js" : "tfjs";
  }

  /** Click probabilities of the rows of `frame` (every row scored on its own). */
  score(frame: Frame): Float32Array {
    const n = frame.length;
    const { F } = this;
    const D = this.weights.D;
    const vecs = (this.vecs = grow(this.vecs, n * F * D));
    this.fillVectors(frame, n, [...Array(F).keys()], vecs);
    const z = (this.z = grow(this.z, n * this.allPlan.width));
    for (let r = 0; r < n; r++) this.terms(vecs, r * F * D, vecs, this.allPlan, z, r * this.allPlan.width);
    return this.top(z, n, this.allPlan, this.weights.firstBias);
  }

  /**
   * Click probabilities of `candidates` for one request: user and context columns come from the single row of
   * `shared`, item columns from each candidate row. Same scores as `score` on rows that repeat `shared`; the
   * shared vectors, their interactions and their share of the first top layer are computed once.
   */
  scoreCandidates(shared: Frame, candidates: Frame): Float32Array {
    if (shared.length !== 1)
      throw new ValidationError(`dlrm scorer: the shared (user/context) frame must have one row, has ${shared.length}`);
    const n = candidates.length;
    const { F, U } = this;
    const D = this.weights.D;
    const sv = (this.sharedVecs = grow(this.sharedVecs, F * D + this.sharedPlan.width + U));
    this.fillVectors(shared, 1, this.sharedVectors, sv);
    // The first top layer's pre-activation from the shared terms: its bias for every candidate of this request.
    const sz = sv.subarray(F * D, F * D + this.sharedPlan.width);
    this.terms(sv, 0, sv, this.sharedPlan, sz, 0);
    const bias = sv.subarray(F * D + this.sharedPlan.width, F * D + this.sharedPlan.width + U);
    bias.set(this.weights.firstBias);
    addRowTimes(sz, 0, this.sharedPlan.width, this.sharedPlan.kernel, U, bias, 0);
    const vecs = (this.vecs = grow(this.vecs, n * F * D));
    this.fillVectors(candidates, n, this.rowVectors, vecs);
    const W = this.rowPlan.width;
    const z = (this.z = grow(this.z, n * W));
    for (let r = 0; r < n; r++) this.terms(vecs, r * F * D, sv, this.rowPlan, z, r * W);
    return this.top(z, n, this.rowPlan, bias);
  }

  /** Release the TensorFlow.js copies of the top MLP (the scorer stays usable; they are made again on use). */
  dispose(): void {
    for (const p of [this.allPlan, this.rowPlan, this.sharedPlan]) {
      p.tensor?.dispose();
      p.tensor = null;
    }
    this.topTensors?.forEach((l) => tf.dispose([l.kernel, l.bias]));
    this.topTensors = null;
  }

  // --- internals ---

  /** `shared`: the vectors the terms read from the shared row rather than from each candidate's row. */
  private plan(terms: number[], shared: Set<number>): TermPlan {
    const { D, pairWeights, bottomWeights } = this.weights;
    const U = this.U;
    const width = terms.reduce((a, t) => a + (t < 0 ? D : 1), 0);
    const kernel = new Float32Array(width * U);
    let row = 0;
    for (const t of terms) {
      if (t < 0) {
        kernel.set(bottomWeights, row * U);
        row += D;
      } else kernel.set(pairWeights.subarray(t * U, t * U + U), row++ * U);
    }
    // The bottom output is vector F-1: a term of width D rather than a dot product (left = right = -1).
    const vec = (t: number, side: 0 | 1) => (t < 0 ? this.F - 1 : this.weights.pairs[t][side]);
    const left = Int32Array.from(terms, (t) => (t < 0 ? -1 : vec(t, 0) * D));
    const right = Int32Array.from(terms, (t) => (t < 0 ? -1 : vec(t, 1) * D));
    const leftShared = Uint8Array.from(terms, (t) => (shared.has(vec(t, 0)) ? 1 : 0));
    const rightShared = Uint8Array.from(terms, (t) => (shared.has(vec(t, 1)) ? 1 : 0));
    return { terms, width, kernel, left, right, leftShared, rightShared, tensor: null };
  }

  /**
   * The plan's input values into z[zOff .. zOff + width): vectors of this row at rows[rowOff + f*D ..], shared
   * vectors (the plan says which) at shared[f*D ..].
   */
  private terms(
    rows: Float32Array,
    rowOff: number,
    shared: Float32Array,
    plan: TermPlan,
    z: Float32Array,
    zOff: number,
  ): void {
    const D = this.weights.D;
    const { left, right, leftShared, rightShared } = plan;
    let o = zOff;
    for (let t = 0; t < left.length; t++) {
      if (left[t] < 0) {
        const src = leftShared[t] ? shared : rows;
        const bo = (leftShared[t] ? 0 : rowOff) + (this.F - 1) * D;
        for (let k = 0; k < D; k++) z[o++] = src[bo + k];
      } else {
        const a = leftShared[t] ? shared : rows;
        const b = rightShared[t] ? shared : rows;
        z[o++] = dot(a, (leftShared[t] ? 0 : rowOff) + left[t], b, (rightShared[t] ? 0 : rowOff) + right[t], D);
      }
    }
  }

  /** The top MLP on the term rows z [n, width] (first layer bias `bias`) and the sigmoid output. */
  private top(z: Float32Array, n: number, plan: TermPlan, bias: Float32Array): Float32Array {
    const w = this.weights;
    const U = this.U;
    if (this.engine === "tfjs") {
      plan.tensor ??= tf.tensor2d(plan.kernel, [plan.width, U]);
      this.topTensors ??= [...w.top, w.out].map((l, i, all) => ({
        kernel: tf.tensor2d(l.w, [l.inDim, l.outDim]),
        bias: tf.tensor1d(l.b),
        activation: i === all.length - 1 ? "sigmoid" : l.activation,
      }));
      const layers = this.topTensors;
      const kernel = plan.tensor;
      const y = tf.tidy(() => {
        let h = tf.fused.matMul({
          a: tf.tensor2d(z.subarray(0, n * plan.width), [n, plan.width]),
          b: kernel,
          bias: tf.tensor1d(bias),
          activation: w.firstActivation,
        });
        for (const l of layers) h = tf.fused.matMul({ a: h, b: l.kernel, bias: l.bias, activation: l.activation });
        return h;
      });
      const out = Float32Array.from(y.dataSync() as Float32Array);
      y.dispose();
      return out;
    }
    const out = new Float32Array(n);
    const width = Math.max(U, ...w.top.map((l) => l.outDim));
    this.layerA = grow(this.layerA, width);
    this.layerB = grow(this.layerB, width);
    for (let r = 0; r < n; r++) {
      let x = this.layerA;
      let y = this.layerB;
      x.set(bias);
      addRowTimes(z, r * plan.width, plan.width, plan.kernel, U, x, 0);
      activate(w.firstActivation, x, 0, U);
      for (const l of w.top) {
        denseRow(l, x, 0, y, 0);
        [x, y] = [y, x];
      }
      let s = w.out.b[0];
      for (let k = 0; k < w.out.inDim; k++) s += x[k] * w.out.w[k];
      out[r] = 1 / (1 + Math.exp(-s));
    }
    return out;
  }

  /** Vectors `fs` of `n` rows into out[(r*F + f)*D ..]: embeddings (mean-pooled lists) and the bottom MLP. */
  private fillVectors(frame: Frame, n: number, fs: number[], out: Float32Array): void {
    const w = this.weights;
    const { F } = this;
    const D = w.D;
    let pool = new Float32Array(64);
    for (const f of fs) {
      if (f < w.categorical.length) {
        const c = w.categorical[f];
        const col = column(frame, c.name);
        if (c.isList) {
          if (!isList(col)) throw new ValidationError(`dlrm scorer: input "${c.name}" must be a list`);
          for (let r = 0; r < n; r++) {
            const o = (r * F + f) * D;
            out.fill(0, o, o + D);
            const s = col.offsets[r];
            const len = col.offsets[r + 1] - s;
            if (pool.length < len) pool = new Float32Array(len);
            poolingWeights(c.pooling ?? "mean", len, pool);
            for (let k = 0; k < len; k++) {
              const id = clampId(col.values[s + k], c.rows);
              for (let d = 0; d < D; d++) out[o + d] += c.table[id * D + d] * pool[k];
            }
          }
        } else {
          if (isList(col)) throw new ValidationError(`dlrm scorer: input "${c.name}" must be a scalar, got a list`);
          for (let r = 0; r < n; r++) {
            const id = clampId(col[r], c.rows);
            const o = (r * F + f) * D;
            const src = id * D;
            for (let d = 0; d < D; d++) out[o + d] = c.table[src + d];
          }
        }
        continue;
      }
      // The bottom MLP over the continuous columns.
      const cols = w.continuous.map((c) => {
        const col = column(frame, c.name);
        if (isList(col)) throw new ValidationError(`dlrm scorer: input "${c.name}" must be a number, got a list`);
        return col;
      });
      const width = Math.max(cols.length, ...w.bottom.map((l) => l.outDim));
      let a = new Float32Array(width);
      let b = new Float32Array(width);
      for (let r = 0; r < n; r++) {
        cols.forEach((col, j) => (a[j] = col[r]));
        for (const l of w.bottom) {
          denseRow(l, a, 0, b, 0);
          [a, b] = [b, a];
        }
        out.set(a.subarray(0, D), (r * F + f) * D);
      }
    }
  }
}

function grow(buf: Float32Array, size: number): Float32Array {
  return buf.length >= size ? buf : new Float32Array(size);
}

function column(frame: Frame, name: string): Column {
  const col = frame.columns[name];
  if (!col)
    throw new ValidationError(
      `dlrm scorer: input "${name}" is missing from the rows (have ${Object.keys(frame.columns).join(", ")})`,
    );
  return col;
}
