// Two-Tower retrieval: a query (user) tower and a candidate (item) tower, each embeddings -> MLP, trained on
// positive interactions with in-batch negatives and a softmax cross-entropy over the batch.
import { matMulFast, tf } from "./backend.js";
import type { EmbeddingUpdate } from "./embedding.js";
import { concatFrames, rng, sliceFrame, takeRows, type Frame } from "./frame.js";
import {
  applyMlp,
  disposePrepared,
  FeatureEncoder,
  mlp,
  mlpVariables,
  Optimizer,
  tableVariables,
  type DenseLayer,
  type PreparedFeatures,
  type SharedTables,
} from "./nn.js";
import { inputColumns, inputsOf, type InputSpec } from "./schema.js";
import { ValidationError } from "../../common/errors.js";
import { TWO_TOWER_DEFAULTS } from "./defaults.js";
import { itemCounts } from "./metrics.js";

export interface TwoTowerOptions {
  /** MLP of each tower; the last layer has no activation (default [128, 64]) */
  layers?: number[];
  /** L2-normalise both towers' outputs (cosine similarity), logits divided by `temperature` */
  l2Normalize?: boolean;
  temperature?: number;
  /**
   * subtract log(sampling probability) of each in-batch candidate (default on). The frequencies are the item
   * counts of the training data `fit` gets, unless `setItemFrequencies` gave others first.
   */
  logQCorrection?: boolean;
  /** mask other rows holding the same item as the positive (they are not negatives) */
  removeAccidentalHits?: boolean;
  /** uniformly drawn catalogue items added to the in-batch negatives (mixed negative sampling; needs setCatalogue) */
  mixedNegatives?: number;
  embeddingUpdate?: EmbeddingUpdate;
  learningRate?: number;
  seed?: number;
}

export class TwoTowerModel {
  readonly spec: InputSpec;
  readonly options: Required<TwoTowerOptions>;
  readonly query: { enc: FeatureEncoder; mlp: DenseLayer[] };
  readonly candidate: { enc: FeatureEncoder; mlp: DenseLayer[] };
  readonly itemIdColumn: string;
  private readonly optimizer: Optimizer;
  private logQ: Float32Array | null = null;
  private catalogue: Frame | null = null;
  private readonly rand: () => number;

  constructor(spec: InputSpec, opts: TwoTowerOptions = {}) {
    const d = TWO_TOWER_DEFAULTS;
    this.options = {
      layers: opts.layers ?? [...d.layers],
      l2Normalize: opts.l2Normalize ?? d.l2Normalize,
      temperature: opts.temperature ?? d.temperature,
      logQCorrection: opts.logQCorrection ?? d.logQCorrection,
      removeAccidentalHits: opts.removeAccidentalHits ?? d.removeAccidentalHits,
      mixedNegatives: opts.mixedNegatives ?? d.mixedNegatives,
      embeddingUpdate: opts.embeddingUpdate ?? d.embeddingUpdate,
      learningRate: opts.learningRate ?? d.learningRate,
      seed: opts.seed ?? d.seed,
    };
    if (!spec.itemIdColumn)
      throw new ValidationError("two-tower: the schema has no categorical column tagged item_id (the catalogue key)");
    const user = inputsOf(spec, ["user"]);
    const item = inputsOf(spec, ["item"]);
    if (user.categorical.length + user.continuous.length === 0)
      throw new ValidationError("two-tower: no input column is tagged user (query tower)");
    if (item.categorical.length + item.continuous.length === 0)
      throw new ValidationError("two-tower: no input column is tagged item (candidate tower)");
    this.spec = spec;
    this.itemIdColumn = spec.itemIdColumn;
    const { seed, embeddingUpdate, layers } = this.options;
    // One map of shared tables for both towers: a history list may share the item id's table (schema domain.name).
    const shared: SharedTables = new Map();
    const qEnc = new FeatureEncoder(user.categorical, user.continuous, embeddingUpdate, seed, undefined, shared);
    const cEnc = new FeatureEncoder(item.categorical, item.continuous, embeddingUpdate, seed + 1, undefined, shared);
    this.query = { enc: qEnc, mlp: mlp(qEnc.outputDim, layers, seed + 2, "query", true) };
    this.candidate = { enc: cEnc, mlp: mlp(cEnc.outputDim, layers, seed + 3, "candidate", true) };
    this.optimizer = new Optimizer({ learningRate: this.options.learningRate });
    this.rand = rng(seed + 5);
  }

  /** The item catalogue (one row per item with the candidate tower's columns) for mixed negatives. */
  setCatalogue(items: Frame): void {
    this.catalogue = items;
  }

  get dim(): number {
    return this.options.layers[this.options.layers.length - 1];
  }

  /** Columns a training batch must carry. */
  get columns(): string[] {
    return [...new Set([...inputColumns(this.query.enc), ...inputColumns(this.candidate.enc), this.itemIdColumn])];
  }

  /** Item sampling frequencies for the logQ correction: counts per item index (e.g. from the training data). */
  setItemFrequencies(counts: ArrayLike<number>): void {
    let total = 0;
    for (let i = 0; i < counts.length; i++) total += counts[i];
    this.logQ = new Float32Array(counts.length);
    for (let i = 0; i < counts.length; i++) this.logQ[i] = Math.log(Math.max(counts[i], 1) / Math.max(total, 1));
  }

  /** Called by `fit` with the whole training set: item frequencies for the logQ correction when none are set. */
  beforeFit(data: Frame): void {
    if (!this.options.logQCorrection || this.logQ) return;
    const card = this.spec.categorical.find((c) => c.name === this.itemIdColumn)?.cardinality ?? 0;
    this.setItemFrequencies(itemCounts(data.columns[this.itemIdColumn] as Int32Array, card));
  }

  private tower(t: { enc: FeatureEncoder; mlp: DenseLayer[] }, p: PreparedFeatures): tf.Tensor2D {
    const out = applyMlp(t.mlp, t.enc.concat(p));
    return this.options.l2Normalize ? l2Normalize(out) : out;
  }

  private denseVariables(): tf.Variable[] {
    return [
      ...mlpVariables(this.query.mlp),
      ...mlpVariables(this.candidate.mlp),
      ...tableVariables(this.query.enc, this.candidate.enc),
    ];
  }

  /** One optimisation step on a batch of positive (user, item) rows; returns the loss. */
  trainBatch(batch: Frame): number {
    const B = batch.length;
    const items = batch.columns[this.itemIdColumn] as Int32Array;
    // Candidates: the batch's own items, plus M uniformly drawn catalogue items when mixing negatives.
    const M = this.catalogue ? this.options.mixedNegatives : 0;
    if (this.options.mixedNegatives > 0 && !this.catalogue)
      throw new Error("two-tower: mixed negatives need setCatalogue() first");
    if (this.options.logQCorrection && !this.logQ)
      throw new Error("two-tower: logQ correction needs setItemFrequencies() first");
    let candidates = batch;
    if (M > 0) {
      const cat = this.catalogue as Frame;
      const idx = Int32Array.from({ length: M }, () => Math.floor(this.rand() * cat.length));
      const cols = [...new Set([...inputColumns(this.candidate.enc), this.itemIdColumn])];
      candidates = concatFrames(batch, takeRows(cat, idx, cols), cols);
    }
    const C = candidates.length;
    const candItems = candidates.columns[this.itemIdColumn] as Int32Array;
    const qp = this.query.enc.prepare(batch, true);
    const cp = this.candidate.enc.prepare(candidates, true);
    // Additive bias per logit column: -log(expected count of the item among the candidates), and a large
    // negative where a column holds the row's own positive item (an accidental hit, not a negative).
    let colBias: tf.Tensor2D | null = null;
    if (this.options.logQCorrection) {
      const uniform = M > 0 ? M / (this.catalogue as Frame).length : 0;
      const lq = new Float32Array(C);
      for (let j = 0; j < C; j++)
        lq[j] = -Math.log(B * Math.exp((this.logQ as Float32Array)[candItems[j]] ?? -30) + uniform);
      colBias = tf.tensor2d(lq, [1, C]);
    }
    let hitMask: tf.Tensor2D | null = null;
    if (this.options.removeAccidentalHits) {
      const m = accidentalHitMask(items, candItems);
      if (m) hitMask = tf.tensor2d(m, [B, C]);
    }
    const invT = 1 / this.options.temperature;
    try {
      return this.optimizer.minimize(
        () =>
          tf.tidy(() => {
            const q = this.tower(this.query, qp);
            const c = this.tower(this.candidate, cp);
            let logits = tf.mul(matMulFast(q, c, false, true), invT) as tf.Tensor2D;
            // Softmax cross-entropy with the diagonal as the label: logsumexp(row) - logit(positive).
            const cPos = M > 0 ? (tf.slice(c, [0, 0], [B, this.dim]) as tf.Tensor2D) : c;
            let diag = tf.mul(tf.sum(tf.mul(q, cPos), 1), invT) as tf.Tensor1D;
            if (colBias) {
              logits = tf.add(logits, colBias);
              diag = tf.add(diag, tf.reshape(tf.slice(colBias, [0, 0], [1, B]), [B]));
            }
            if (hitMask) logits = tf.add(logits, hitMask);
            return tf.sub(meanLogSumExp(logits), tf.mean(diag)) as tf.Scalar;
          }),
        this.denseVariables(),
        [qp, cp],
      );
    } finally {
      disposePrepared(qp);
      disposePrepared(cp);
      colBias?.dispose();
      hitMask?.dispose();
    }
  }

  /** Embeddings of the rows of `frame` through one tower, row-major [n, dim]. */
  encode(side: "query" | "candidate", frame: Frame, batchSize = 4096): Float32Array {
    const t = side === "query" ? this.query : this.candidate;
    const out = new Float32Array(frame.length * this.dim);
    for (let s = 0; s < frame.length; s += batchSize) {
      const e = Math.min(frame.length, s + batchSize);
      const part = sliceFrame(frame, s, e);
      const p = t.enc.prepare(part, false);
      const y = tf.tidy(() => this.tower(t, p));
      out.set(y.dataSync(), s * this.dim);
      y.dispose();
      disposePrepared(p);
    }
    return out;
  }

  get learningRate(): number {
    return this.options.learningRate;
  }

  /** The rate of the next steps (fit's schedule); `learningRate` stays the one the model was built with. */
  setLearningRate(lr: number): void {
    this.optimizer.setLearningRate(lr);
  }

  dispose(): void {
    this.denseVariables().forEach((v) => v.dispose());
    new Set([...this.query.enc.tables, ...this.candidate.enc.tables]).forEach((t) => t.dispose());
    this.optimizer.dispose();
  }
}

/**
 * mean over rows of logsumexp(row), with its gradient written out (softmax / B): tfjs' own logSumExp gradient
 * costs ~10x more on wasm for a 1024 x 1024 batch.
 */
export const meanLogSumExp = tf.customGrad<tf.Scalar>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  const save = args[1] as tf.GradSaveFunc;
  const max = tf.max(x, 1, true);
  const e = tf.exp(tf.sub(x, max));
  const sumExp = tf.sum(e, 1, true);
  const lse = tf.add(tf.log(sumExp), max);
  // Keep the softmax for the backward pass: one exp over the B x B logits instead of two.
  save([tf.div(e, sumExp)]);
  return {
    value: tf.mean(lse) as tf.Scalar,
    gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => tf.mul(saved[0], tf.div(dy, saved[0].shape[0])),
  };
});

export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.sqrt(tf.maximum(tf.sum(tf.square(x), 1, true), 1e-12))) as tf.Tensor2D;
}

/**
 * [B*C] additive mask: -1e9 where column j (j != i) holds row i's positive item (`rowItems[i]`); columns are
 * `colItems` (the first B of them are the rows' own items). Null when there is no such hit.
 */
export function accidentalHitMask(rowItems: Int32Array, colItems: Int32Array = rowItems): Float32Array | null {
  const B = rowItems.length;
  const C = colItems.length;
  const rowsOf = new Map<number, number[]>();
  for (let i = 0; i < B; i++) {
    const g = rowsOf.get(rowItems[i]);
    if (g) g.push(i);
    else rowsOf.set(rowItems[i], [i]);
  }
  let m: Float32Array | null = null;
  for (let j = 0; j < C; j++) {
    const rows = rowsOf.get(colItems[j]);
    if (!rows) continue;
    for (const i of rows) {
      if (i === j) continue;
      m ??= new Float32Array(B * C);
      m[i * C + j] = -1e9;
    }
  }
  return m;
}
