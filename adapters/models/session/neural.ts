// What the neural session models share: the input block (item-id embedding, tied to the output layer, and the
// side features, concatenated and projected to the model width), batches of right-padded sessions grouped by
// length, the next-item loss at every position (full softmax over the catalogue, or a sampled softmax against
// uniformly drawn catalogue items), Adam, and the snapshot of the weights the typed-array scorer runs on.
import { tf, matMulFast } from "../backend.js";
import { rng, shuffled } from "../frame.js";
import { ScheduledAdam } from "../nn.js";
import { scheduledRate } from "../train.js";
import { meanLogSumExp } from "../two_tower.js";
import type { SessionArtifact, SessionTrainer } from "./baselines.js";
import { snapshot } from "./baselines.js";
import type { SessionInputs, Sessions } from "./data.js";
import { countItems, type Catalogue, type SessionModelKind } from "./scorer.js";
import { NeuralScorer, type NeuralWeights } from "./neural_scorer.js";

export interface NeuralOptions {
  /** model width: item embedding and hidden size (default 64) */
  dim?: number;
  /** the latest `window` items of a session are used (default 20, the ETL's list length) */
  window?: number;
  /** width of each categorical side feature's embedding (default 8) */
  sideDim?: number;
  /** "full": softmax over every item; "sampled": against `negatives` uniformly drawn known items (default full) */
  softmax?: "full" | "sampled";
  negatives?: number;
  /** passes over each day's sessions (default 5: 3, as notebook 004, underfit both models by 0.08 NDCG@20) */
  epochs?: number;
  /** sessions per batch (default 32: a day of 2,300 sessions in batches of 256 gives 45 steps, which left the first
   * evaluation day at NDCG@20 0.19-0.26 and the seeds 0.017 apart) */
  batchSize?: number;
  /** default per model: GRU 0.01, transformer 0.005 (the better of the two for each, scripts/session_experiments.ts) */
  learningRate?: number;
  /** the learning rate falls linearly over each train() call's batches to this share of its start (default 0.3:
   * the smaller steps at the end of each day settle the weights, about +0.01 NDCG@20 on the later days) */
  learningRateEnd?: number;
  seed?: number;
  /** transformer: "causal" (next item at every position) or "mlm" (masked items, bidirectional attention, as
   * XLNet-MLM in Transformers4Rec; a mask appended to the session is predicted at serving) (default causal) */
  objective?: "causal" | "mlm";
  /** mlm: share of the positions masked in training (default 0.2) */
  maskProbability?: number;
  /** transformer: layers and heads (default 1 and 2) */
  layers?: number;
  heads?: number;
  /** called after each batch with the batches done and the total of the current train() call */
  onBatch?: (done: number, total: number) => void;
}

export type ResolvedNeuralOptions = Required<Omit<NeuralOptions, "onBatch">>;

export function resolveNeuralOptions(o: NeuralOptions): ResolvedNeuralOptions {
  return {
    dim: o.dim ?? 64,
    window: o.window ?? 20,
    sideDim: o.sideDim ?? 8,
    softmax: o.softmax ?? "full",
    negatives: o.negatives ?? 1024,
    epochs: o.epochs ?? 5,
    batchSize: o.batchSize ?? 32,
    learningRate: o.learningRate ?? 0.003,
    learningRateEnd: o.learningRateEnd ?? 0.3,
    seed: o.seed ?? 42,
    layers: o.layers ?? 1,
    heads: o.heads ?? 2,
    objective: o.objective ?? "causal",
    maskProbability: o.maskProbability ?? 0.2,
  };
}

/** One batch of right-padded sessions: positions [b, t] for t < len[b] hold items. */
export interface SeqBatch {
  B: number;
  L: number;
  items: Int32Array;
  categorical: Int32Array[];
  continuous: Float32Array[];
  /** items per row (the rest is padding) */
  lengths: Int32Array;
  /** flat positions b*L+t whose next item is a target, and those targets */
  positions: Int32Array;
  targets: Int32Array;
  /** masked-item training: 1 where the input is hidden behind the mask embedding (the target is the item itself) */
  masked?: Uint8Array;
}

export function makeBatch(s: Sessions, rows: ArrayLike<number>, window: number): SeqBatch {
  const B = rows.length;
  let L = 1;
  for (let j = 0; j < B; j++) L = Math.max(L, Math.min(window, s.offsets[rows[j] + 1] - s.offsets[rows[j]]));
  const items = new Int32Array(B * L);
  const categorical = s.categorical.map(() => new Int32Array(B * L));
  const continuous = s.continuous.map(() => new Float32Array(B * L));
  const positions: number[] = [];
  const targets: number[] = [];
  const lengths = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const end = s.offsets[rows[b] + 1];
    const start = Math.max(s.offsets[rows[b]], end - window);
    lengths[b] = end - start;
    for (let p = start; p < end; p++) {
      const t = p - start;
      items[b * L + t] = s.items[p];
      categorical.forEach((c, j) => (c[b * L + t] = s.categorical[j][p]));
      continuous.forEach((c, j) => (c[b * L + t] = s.continuous[j][p]));
      if (p + 1 < end) {
        positions.push(b * L + t);
        targets.push(s.items[p + 1]);
      }
    }
  }
  return {
    B,
    L,
    items,
    categorical,
    continuous,
    lengths,
    positions: Int32Array.from(positions),
    targets: Int32Array.from(targets),
  };
}

/** Batches of sessions with >= 2 items, each of similar lengths (less padding), in a shuffled order. */
export function batchesOf(s: Sessions, idx: Int32Array, batchSize: number, rand: () => number): Int32Array[] {
  const usable = idx.filter((i) => s.offsets[i + 1] - s.offsets[i] >= 2);
  const order = shuffled(usable.length, rand).map((k) => usable[k]);
  const out: Int32Array[] = [];
  const chunk = batchSize * 32;
  for (let c = 0; c < order.length; c += chunk) {
    const part = order
      .slice(c, c + chunk)
      .sort((a, b) => s.offsets[a + 1] - s.offsets[a] - (s.offsets[b + 1] - s.offsets[b]));
    for (let b = 0; b < part.length; b += batchSize) out.push(part.slice(b, b + batchSize));
  }
  const perm = shuffled(out.length, rand);
  return Array.from(perm, (k) => out[k]);
}

let varCounter = 0;

/** The base of the GRU and transformer trainers: parameters, input block, loss, training loop, snapshot. */
export abstract class NeuralTrainer implements SessionTrainer {
  abstract readonly kind: SessionModelKind;
  readonly catalogue: Catalogue;
  readonly inputs: SessionInputs;
  readonly options: ResolvedNeuralOptions;
  protected readonly vars = new Map<string, tf.Variable>();
  private readonly optimizer: ScheduledAdam;
  private readonly rand: () => number;
  private readonly onBatch?: (done: number, total: number) => void;
  protected initSeed: number;

  constructor(inputs: SessionInputs, catalogue: Catalogue, o: NeuralOptions) {
    this.inputs = inputs;
    this.catalogue = catalogue;
    this.options = resolveNeuralOptions(o);
    this.onBatch = o.onBatch;
    this.rand = rng(this.options.seed);
    this.initSeed = this.options.seed * 7919;
    const { dim, sideDim } = this.options;
    const N = inputs.itemCardinality;
    this.param("item_emb", tf.randomUniform([N, dim], -0.05, 0.05, "float32", this.nextSeed()));
    this.param("item_bias", tf.zeros([N]));
    inputs.categorical.forEach((c, j) =>
      this.param(`side_emb_${j}`, tf.randomUniform([c.cardinality, sideDim], -0.05, 0.05, "float32", this.nextSeed())),
    );
    const inDim = dim + inputs.categorical.length * sideDim + inputs.continuous.length;
    this.dense("in", inDim, dim);
    this.optimizer = new ScheduledAdam(this.options.learningRate, 0.9, 0.999);
  }

  protected nextSeed(): number {
    return this.initSeed++;
  }

  protected param(name: string, init: tf.Tensor): tf.Variable {
    const v = tf.variable(init, true, `${name}_${varCounter++}`);
    init.dispose();
    this.vars.set(name, v);
    return v;
  }

  /** A dense layer's `${name}_kernel` [inDim, outDim] (Glorot uniform) and `${name}_bias`. */
  protected dense(name: string, inDim: number, outDim: number): void {
    this.param(`${name}_kernel`, tf.initializers.glorotUniform({ seed: this.nextSeed() }).apply([inDim, outDim]));
    this.param(`${name}_bias`, tf.zeros([outDim]));
  }

  protected v(name: string): tf.Tensor {
    const x = this.vars.get(name);
    if (!x) throw new Error(`session model: no parameter ${name}`);
    return x;
  }

  protected applyDense(name: string, x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.v(`${name}_kernel`) as tf.Tensor2D), this.v(`${name}_bias`)) as tf.Tensor2D;
  }

  /** The input of every position, [B*L, dim]: item embedding and side features, concatenated and projected. */
  protected embedInputs(b: SeqBatch): tf.Tensor2D {
    const BL = b.B * b.L;
    const parts: tf.Tensor2D[] = [tf.gather(this.v("item_emb"), tf.tensor1d(b.items, "int32")) as tf.Tensor2D];
    b.categorical.forEach((c, j) =>
      parts.push(tf.gather(this.v(`side_emb_${j}`), tf.tensor1d(c, "int32")) as tf.Tensor2D),
    );
    if (b.continuous.length) {
      const n = b.continuous.length;
      const buf = new Float32Array(BL * n);
      b.continuous.forEach((c, j) => {
        for (let r = 0; r < BL; r++) buf[r * n + j] = c[r];
      });
      parts.push(tf.tensor2d(buf, [BL, n]));
    }
    return this.applyDense("in", parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor2D));
  }

  /** The hidden state of every position, [B*L, dim] (causal: position t sees items 0..t only). */
  protected abstract encode(b: SeqBatch): tf.Tensor2D;

  /** The training targets of a batch: the next item at every position unless a model trains otherwise. */
  protected trainingBatch(b: SeqBatch, _rand: () => number): SeqBatch {
    return b;
  }

  /** Next-item loss at the batch's target positions. */
  private loss(b: SeqBatch, negatives: Int32Array | null): tf.Scalar {
    const h = tf.gather(this.encode(b), tf.tensor1d(b.positions, "int32")) as tf.Tensor2D;
    const emb = this.v("item_emb") as tf.Tensor2D;
    const bias = this.v("item_bias") as tf.Tensor1D;
    const targets = tf.tensor1d(b.targets, "int32");
    const pos = tf.add(tf.sum(tf.mul(h, tf.gather(emb, targets)), 1), tf.gather(bias, targets)) as tf.Tensor1D;
    if (!negatives) {
      const logits = tf.add(matMulFast(h, emb, false, true), bias) as tf.Tensor2D;
      return tf.sub(meanLogSumExp(logits), tf.mean(pos)) as tf.Scalar;
    }
    const negIdx = tf.tensor1d(negatives, "int32");
    const M = negatives.length;
    const T = b.targets.length;
    const hit = new Float32Array(T * M);
    for (let t = 0; t < T; t++) for (let m = 0; m < M; m++) if (negatives[m] === b.targets[t]) hit[t * M + m] = -1e9;
    const negLogits = tf.add(
      tf.add(matMulFast(h, tf.gather(emb, negIdx), false, true), tf.gather(bias, negIdx)),
      tf.tensor2d(hit, [T, M]),
    ) as tf.Tensor2D;
    const all = tf.concat([tf.reshape(pos, [T, 1]), negLogits], 1) as tf.Tensor2D;
    return tf.sub(meanLogSumExp(all), tf.mean(pos)) as tf.Scalar;
  }

  private sampleNegatives(): Int32Array | null {
    if (this.options.softmax !== "sampled") return null;
    const known: number[] = [];
    const c = this.catalogue;
    for (let i = c.firstItemIndex; i < c.itemCardinality; i++) if (c.counts[i] > 0) known.push(i);
    const M = Math.min(this.options.negatives, known.length);
    return Int32Array.from({ length: M }, () => known[Math.floor(this.rand() * known.length)]);
  }

  train(s: Sessions, idx: Int32Array): { samples: number; seconds: number; loss?: number } {
    countItems(this.catalogue, s.offsets, s.items, idx);
    const t0 = performance.now();
    const varList = [...this.vars.values()];
    let samples = 0;
    let lossSum = 0;
    const { epochs, batchSize, window, learningRate, learningRateEnd } = this.options;
    const perEpoch = batchesOf(s, idx, batchSize, this.rand);
    const total = perEpoch.length * epochs;
    let done = 0;
    for (let e = 0; e < epochs; e++) {
      const batches = e === 0 ? perEpoch : batchesOf(s, idx, batchSize, this.rand);
      for (const rows of batches) {
        const b = this.trainingBatch(makeBatch(s, rows, window), this.rand);
        if (b.targets.length === 0) continue;
        this.optimizer.setLearningRate(scheduledRate(learningRate, learningRateEnd, done, total));
        const negatives = this.sampleNegatives();
        const { value, grads } = tf.variableGrads(() => tf.tidy(() => this.loss(b, negatives)), varList);
        this.optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
        const l = value.dataSync()[0];
        value.dispose();
        tf.dispose(Object.values(grads));
        if (!Number.isFinite(l)) throw new Error(`${this.kind}: training diverged (loss ${l})`);
        lossSum += l * b.targets.length;
        samples += b.targets.length;
        this.onBatch?.(++done, total);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    return { samples, seconds, loss: samples ? lossSum / samples : undefined };
  }

  /** The current weights as typed arrays. */
  weights(): NeuralWeights {
    const tensors: NeuralWeights["tensors"] = {};
    for (const [name, v] of this.vars) tensors[name] = { shape: v.shape, data: Float32Array.from(v.dataSync()) };
    return { kind: this.kind, options: this.options, inputs: this.inputs, tensors };
  }

  scorer(): NeuralScorer {
    return new NeuralScorer(this.weights(), snapshot(this.catalogue));
  }

  artifact(): SessionArtifact {
    const w = this.weights();
    const { dim, window, sideDim, layers, heads, objective } = this.options;
    return {
      kind: this.kind,
      config: { dim, window, sideDim, layers, heads, objective },
      tensors: Object.entries(w.tensors).map(([name, t]) => ({ name, shape: t.shape, data: t.data })),
    };
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.optimizer.dispose();
  }
}
