// The query tower of a saved two-tower model on plain typed arrays, for serving: the user's features in, the query
// embedding out (as DlrmScorer does for ranking). Weights are copied out of the loaded layers model once; a
// request is then an embedding lookup per feature and one small MLP in JavaScript, with no tensors.
import { ValidationError } from "../../common/errors.js";
import { loadModel, type LoadedModel, type ModelInputMeta } from "./artifacts.js";
import { isList, type Column, type Frame } from "./frame.js";
import { poolingWeights, type ListPooling } from "./schema.js";
import { clampId, denseOf, denseRow, layerActivation, layerWeights, type Dense } from "./typed_layers.js";

interface Table {
  name: string;
  isList: boolean;
  pooling: ListPooling;
  rows: number;
  dim: number;
  /** row-major [rows, dim]; a list input is the pooled rows (the layers model's weighted multi-hot) */
  table: Float32Array;
}

const WHO = "query tower scorer";

export class QueryTowerScorer {
  /** the input columns, in the model's order */
  readonly inputs: ModelInputMeta[];
  /** the embedding's length */
  readonly dim: number;
  readonly l2Normalize: boolean;
  private readonly tables: Table[];
  private readonly continuous: string[];
  private readonly layers: Dense[];
  private readonly width: number;
  private readonly a: Float32Array;
  private readonly b: Float32Array;

  private constructor(loaded: LoadedModel) {
    const { model, meta } = loaded;
    if (meta.kind !== "query-tower")
      throw new ValidationError(`${WHO}: the model is a ${meta.kind}, not a query-tower`);
    this.inputs = meta.inputs;
    this.dim = meta.output.dim;
    this.l2Normalize = meta.output.l2Normalize ?? false;
    this.tables = meta.inputs
      .filter((i) => i.type === "categorical")
      .map((c) => {
        const [table] = layerWeights(model, `q_emb_${c.name}`, WHO);
        const rows = c.cardinality as number;
        const dim = table.length / rows;
        if (!Number.isInteger(dim) || dim !== c.dim)
          throw new ValidationError(`${WHO}: embedding ${c.name} has ${table.length} values for ${rows} x ${c.dim}`);
        return { name: c.name, isList: c.isList ?? false, pooling: c.pooling ?? "mean", rows, dim, table };
      });
    this.continuous = meta.inputs.filter((i) => i.type === "continuous").map((c) => c.name);
    this.layers = [];
    for (let i = 0; model.layers.some((l) => l.name === `q_dense_${i}`); i++) {
      const [k, b] = layerWeights(model, `q_dense_${i}`, WHO);
      this.layers.push(denseOf(k, b, k.length / b.length, b.length, layerActivation(model, `q_dense_${i}`, WHO)));
    }
    const concatWidth = this.tables.reduce((a, t) => a + t.dim, 0) + this.continuous.length;
    if (this.layers.length === 0) throw new ValidationError(`${WHO}: the model has no layer "q_dense_0"`);
    if (this.layers[0].inDim !== concatWidth)
      throw new ValidationError(
        `${WHO}: q_dense_0 takes ${this.layers[0].inDim} inputs, the features give ${concatWidth}`,
      );
    const last = this.layers[this.layers.length - 1].outDim;
    if (last !== this.dim)
      throw new ValidationError(`${WHO}: the tower outputs ${last} values, the metadata says ${this.dim}`);
    this.width = Math.max(concatWidth, ...this.layers.map((l) => l.outDim));
    this.a = new Float32Array(this.width);
    this.b = new Float32Array(this.width);
  }

  private pool = new Float32Array(64);

  /** Pooling weights of a list of `len` (a scratch array, valid until the next call). */
  private poolWeights(pooling: ListPooling, len: number): Float32Array {
    if (this.pool.length < len) this.pool = new Float32Array(len);
    poolingWeights(pooling, len, this.pool);
    return this.pool;
  }

  /** From a loaded query-tower folder (loadModel); the layers model is not used afterwards. */
  static fromLayers(loaded: LoadedModel): QueryTowerScorer {
    return new QueryTowerScorer(loaded);
  }

  /** Load a saved query-tower folder and copy its weights out; the TensorFlow.js model is released. */
  static async load(dir: string): Promise<QueryTowerScorer> {
    const loaded = await loadModel(dir);
    try {
      return new QueryTowerScorer(loaded);
    } finally {
      loaded.model.dispose();
    }
  }

  /**
   * Query embeddings of the rows of `frame`, row-major [n, dim]: categorical inputs as category indices (unknown
   * ones map to 0, as in training), list inputs as offsets + values, continuous inputs as numbers.
   */
  embed(frame: Frame): Float32Array {
    const n = frame.length;
    const out = new Float32Array(n * this.dim);
    const cols = this.tables.map((t) => column(frame, t.name));
    const cont = this.continuous.map((name) => {
      const c = column(frame, name);
      if (isList(c)) throw new ValidationError(`${WHO}: input "${name}" must be a number, got a list`);
      return c;
    });
    for (let r = 0; r < n; r++) {
      let x = this.a;
      let y = this.b;
      let o = 0;
      this.tables.forEach((t, f) => {
        const col = cols[f];
        if (t.isList) {
          if (!isList(col)) throw new ValidationError(`${WHO}: input "${t.name}" must be a list`);
          x.fill(0, o, o + t.dim);
          const s = col.offsets[r];
          const len = col.offsets[r + 1] - s;
          const w = this.poolWeights(t.pooling, len);
          for (let k = 0; k < len; k++) {
            const base = clampId(col.values[s + k], t.rows) * t.dim;
            for (let d = 0; d < t.dim; d++) x[o + d] += t.table[base + d] * w[k];
          }
        } else {
          if (isList(col)) throw new ValidationError(`${WHO}: input "${t.name}" must be a scalar, got a list`);
          const base = clampId(col[r], t.rows) * t.dim;
          for (let d = 0; d < t.dim; d++) x[o + d] = t.table[base + d];
        }
        o += t.dim;
      });
      for (const c of cont) x[o++] = c[r];
      for (const l of this.layers) {
        denseRow(l, x, 0, y, 0);
        [x, y] = [y, x];
      }
      let scale = 1;
      if (this.l2Normalize) {
        let ss = 0;
        for (let d = 0; d < this.dim; d++) ss += x[d] * x[d];
        scale = 1 / Math.sqrt(Math.max(ss, 1e-12));
      }
      for (let d = 0; d < this.dim; d++) out[r * this.dim + d] = x[d] * scale;
    }
    return out;
  }
}

function column(frame: Frame, name: string): Column {
  const col = frame.columns[name];
  if (!col)
    throw new ValidationError(
      `${WHO}: input "${name}" is missing from the rows (have ${Object.keys(frame.columns).join(", ")})`,
    );
  return col;
}
