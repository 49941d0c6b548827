// DLRM ranking: one embedding dimension for every categorical column, a bottom MLP for the continuous ones,
// pairwise dot-product interactions of all those vectors, a top MLP and a sigmoid. Trained with binary
// cross-entropy on labelled rows, or on positives plus uniformly sampled negatives with class weights.
import { matMulFast, tf } from "./backend.js";
import type { EmbeddingUpdate } from "./embedding.js";
import { concatFrames, isList, joinColumns, rng, sliceFrame, takeRows, type Frame } from "./frame.js";
import { sampleFromLists, sampleNegatives, type NegativeSource } from "./negatives.js";
import {
  applyDense,
  applyMlp,
  dense,
  disposePrepared,
  FeatureEncoder,
  mlp,
  mlpVariables,
  Optimizer,
  tableVariables,
  type DenseLayer,
  type PreparedFeatures,
} from "./nn.js";
import { inputColumns, inputsOf, type InputSpec } from "./schema.js";
import { ValidationError } from "../../common/errors.js";
import { DLRM_DEFAULTS } from "./defaults.js";

export interface DlrmOptions {
  /** dimension of every embedding and of the bottom MLP's output (default 64) */
  embeddingDim?: number;
  /** bottom MLP for continuous inputs; its last size is forced to `embeddingDim` (default [128, 64]) */
  bottomLayers?: number[];
  /** top MLP before the output unit (default [128, 64, 32]) */
  topLayers?: number[];
  /** negatives per positive; 0 trains on the target column as it is (default 0) */
  negatives?: number;
  /**
   * where negatives come from: "batch" (default), "catalogue" (needs setCatalogue) or "column": each row's own
   * list of item ids in `negativeColumn`, e.g. what the retrieval stage answered for that row (hard negatives,
   * so the ranker learns to order what it will be given; item features from the catalogue)
   */
  negativeSource?: NegativeSource;
  negativeColumn?: string;
  /** loss weight per class; default {0: 1, 1: negatives} with sampling, {0: 1, 1: 1} without */
  classWeights?: { 0: number; 1: number };
  embeddingUpdate?: EmbeddingUpdate;
  learningRate?: number;
  seed?: number;
}

export class DlrmModel {
  readonly spec: InputSpec;
  readonly options: Required<Omit<DlrmOptions, "classWeights" | "negativeColumn">> & {
    classWeights: { 0: number; 1: number };
    negativeColumn: string | undefined;
  };
  readonly enc: FeatureEncoder;
  readonly bottom: DenseLayer[];
  readonly top: DenseLayer[];
  readonly out: DenseLayer;
  readonly itemIdColumn: string | undefined;
  readonly targetColumn: string | undefined;
  /** F interacting vectors, P = F(F-1)/2 pairs; `select` picks the i<j entries of the flattened F x F matrix */
  readonly nVectors: number;
  readonly pairs: Array<[number, number]>;
  private readonly select: tf.Tensor2D;
  private readonly optimizer: Optimizer;
  private readonly rand: () => number;
  private catalogue: Frame | null = null;
  /** item id -> catalogue row, built at the first "column" draw after setCatalogue */
  private catalogueRow: Map<number, number> | null = null;

  constructor(spec: InputSpec, opts: DlrmOptions = {}) {
    const d = DLRM_DEFAULTS;
    const negatives = opts.negatives ?? d.negatives;
    const D = opts.embeddingDim ?? d.embeddingDim;
    this.options = {
      embeddingDim: D,
      bottomLayers: [...(opts.bottomLayers ?? d.bottomLayers).slice(0, -1), D],
      topLayers: opts.topLayers ?? [...d.topLayers],
      negatives,
      negativeSource: opts.negativeSource ?? d.negativeSource,
      negativeColumn: opts.negativeColumn,
      classWeights: opts.classWeights ?? { 0: 1, 1: negatives > 0 ? negatives : 1 },
      embeddingUpdate: opts.embeddingUpdate ?? d.embeddingUpdate,
      learningRate: opts.learningRate ?? d.learningRate,
      seed: opts.seed ?? d.seed,
    };
    const all = inputsOf(spec, ["user", "item", "context"]);
    this.spec = spec;
    this.itemIdColumn = spec.itemIdColumn;
    this.targetColumn = spec.targetColumn;
    if (negatives > 0 && !this.itemIdColumn)
      throw new ValidationError("dlrm: negative sampling needs a categorical column tagged item_id");
    if (this.options.negativeSource === "column" && !this.options.negativeColumn)
      throw new ValidationError('dlrm: negativeSource "column" needs negativeColumn (a list column of item ids)');
    const { seed, embeddingUpdate } = this.options;
    this.enc = new FeatureEncoder(all.categorical, all.continuous, embeddingUpdate, seed, D);
    this.bottom = all.continuous.length
      ? mlp(all.continuous.length, this.options.bottomLayers, seed + 11, "bottom", false)
      : [];
    this.nVectors = all.categorical.length + (all.continuous.length ? 1 : 0);
    if (this.nVectors < 2)
      throw new ValidationError(
        `dlrm: needs at least two interacting inputs (categorical columns or a continuous block), got ${this.nVectors}`,
      );
    this.pairs = [];
    for (let i = 0; i < this.nVectors; i++) for (let j = i + 1; j < this.nVectors; j++) this.pairs.push([i, j]);
    const F = this.nVectors;
    const sel = new Float32Array(F * F * this.pairs.length);
    this.pairs.forEach(([i, j], k) => (sel[(i * F + j) * this.pairs.length + k] = 1));
    this.select = tf.tensor2d(sel, [F * F, this.pairs.length]);
    const topIn = this.pairs.length + (all.continuous.length ? D : 0);
    this.top = mlp(topIn, this.options.topLayers, seed + 13, "top", false);
    this.out = dense(this.options.topLayers[this.options.topLayers.length - 1] ?? topIn, 1, "linear", seed + 17, "out");
    this.optimizer = new Optimizer({ learningRate: this.options.learningRate });
    this.rand = rng(seed + 19);
  }

  /** Columns a training batch must carry (features, plus the target when not sampling). */
  get columns(): string[] {
    const cols = inputColumns(this.enc);
    if (this.itemIdColumn && !cols.includes(this.itemIdColumn)) cols.push(this.itemIdColumn);
    if (this.options.negatives === 0 && this.targetColumn) cols.push(this.targetColumn);
    const nc = this.options.negativeColumn;
    if (this.options.negatives > 0 && this.options.negativeSource === "column" && nc) cols.push(nc);
    return cols;
  }

  /** Columns describing an item (taken from the negative's item row): the item-side inputs. */
  get itemColumns(): string[] {
    return inputColumns(inputsOf(this.spec, ["item"]));
  }

  /** The item catalogue (one row per item, item-side columns) for negatives drawn from the catalogue. */
  setCatalogue(items: Frame): void {
    this.catalogue = items;
    this.catalogueRow = null;
  }

  /** Logits [B] (call inside a tape or tidy). */
  logits(p: PreparedFeatures): tf.Tensor1D {
    const B = p.length;
    const vecs = this.enc.embed(p);
    let bottomOut: tf.Tensor2D | null = null;
    if (p.continuous) {
      bottomOut = applyMlp(this.bottom, p.continuous);
      vecs.push(bottomOut);
    }
    const F = this.nVectors;
    const X = tf.stack(vecs, 1) as tf.Tensor3D; // [B, F, D]
    const Z = tf.reshape(matMulFast(X, X, false, true), [B, F * F]) as tf.Tensor2D;
    const inter = tf.matMul(Z, this.select) as tf.Tensor2D;
    const topIn = bottomOut ? (tf.concat([bottomOut, inter], 1) as tf.Tensor2D) : inter;
    return tf.reshape(applyDense(this.out, applyMlp(this.top, topIn)), [B]) as tf.Tensor1D;
  }

  private denseVariables(): tf.Variable[] {
    return [
      ...mlpVariables(this.bottom),
      ...mlpVariables(this.top),
      this.out.kernel,
      this.out.bias,
      ...tableVariables(this.enc),
    ];
  }

  /** The rows one step trains on: the batch itself, or its positives plus sampled negatives, with labels. */
  trainingRows(batch: Frame): { rows: Frame; labels: Float32Array } {
    const { negatives, negativeSource } = this.options;
    if (negatives === 0) {
      if (!this.targetColumn)
        throw new ValidationError("dlrm: no target column (tag one `target`) and no negative sampling asked for");
      const t = batch.columns[this.targetColumn] as Int32Array | Float32Array;
      return { rows: batch, labels: Float32Array.from(t) };
    }
    const itemCol = this.itemIdColumn as string;
    const posItems = batch.columns[itemCol] as Int32Array;
    let source: Frame = batch;
    if (negativeSource !== "batch") {
      if (!this.catalogue) throw new Error(`dlrm: ${negativeSource} negatives need setCatalogue() first`);
      source = this.catalogue;
    }
    const draw =
      negativeSource === "column"
        ? this.drawFromColumn(batch, posItems, source)
        : sampleNegatives(posItems, source.columns[itemCol] as Int32Array, negatives, this.rand);
    const itemCols = [...new Set([...this.itemColumns, itemCol])];
    const otherCols = Object.keys(batch.columns).filter(
      (c) => !itemCols.includes(c) && c !== this.options.negativeColumn,
    );
    const negRows = joinColumns(
      takeRows(batch, draw.positiveRow, otherCols),
      takeRows(source, draw.candidateRow, itemCols),
    );
    const all = concatFrames(batch, negRows, [...otherCols, ...itemCols]);
    const labels = new Float32Array(all.length);
    labels.fill(1, 0, batch.length);
    return { rows: all, labels };
  }

  /** Negatives from each row's list column, as rows of the catalogue (items it does not hold are skipped). */
  private drawFromColumn(batch: Frame, posItems: Int32Array, catalogue: Frame) {
    const col = this.options.negativeColumn as string;
    const lists = batch.columns[col];
    if (!lists || !isList(lists))
      throw new ValidationError(`dlrm: negative column "${col}" must be a list of item ids`);
    if (!this.catalogueRow) {
      const ids = catalogue.columns[this.itemIdColumn as string] as Int32Array;
      this.catalogueRow = new Map(Array.from(ids, (id, r) => [id, r]));
    }
    const rowOf = this.catalogueRow;
    const draw = sampleFromLists(posItems, lists, this.options.negatives, this.rand);
    const positiveRow: number[] = [];
    const candidateRow: number[] = [];
    draw.item.forEach((item, k) => {
      const r = rowOf.get(item);
      if (r === undefined) return;
      positiveRow.push(draw.positiveRow[k]);
      candidateRow.push(r);
    });
    return { positiveRow: Int32Array.from(positiveRow), candidateRow: Int32Array.from(candidateRow) };
  }

  trainBatch(batch: Frame): number {
    const { rows, labels } = this.trainingRows(batch);
    const w = new Float32Array(labels.length);
    for (let i = 0; i < labels.length; i++)
      w[i] = labels[i] > 0.5 ? this.options.classWeights[1] : this.options.classWeights[0];
    const p = this.enc.prepare(rows, true);
    const y = tf.tensor1d(labels);
    const wt = tf.tensor1d(w);
    try {
      return this.optimizer.minimize(() => tf.tidy(() => weightedBce(this.logits(p), y, wt)), this.denseVariables(), [
        p,
      ]);
    } finally {
      disposePrepared(p);
      y.dispose();
      wt.dispose();
    }
  }

  /** Click probabilities of the rows of `frame`. */
  score(frame: Frame, batchSize = 8192): Float32Array {
    const out = new Float32Array(frame.length);
    for (let s = 0; s < frame.length; s += batchSize) {
      const part = sliceFrame(frame, s, Math.min(frame.length, s + batchSize));
      const p = this.enc.prepare(part, false);
      const y = tf.tidy(() => tf.sigmoid(this.logits(p)));
      out.set(y.dataSync(), s);
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
    this.enc.distinctTables.forEach((t) => t.dispose());
    this.select.dispose();
    this.optimizer.dispose();
  }
}

/** mean over rows of w * BCE(sigmoid(logit), y), in the numerically stable form. */
export function weightedBce(logits: tf.Tensor1D, y: tf.Tensor1D, w: tf.Tensor1D): tf.Scalar {
  const l = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, y)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
  return tf.mean(tf.mul(l, w)) as tf.Scalar;
}
