// The GRU and transformer forward pass for one session on typed arrays, for serving (and for the evaluation,
// so both rank with the same arithmetic): the session's last hidden state dotted with the tied item embeddings.
// Only the last position's output is needed, so the transformer's last block runs for that position alone.
import { ValidationError } from "../../../common/errors.js";
import type { SessionInputs } from "./data.js";
import { SessionScorer, type Catalogue, type NormalizedQuery, type SessionModelKind } from "./scorer.js";

export interface NeuralWeights {
  kind: SessionModelKind;
  options: {
    dim: number;
    window: number;
    sideDim: number;
    layers: number;
    heads: number;
    objective?: "causal" | "mlm";
  };
  inputs: SessionInputs;
  tensors: Record<string, { shape: number[]; data: Float32Array }>;
}

/** y = x W + b for one row; W row-major [inDim, outDim]. */
function dense(
  x: Float32Array,
  xOff: number,
  w: Float32Array,
  b: Float32Array,
  inDim: number,
  y: Float32Array,
  yOff: number,
): void {
  const outDim = b.length;
  for (let j = 0; j < outDim; j++) y[yOff + j] = b[j];
  for (let i = 0; i < inDim; i++) {
    const v = x[xOff + i];
    if (v === 0) continue;
    const r = i * outDim;
    for (let j = 0; j < outDim; j++) y[yOff + j] += v * w[r + j];
  }
}

function layerNorm(
  x: Float32Array,
  off: number,
  d: number,
  g: Float32Array,
  b: Float32Array,
  y: Float32Array,
  yOff: number,
): void {
  let mean = 0;
  for (let i = 0; i < d; i++) mean += x[off + i];
  mean /= d;
  let v = 0;
  for (let i = 0; i < d; i++) v += (x[off + i] - mean) ** 2;
  const inv = 1 / Math.sqrt(v / d + 1e-5);
  for (let i = 0; i < d; i++) y[yOff + i] = (x[off + i] - mean) * inv * g[i] + b[i];
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export class NeuralScorer extends SessionScorer {
  readonly kind: SessionModelKind;
  readonly weights: NeuralWeights;
  private readonly d: number;
  /** the items the catalogue knows, the only ones scored */
  private readonly known: Int32Array;

  constructor(w: NeuralWeights, catalogue: Catalogue) {
    super(catalogue, w.options.window, { categorical: w.inputs.categorical, continuous: w.inputs.continuous });
    if (w.kind !== "session-gru" && w.kind !== "session-transformer")
      throw new ValidationError(`session scorer: ${w.kind} is not a neural session model`);
    this.kind = w.kind;
    this.weights = w;
    this.d = w.options.dim;
    const known: number[] = [];
    for (let i = catalogue.firstItemIndex; i < catalogue.itemCardinality; i++)
      if (catalogue.counts[i] > 0) known.push(i);
    this.known = Int32Array.from(known);
    const emb = this.t("item_emb");
    if (emb.length !== w.inputs.itemCardinality * this.d)
      throw new ValidationError(
        `session scorer: item_emb has ${emb.length} values, expected ${w.inputs.itemCardinality} x ${this.d}`,
      );
  }

  private t(name: string): Float32Array {
    const x = this.weights.tensors[name];
    if (!x) throw new ValidationError(`session scorer: the model has no weight "${name}"`);
    return x.data;
  }

  /** Projected inputs of every position, [L, d]. */
  private inputs(q: NormalizedQuery): Float32Array {
    const { d } = this;
    const { sideDim } = this.weights.options;
    const L = q.items.length;
    const nCat = q.categorical.length;
    const inDim = d + nCat * sideDim + q.continuous.length;
    const row = new Float32Array(inDim);
    const out = new Float32Array(L * d);
    const emb = this.t("item_emb");
    const k = this.t("in_kernel");
    const b = this.t("in_bias");
    const sides = q.categorical.map((_, j) => this.t(`side_emb_${j}`));
    for (let t = 0; t < L; t++) {
      row.set(emb.subarray(q.items[t] * d, q.items[t] * d + d), 0);
      for (let j = 0; j < nCat; j++) {
        const c = q.categorical[j][t];
        row.set(sides[j].subarray(c * sideDim, c * sideDim + sideDim), d + j * sideDim);
      }
      for (let j = 0; j < q.continuous.length; j++) row[d + nCat * sideDim + j] = q.continuous[j][t];
      dense(row, 0, k, b, inDim, out, t * d);
    }
    return out;
  }

  private gru(x: Float32Array, L: number): Float32Array {
    const { d } = this;
    const wx = this.t("gru_x_kernel");
    const bx = this.t("gru_x_bias");
    const wh = this.t("gru_h_kernel");
    const bh = this.t("gru_h_bias");
    let h = new Float32Array(d);
    const xp = new Float32Array(3 * d);
    const hp = new Float32Array(3 * d);
    for (let t = 0; t < L; t++) {
      dense(x, t * d, wx, bx, d, xp, 0);
      dense(h, 0, wh, bh, d, hp, 0);
      const next = new Float32Array(d);
      for (let i = 0; i < d; i++) {
        const z = sigmoid(xp[i] + hp[i]);
        const r = sigmoid(xp[d + i] + hp[d + i]);
        const n = Math.tanh(xp[2 * d + i] + r * hp[2 * d + i]);
        next[i] = n + z * (h[i] - n);
      }
      h = next;
    }
    return h;
  }

  /** `causal`: position t attends to 0..t; otherwise (mlm) every position attends to every position. */
  private transformer(x: Float32Array, L: number, causal: boolean): Float32Array {
    const { d } = this;
    const { layers, heads: H } = this.weights.options;
    const dh = d / H;
    const pos = this.t("pos_emb");
    for (let i = 0; i < L * d; i++) x[i] += pos[i];
    const a = new Float32Array(L * d);
    const qkv = new Float32Array(L * 3 * d);
    const att = new Float32Array(d);
    const proj = new Float32Array(d);
    const ff = new Float32Array(2 * d);
    const p = new Float32Array(L);
    for (let l = 0; l < layers; l++) {
      // the last block only needs the last position's output (earlier positions feed its keys and values)
      const from = l === layers - 1 ? L - 1 : 0;
      for (let t = 0; t < L; t++) layerNorm(x, t * d, d, this.t(`l${l}_ln1_gamma`), this.t(`l${l}_ln1_beta`), a, t * d);
      for (let t = 0; t < L; t++)
        dense(a, t * d, this.t(`l${l}_qkv_kernel`), this.t(`l${l}_qkv_bias`), d, qkv, t * 3 * d);
      const next = x.slice();
      for (let t = from; t < L; t++) {
        for (let h = 0; h < H; h++) {
          const qo = t * 3 * d + h * dh;
          let max = -Infinity;
          const last = causal ? t : L - 1;
          for (let s = 0; s <= last; s++) {
            let v = 0;
            const ko = s * 3 * d + d + h * dh;
            for (let i = 0; i < dh; i++) v += qkv[qo + i] * qkv[ko + i];
            p[s] = v / Math.sqrt(dh);
            if (p[s] > max) max = p[s];
          }
          let sum = 0;
          for (let s = 0; s <= last; s++) sum += p[s] = Math.exp(p[s] - max);
          for (let i = 0; i < dh; i++) att[h * dh + i] = 0;
          for (let s = 0; s <= last; s++) {
            const w = p[s] / sum;
            const vo = s * 3 * d + 2 * d + h * dh;
            for (let i = 0; i < dh; i++) att[h * dh + i] += w * qkv[vo + i];
          }
        }
        dense(att, 0, this.t(`l${l}_out_kernel`), this.t(`l${l}_out_bias`), d, proj, 0);
        for (let i = 0; i < d; i++) next[t * d + i] += proj[i];
        layerNorm(next, t * d, d, this.t(`l${l}_ln2_gamma`), this.t(`l${l}_ln2_beta`), a, t * d);
        dense(a, t * d, this.t(`l${l}_ff1_kernel`), this.t(`l${l}_ff1_bias`), d, ff, 0);
        for (let i = 0; i < 2 * d; i++) if (ff[i] < 0) ff[i] = 0;
        dense(ff, 0, this.t(`l${l}_ff2_kernel`), this.t(`l${l}_ff2_bias`), 2 * d, proj, 0);
        for (let i = 0; i < d; i++) next[t * d + i] += proj[i];
      }
      x = next;
    }
    const out = new Float32Array(d);
    layerNorm(x, (L - 1) * d, d, this.t("ln_gamma"), this.t("ln_beta"), out, 0);
    return out;
  }

  /** The session's representation: the last position's hidden state, [d]. */
  encode(q: NormalizedQuery): Float32Array {
    if (this.kind === "session-gru") return this.gru(this.inputs(q), q.items.length);
    if (this.weights.options.objective !== "mlm") return this.transformer(this.inputs(q), q.items.length, true);
    // mlm: the latest window - 1 items, then a masked position whose output predicts the next item
    const keep = Math.min(q.items.length, this.window - 1);
    const from = q.items.length - keep;
    const x = this.inputs({
      items: q.items.subarray(from),
      categorical: q.categorical.map((c) => c.subarray(from)),
      continuous: q.continuous.map((c) => c.subarray(from)),
    });
    const withMask = new Float32Array((keep + 1) * this.d);
    withMask.set(x);
    withMask.set(this.t("mask_emb"), keep * this.d);
    return this.transformer(withMask, keep + 1, false);
  }

  protected scoreInto(q: NormalizedQuery, out: Float32Array): void {
    const u = this.encode(q);
    const { d } = this;
    const emb = this.t("item_emb");
    const bias = this.t("item_bias");
    const known = this.known;
    for (let j = 0; j < known.length; j++) {
      const i = known[j];
      const o = i * d;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let k = 0;
      for (; k + 3 < d; k += 4) {
        s0 += u[k] * emb[o + k];
        s1 += u[k + 1] * emb[o + k + 1];
        s2 += u[k + 2] * emb[o + k + 2];
        s3 += u[k + 3] * emb[o + k + 3];
      }
      for (; k < d; k++) s0 += u[k] * emb[o + k];
      out[i] = s0 + s1 + (s2 + s3) + bias[i];
    }
  }
}
