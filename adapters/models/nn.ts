// The building blocks shared by the models: dense layers and MLPs, the feature encoder (embeddings of
// categorical columns, pooled for lists, plus continuous columns), and the optimiser step that applies
// Adam to dense weights and lazy Adam to the embedding rows a batch touched.
import { tf } from "./backend.js";
import {
  DEFAULT_ADAM,
  EmbeddingTable,
  disposeLookup,
  type AdamConfig,
  type EmbeddingUpdate,
  type PreparedLookup,
} from "./embedding.js";
import { isList, type Frame } from "./frame.js";
import { poolingWeights, type CategoricalInput, type ContinuousInput } from "./schema.js";
import { ValidationError } from "../../common/errors.js";

let varCounter = 0;

export interface DenseLayer {
  kernel: tf.Variable;
  bias: tf.Variable;
  activation: "relu" | "linear" | "sigmoid";
}

export function dense(
  inDim: number,
  units: number,
  activation: DenseLayer["activation"],
  seed: number,
  prefix: string,
): DenseLayer {
  // A variable keeps its own reference to the data: release the initial tensors.
  const k0 = tf.initializers.glorotUniform({ seed }).apply([inDim, units]) as tf.Tensor2D;
  const b0 = tf.zeros([units]);
  const kernel = tf.variable(k0, true, `${prefix}_k${varCounter++}`);
  const bias = tf.variable(b0, true, `${prefix}_b${varCounter++}`);
  k0.dispose();
  b0.dispose();
  return { kernel, bias, activation };
}

export function applyDense(l: DenseLayer, x: tf.Tensor2D): tf.Tensor2D {
  const y = tf.add(tf.matMul(x, l.kernel as unknown as tf.Tensor2D), l.bias) as tf.Tensor2D;
  if (l.activation === "relu") return tf.relu(y);
  if (l.activation === "sigmoid") return tf.sigmoid(y);
  return y;
}

/** An MLP; the last layer is linear when `noActivationLast` (Merlin's no_activation_last_layer). */
export function mlp(
  inDim: number,
  units: number[],
  seed: number,
  prefix: string,
  noActivationLast: boolean,
): DenseLayer[] {
  const layers: DenseLayer[] = [];
  let d = inDim;
  units.forEach((u, i) => {
    layers.push(dense(d, u, noActivationLast && i === units.length - 1 ? "linear" : "relu", seed + i * 7919, prefix));
    d = u;
  });
  return layers;
}

export function applyMlp(layers: DenseLayer[], x: tf.Tensor2D): tf.Tensor2D {
  return layers.reduce((h, l) => applyDense(l, h), x);
}

export function mlpVariables(layers: DenseLayer[]): tf.Variable[] {
  return layers.flatMap((l) => [l.kernel, l.bias]);
}

/** One batch's inputs on the device, ready to be used inside a gradient tape. */
export interface PreparedFeatures {
  lookups: PreparedLookup[];
  /** per categorical input: [B] index (or [B*L] for lists) and, for lists, the pooling weights [B, L, 1] */
  pooling: Array<{ L: number; weights: tf.Tensor3D } | null>;
  continuous: tf.Tensor2D | null;
  length: number;
}

/** Tables shared by name between encoders, with the column that made each (for errors). */
export type SharedTables = Map<string, { table: EmbeddingTable; owner: string }>;

/** Embeds the categorical columns of a side and carries its continuous columns. */
export class FeatureEncoder {
  readonly categorical: CategoricalInput[];
  readonly continuous: ContinuousInput[];
  readonly tables: EmbeddingTable[];

  /**
   * `shared` holds the tables by name (`CategoricalInput.table`, else the column's name), so that encoders given
   * the same map (a two-tower's query and candidate towers) train one table for, say, a history list and the item
   * id.
   */
  constructor(
    categorical: CategoricalInput[],
    continuous: ContinuousInput[],
    mode: EmbeddingUpdate,
    seed: number,
    dimOverride?: number,
    shared: SharedTables = new Map(),
  ) {
    this.categorical = categorical;
    this.continuous = continuous;
    this.tables = categorical.map((c, i) => {
      // As in Merlin, a table is named by the column's domain name, else by the column.
      const name = c.table ?? c.name;
      const dim = dimOverride ?? c.dim;
      const got = shared.get(name);
      if (!got) {
        const table = new EmbeddingTable(name, c.cardinality, dim, mode, seed + 104729 * (i + 1));
        shared.set(name, { table, owner: c.name });
        return table;
      }
      if (got.table.rows !== c.cardinality || got.table.dim !== dim)
        throw new ValidationError(
          `embedding table "${name}": column "${c.name}" needs ${c.cardinality} x ${dim}, ` +
            `but "${got.owner}" made it ${got.table.rows} x ${got.table.dim} (shared tables need one cardinality and dim)`,
        );
      return got.table;
    });
  }

  /** Each table once (inputs may share one). */
  get distinctTables(): EmbeddingTable[] {
    return [...new Set(this.tables)];
  }

  /** Sum of embedding dims plus the number of continuous columns. */
  get outputDim(): number {
    return this.tables.reduce((a, t) => a + t.dim, 0) + this.continuous.length;
  }

  prepare(frame: Frame, training: boolean): PreparedFeatures {
    const lookups: PreparedLookup[] = [];
    const pooling: PreparedFeatures["pooling"] = [];
    this.categorical.forEach((c, i) => {
      const col = frame.columns[c.name];
      if (!col) throw new Error(`batch has no column "${c.name}"`);
      if (isList(col)) {
        // Pad every row to the longest list; padded slots point at the row's first id (or 0) with weight 0.
        let L = 1;
        for (let r = 0; r < frame.length; r++) L = Math.max(L, col.offsets[r + 1] - col.offsets[r]);
        const ids = new Int32Array(frame.length * L);
        const w = new Float32Array(frame.length * L);
        for (let r = 0; r < frame.length; r++) {
          const s = col.offsets[r];
          const n = col.offsets[r + 1] - s;
          for (let k = 0; k < n; k++) ids[r * L + k] = col.values[s + k];
          poolingWeights(c.pooling ?? "mean", n, w, r * L);
          for (let k = n; k < L; k++) ids[r * L + k] = n > 0 ? col.values[s] : 0;
        }
        lookups.push(this.tables[i].prepare(ids, training));
        pooling.push({ L, weights: tf.tensor3d(w, [frame.length, L, 1]) });
      } else {
        lookups.push(this.tables[i].prepare(col as Int32Array, training));
        pooling.push(null);
      }
    });
    let continuous: tf.Tensor2D | null = null;
    if (this.continuous.length) {
      const n = this.continuous.length;
      const buf = new Float32Array(frame.length * n);
      this.continuous.forEach((c, j) => {
        const col = frame.columns[c.name];
        if (!col || isList(col)) throw new Error(`batch has no scalar column "${c.name}"`);
        for (let r = 0; r < frame.length; r++) buf[r * n + j] = col[r];
      });
      continuous = tf.tensor2d(buf, [frame.length, n]);
    }
    return { lookups, pooling, continuous, length: frame.length };
  }

  /** The embeddings of each categorical input, [B, dim] each (call inside the tape). */
  embed(p: PreparedFeatures): tf.Tensor2D[] {
    return p.lookups.map((l, i) => {
      const g = tf.gather(l.source, l.index) as tf.Tensor2D;
      const pool = p.pooling[i];
      if (!pool) return g;
      return tf.sum(tf.mul(tf.reshape(g, [p.length, pool.L, l.table.dim]), pool.weights), 1) as tf.Tensor2D;
    });
  }

  /** Embeddings and continuous values concatenated, [B, outputDim]. */
  concat(p: PreparedFeatures): tf.Tensor2D {
    const parts = this.embed(p);
    if (p.continuous) parts.push(p.continuous);
    return parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor2D);
  }
}

export function leavesOf(p: PreparedFeatures): tf.Variable[] {
  return p.lookups.flatMap((l) => (l.leaf ? [l.leaf] : []));
}

export function disposePrepared(p: PreparedFeatures): void {
  p.lookups.forEach(disposeLookup);
  p.pooling.forEach((x) => x?.weights.dispose());
  p.continuous?.dispose();
}

/** Adam whose rate the training loop can change between steps (the moments are kept). */
export class ScheduledAdam extends tf.AdamOptimizer {
  setLearningRate(lr: number): void {
    this.learningRate = lr;
  }
}

/** Adam for the dense weights (and dense-mode tables) plus lazy Adam for the touched rows of host tables. */
export class Optimizer {
  private config: AdamConfig;
  private readonly adam: ScheduledAdam;
  private step = 0;

  constructor(cfg: Partial<AdamConfig> = {}) {
    this.config = { ...DEFAULT_ADAM, ...cfg };
    this.adam = new ScheduledAdam(this.config.learningRate, this.config.beta1, this.config.beta2, this.config.epsilon);
  }

  get cfg(): Readonly<AdamConfig> {
    return this.config;
  }

  /** The rate of the next steps, dense and lazy alike (a schedule's). */
  setLearningRate(lr: number): void {
    this.config = { ...this.config, learningRate: lr };
    this.adam.setLearningRate(lr);
  }

  /**
   * One step: gradients of `loss` with respect to `dense` (variables) and the lookups' leaves; returns the loss.
   */
  minimize(loss: () => tf.Scalar, denseVars: tf.Variable[], prepared: PreparedFeatures[]): number {
    const lookups = prepared.flatMap((p) => p.lookups).filter((l) => l.leaf);
    const varList = [...denseVars, ...lookups.map((l) => l.leaf as tf.Variable)];
    const { value, grads } = tf.variableGrads(loss, varList);
    this.step++;
    const denseGrads: Array<{ name: string; tensor: tf.Tensor }> = [];
    for (const v of denseVars) if (grads[v.name]) denseGrads.push({ name: v.name, tensor: grads[v.name] });
    this.adam.applyGradients(denseGrads);
    // A shared table looked up by several inputs takes one step with the sum of their gradients.
    const byTable = new Map<EmbeddingTable, Array<{ unique: Int32Array; grad: Float32Array }>>();
    for (const l of lookups) {
      const g = grads[(l.leaf as tf.Variable).name];
      if (!g) continue;
      const parts = byTable.get(l.table) ?? [];
      parts.push({ unique: l.unique as Int32Array, grad: g.dataSync() as Float32Array });
      byTable.set(l.table, parts);
    }
    for (const [table, parts] of byTable) {
      const { unique, grad } = parts.length === 1 ? parts[0] : sumRowGradients(parts, table.dim);
      table.applySparseAdam(unique, grad, this.cfg, this.step);
    }
    const out = value.dataSync()[0];
    value.dispose();
    for (const k of Object.keys(grads)) grads[k].dispose();
    return out;
  }

  dispose(): void {
    this.adam.dispose();
  }
}

/** Row gradients of several lookups of one table, summed per row. */
function sumRowGradients(
  parts: Array<{ unique: Int32Array; grad: Float32Array }>,
  dim: number,
): { unique: Int32Array; grad: Float32Array } {
  const slotOf = new Map<number, number>();
  for (const p of parts) for (const id of p.unique) if (!slotOf.has(id)) slotOf.set(id, slotOf.size);
  const grad = new Float32Array(slotOf.size * dim);
  for (const p of parts)
    p.unique.forEach((id, k) => {
      const o = (slotOf.get(id) as number) * dim;
      for (let d = 0; d < dim; d++) grad[o + d] += p.grad[k * dim + d];
    });
  return { unique: Int32Array.from(slotOf.keys()), grad };
}

/** Dense-mode tables are variables the dense optimiser must update (each once, however many encoders share it). */
export function tableVariables(...encoders: FeatureEncoder[]): tf.Variable[] {
  const tables = new Set(encoders.flatMap((e) => e.tables));
  return [...tables].flatMap((t) => (t.variable ? [t.variable] : []));
}
