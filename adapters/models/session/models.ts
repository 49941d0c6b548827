// The two neural next-item models: a GRU over the session (GRU4Rec's idea with notebook 004's input block),
// and a transformer with causal self-attention (each position attends to itself and the items before it),
// pre-layer-norm blocks and learned positions. Both predict the next item at every position of a session.
import { matMulFast, tf } from "../backend.js";
import type { SessionInputs } from "./data.js";
import { NeuralTrainer, type NeuralOptions, type SeqBatch } from "./neural.js";
import type { Catalogue } from "./scorer.js";

/** GRU cell as Keras' (reset gate after the recurrent matmul): z, r, n gates in that order along the 3h axis. */
export class GruTrainer extends NeuralTrainer {
  readonly kind = "session-gru" as const;

  constructor(inputs: SessionInputs, catalogue: Catalogue, o: NeuralOptions = {}) {
    super(inputs, catalogue, { ...o, learningRate: o.learningRate ?? 0.01 });
    const d = this.options.dim;
    this.dense("gru_x", d, 3 * d);
    this.param("gru_h_kernel", tf.initializers.orthogonal({ seed: this.nextSeed() }).apply([d, 3 * d]));
    this.param("gru_h_bias", tf.zeros([3 * d]));
  }

  protected encode(b: SeqBatch): tf.Tensor2D {
    const d = this.options.dim;
    const x = this.applyDense("gru_x", this.embedInputs(b));
    const steps = tf.unstack(tf.transpose(tf.reshape(x, [b.B, b.L, 3 * d]), [1, 0, 2])) as tf.Tensor2D[];
    const wh = this.v("gru_h_kernel") as tf.Tensor2D;
    const bh = this.v("gru_h_bias");
    let h = tf.zeros([b.B, d]) as tf.Tensor2D;
    const out: tf.Tensor2D[] = [];
    for (const xt of steps) {
      const hp = tf.add(tf.matMul(h, wh), bh) as tf.Tensor2D;
      const [xz, xr, xn] = tf.split(xt, 3, 1);
      const [hz, hr, hn] = tf.split(hp, 3, 1);
      const z = tf.sigmoid(tf.add(xz, hz));
      const r = tf.sigmoid(tf.add(xr, hr));
      const n = tf.tanh(tf.add(xn, tf.mul(r, hn)));
      h = tf.add(n, tf.mul(z, tf.sub(h, n))) as tf.Tensor2D;
      out.push(h);
    }
    return tf.reshape(tf.stack(out, 1), [b.B * b.L, d]) as tf.Tensor2D;
  }
}

export function layerNorm(x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor, eps = 1e-5): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), g), b) as tf.Tensor2D;
}

export class TransformerTrainer extends NeuralTrainer {
  readonly kind = "session-transformer" as const;

  constructor(inputs: SessionInputs, catalogue: Catalogue, o: NeuralOptions = {}) {
    super(inputs, catalogue, { ...o, learningRate: o.learningRate ?? 0.005 });
    const { dim: d, window, layers, heads } = this.options;
    if (d % heads !== 0) throw new Error(`transformer: dim ${d} is not a multiple of heads ${heads}`);
    this.param("pos_emb", tf.randomUniform([window, d], -0.05, 0.05, "float32", this.nextSeed()));
    for (let l = 0; l < layers; l++) {
      this.param(`l${l}_ln1_gamma`, tf.ones([d]));
      this.param(`l${l}_ln1_beta`, tf.zeros([d]));
      this.dense(`l${l}_qkv`, d, 3 * d);
      this.dense(`l${l}_out`, d, d);
      this.param(`l${l}_ln2_gamma`, tf.ones([d]));
      this.param(`l${l}_ln2_beta`, tf.zeros([d]));
      this.dense(`l${l}_ff1`, d, 2 * d);
      this.dense(`l${l}_ff2`, 2 * d, d);
    }
    this.param("ln_gamma", tf.ones([d]));
    this.param("ln_beta", tf.zeros([d]));
    if (this.options.objective === "mlm")
      this.param("mask_emb", tf.randomUniform([d], -0.05, 0.05, "float32", this.nextSeed()));
  }

  /** mlm: hide each item with probability maskProbability (at least one per session) and predict it. */
  protected override trainingBatch(b: SeqBatch, rand: () => number): SeqBatch {
    if (this.options.objective !== "mlm") return b;
    const masked = new Uint8Array(b.B * b.L);
    const positions: number[] = [];
    const targets: number[] = [];
    for (let r = 0; r < b.B; r++) {
      const n = b.lengths[r];
      let any = false;
      for (let t = 0; t < n; t++)
        if (rand() < this.options.maskProbability) {
          masked[r * b.L + t] = 1;
          any = true;
        }
      if (!any) masked[r * b.L + n - 1] = 1;
      for (let t = 0; t < n; t++)
        if (masked[r * b.L + t]) {
          positions.push(r * b.L + t);
          targets.push(b.items[r * b.L + t]);
        }
    }
    return { ...b, masked, positions: Int32Array.from(positions), targets: Int32Array.from(targets) };
  }

  protected encode(b: SeqBatch): tf.Tensor2D {
    const { dim: d, layers, heads: H } = this.options;
    const { B, L } = b;
    const dh = d / H;
    const posIdx = new Int32Array(B * L);
    for (let i = 0; i < B * L; i++) posIdx[i] = i % L;
    let x = this.embedInputs(b);
    let mask: tf.Tensor;
    if (this.options.objective === "mlm") {
      // masked inputs (side features included) become the mask embedding; attention sees every real item
      if (b.masked) {
        const m = tf.tensor2d(Float32Array.from(b.masked), [B * L, 1]);
        x = tf.add(tf.mul(x, tf.sub(1, m)), tf.mul(m, this.v("mask_emb"))) as tf.Tensor2D;
      }
      const keys = new Float32Array(B * H * L);
      for (let r = 0; r < B; r++)
        for (let h = 0; h < H; h++) for (let j = b.lengths[r]; j < L; j++) keys[(r * H + h) * L + j] = -1e9;
      mask = tf.tensor3d(keys, [B * H, 1, L]);
    } else {
      const causal = new Float32Array(L * L);
      for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) causal[i * L + j] = -1e9;
      mask = tf.tensor2d(causal, [L, L]);
    }
    x = tf.add(x, tf.gather(this.v("pos_emb"), tf.tensor1d(posIdx, "int32"))) as tf.Tensor2D;
    const heads = (t: tf.Tensor) =>
      tf.reshape(tf.transpose(tf.reshape(t, [B, L, H, dh]), [0, 2, 1, 3]), [B * H, L, dh]);
    for (let l = 0; l < layers; l++) {
      const a = layerNorm(x, this.v(`l${l}_ln1_gamma`), this.v(`l${l}_ln1_beta`));
      const [q, k, v] = tf.split(this.applyDense(`l${l}_qkv`, a), 3, 1);
      const scores = tf.add(tf.mul(matMulFast(heads(q), heads(k), false, true), 1 / Math.sqrt(dh)), mask);
      const o = tf.matMul(tf.softmax(scores), heads(v) as tf.Tensor3D);
      const merged = tf.reshape(tf.transpose(tf.reshape(o, [B, H, L, dh]), [0, 2, 1, 3]), [B * L, d]) as tf.Tensor2D;
      x = tf.add(x, this.applyDense(`l${l}_out`, merged)) as tf.Tensor2D;
      const f = layerNorm(x, this.v(`l${l}_ln2_gamma`), this.v(`l${l}_ln2_beta`));
      x = tf.add(x, this.applyDense(`l${l}_ff2`, tf.relu(this.applyDense(`l${l}_ff1`, f)))) as tf.Tensor2D;
    }
    return layerNorm(x, this.v("ln_gamma"), this.v("ln_beta"));
  }
}
