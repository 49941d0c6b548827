// Model artifacts as DESIGN.md says: a folder with model.json + weights.bin (TensorFlow.js layers format) and
// fstore-model.json (kind, input schema, metrics). Saved through tf.io.withSaveHandler and loaded through a
// custom IOHandler, so neither needs tfjs-node. Item embeddings go to parquet through DuckDB.
import { DuckDBDataChunk, FLOAT, INTEGER, type DuckDBFloatVector, type DuckDBIntegerVector } from "@duckdb/node-api";
import { mkdirSync, readFileSync, writeFileSync, renameSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { ident, openDuckDB, sqlString } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import { tf } from "./backend.js";
import type { DlrmModel } from "./dlrm.js";
import { isList, type Frame } from "./frame.js";
import type { DenseLayer, FeatureEncoder } from "./nn.js";
import { poolingWeights, type ListPooling, type Side } from "./schema.js";
import type { TwoTowerModel } from "./two_tower.js";

export type ModelKind = "query-tower" | "item-tower" | "dlrm";

export interface ModelInputMeta {
  name: string;
  type: "categorical" | "continuous";
  side: Side;
  cardinality?: number;
  dim?: number;
  isList?: boolean;
  /** list inputs: how the rows are weighted in the multi-hot (absent: mean) */
  pooling?: ListPooling;
}

/** The content of fstore-model.json. */
export interface ModelMeta {
  format: "fstore-model";
  version: 1;
  kind: ModelKind;
  createdAt: string;
  /** inputs in the order the layers model takes them */
  inputs: ModelInputMeta[];
  output: { name: string; dim: number; l2Normalize?: boolean };
  userIdColumn?: string;
  itemIdColumn?: string;
  metrics: Record<string, number>;
  training: Record<string, unknown>;
  /** positive training interactions per item, for answering users the store does not know (cold start) */
  popularity?: ItemPopularity;
}

/** Item popularity saved with a model: raw item ids (the values of `idColumn`), most interactions first. */
export interface ItemPopularity {
  /** the column the ids are values of: the item view's join key, or the item id column */
  idColumn: string;
  ids: Array<number | string>;
  /** positive interactions of each id in the training rows, same order as `ids` */
  counts: number[];
}

export interface LoadedModel {
  model: tf.LayersModel;
  meta: ModelMeta;
}

function denseLayer(l: DenseLayer, name: string, kernel?: tf.Tensor): tf.layers.Layer {
  return tf.layers.dense({
    units: l.kernel.shape[1] as number,
    activation: l.activation,
    name,
    weights: [kernel ?? l.kernel, l.bias],
  });
}

/** Layers inputs (and their metadata) for the categorical + continuous columns of an encoder. */
function encoderInputs(
  enc: FeatureEncoder,
  prefix: string,
  fixedDim: number | null,
): {
  inputs: tf.SymbolicTensor[];
  meta: ModelInputMeta[];
  parts: tf.SymbolicTensor[];
  continuous: tf.SymbolicTensor[];
} {
  const inputs: tf.SymbolicTensor[] = [];
  const meta: ModelInputMeta[] = [];
  const parts: tf.SymbolicTensor[] = [];
  enc.categorical.forEach((c, i) => {
    const table = enc.tables[i];
    const w = tf.tensor2d(table.getWeights(), [table.rows, table.dim]);
    initialWeights.push(w);
    if (c.isList) {
      // A pooled list is a weighted multi-hot row (weights summing to 1) times the table: a bias-free dense layer.
      const inp = tf.input({ shape: [c.cardinality], name: c.name });
      let out = tf.layers
        .dense({ units: table.dim, useBias: false, name: `${prefix}emb_${c.name}`, weights: [w] })
        .apply(inp) as tf.SymbolicTensor;
      if (fixedDim) out = tf.layers.reshape({ targetShape: [1, table.dim] }).apply(out) as tf.SymbolicTensor;
      inputs.push(inp);
      parts.push(out);
    } else {
      const inp = tf.input({ shape: [1], dtype: "int32", name: c.name });
      let out = tf.layers
        .embedding({ inputDim: table.rows, outputDim: table.dim, name: `${prefix}emb_${c.name}`, weights: [w] })
        .apply(inp) as tf.SymbolicTensor;
      if (!fixedDim) out = tf.layers.flatten().apply(out) as tf.SymbolicTensor;
      inputs.push(inp);
      parts.push(out);
    }
    meta.push({
      name: c.name,
      type: "categorical",
      side: c.side,
      cardinality: c.cardinality,
      dim: table.dim,
      isList: c.isList,
      ...(c.pooling ? { pooling: c.pooling } : {}),
    });
  });
  const continuous: tf.SymbolicTensor[] = [];
  for (const c of enc.continuous) {
    const inp = tf.input({ shape: [1], name: c.name });
    inputs.push(inp);
    continuous.push(inp);
    meta.push({ name: c.name, type: "continuous", side: c.side });
  }
  return { inputs, meta, parts, continuous };
}

/** Tensors handed to layers as initial weights: copied into the layers' variables when the model is built. */
const initialWeights: tf.Tensor[] = [];

function releaseInitialWeights(): void {
  tf.dispose(initialWeights.splice(0));
}

function concat(xs: tf.SymbolicTensor[], axis = -1): tf.SymbolicTensor {
  return xs.length === 1 ? xs[0] : (tf.layers.concatenate({ axis }).apply(xs) as tf.SymbolicTensor);
}

/** One tower of a two-tower model as a layers model: named inputs -> embeddings -> MLP. */
export function towerToLayers(
  model: TwoTowerModel,
  side: "query" | "candidate",
): { model: tf.LayersModel; inputs: ModelInputMeta[] } {
  const t = side === "query" ? model.query : model.candidate;
  const prefix = side === "query" ? "q_" : "c_";
  const { inputs, meta, parts, continuous } = encoderInputs(t.enc, prefix, null);
  let h = concat([...parts, ...continuous]);
  t.mlp.forEach((l, i) => (h = denseLayer(l, `${prefix}dense_${i}`).apply(h) as tf.SymbolicTensor));
  const layers = tf.model({ inputs, outputs: h, name: `${side}_tower` });
  releaseInitialWeights();
  return { model: layers, inputs: meta };
}

/**
 * DLRM as a layers model. The pairwise interactions become a batch dot of the stacked vectors [B, F, D] with
 * themselves; the first top layer's kernel is expanded from the P = F(F-1)/2 trained pairs to all F*F entries
 * (zeros elsewhere), which computes the same function with standard, serialisable layers only.
 */
export function dlrmToLayers(m: DlrmModel): { model: tf.LayersModel; inputs: ModelInputMeta[] } {
  const D = m.options.embeddingDim;
  const { inputs, meta, parts, continuous } = encoderInputs(m.enc, "", D);
  const vecs = [...parts];
  let bottomOut: tf.SymbolicTensor | null = null;
  if (continuous.length) {
    let h = concat(continuous);
    m.bottom.forEach((l, i) => (h = denseLayer(l, `bottom_${i}`).apply(h) as tf.SymbolicTensor));
    bottomOut = h;
    vecs.push(tf.layers.reshape({ targetShape: [1, D] }).apply(h) as tf.SymbolicTensor);
  }
  const F = m.nVectors;
  const X = concat(vecs, 1);
  const Z = tf.layers
    .flatten()
    .apply(tf.layers.dot({ axes: [2, 2], name: "interactions" }).apply([X, X])) as tf.SymbolicTensor;
  let h = bottomOut ? concat([bottomOut, Z]) : Z;
  const first = m.top[0];
  const offset = bottomOut ? D : 0;
  const trained = first.kernel.arraySync() as number[][];
  const units = first.kernel.shape[1] as number;
  const expanded = new Float32Array((offset + F * F) * units);
  for (let r = 0; r < offset; r++) expanded.set(trained[r], r * units);
  m.pairs.forEach(([i, j], k) => expanded.set(trained[offset + k], (offset + i * F + j) * units));
  const k0 = tf.tensor2d(expanded, [offset + F * F, units]);
  initialWeights.push(k0);
  h = denseLayer(first, "top_0", k0).apply(h) as tf.SymbolicTensor;
  m.top.slice(1).forEach((l, i) => (h = denseLayer(l, `top_${i + 1}`).apply(h) as tf.SymbolicTensor));
  h = tf.layers
    .dense({ units: 1, activation: "sigmoid", name: "prediction", weights: [m.out.kernel, m.out.bias] })
    .apply(h) as tf.SymbolicTensor;
  const layers = tf.model({ inputs, outputs: h, name: "dlrm" });
  releaseInitialWeights();
  return { model: layers, inputs: meta };
}

/** Write a layers model + fstore-model.json into `dir` (created; files replaced atomically). */
export async function saveModel(
  model: tf.LayersModel,
  dir: string,
  meta: Omit<ModelMeta, "format" | "version" | "createdAt">,
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const weightData = a.weightData ? tf.io.CompositeArrayBuffer.join(a.weightData) : new ArrayBuffer(0);
      writeAtomic(join(dir, "weights.bin"), Buffer.from(weightData));
      const json = {
        format: "layers-model",
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: null,
        modelTopology: a.modelTopology,
        weightsManifest: [{ paths: ["weights.bin"], weights: a.weightSpecs ?? [] }],
      };
      writeAtomic(join(dir, "model.json"), JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }),
  );
  const full: ModelMeta = { format: "fstore-model", version: 1, createdAt: new Date().toISOString(), ...meta };
  writeAtomic(join(dir, "fstore-model.json"), JSON.stringify(full, null, 2));
}

/** What a saved model's fstore-model.json holds beyond what the model itself says (metrics, training default {}). */
export type SavedModelExtras = Partial<
  Omit<ModelMeta, "format" | "version" | "createdAt" | "kind" | "inputs" | "output">
>;

/** One tower of a two-tower model as a layers model folder (`query-tower` or `item-tower`). */
export async function saveTower(
  model: TwoTowerModel,
  side: "query" | "candidate",
  dir: string,
  extras: SavedModelExtras = {},
): Promise<void> {
  const t = towerToLayers(model, side);
  try {
    await saveModel(t.model, dir, {
      kind: side === "query" ? "query-tower" : "item-tower",
      inputs: t.inputs,
      output: { name: "embedding", dim: model.dim, l2Normalize: model.options.l2Normalize },
      metrics: {},
      training: {},
      ...extras,
    });
  } finally {
    t.model.dispose();
  }
}

/** A DLRM model as a layers model folder answering click probabilities. */
export async function saveDlrm(model: DlrmModel, dir: string, extras: SavedModelExtras = {}): Promise<void> {
  const d = dlrmToLayers(model);
  try {
    await saveModel(d.model, dir, {
      kind: "dlrm",
      inputs: d.inputs,
      output: { name: "click_probability", dim: 1 },
      metrics: {},
      training: {},
      ...extras,
    });
  } finally {
    d.model.dispose();
  }
}

function writeAtomic(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Load a model folder written by saveModel (or any tfjs layers-model folder with fstore-model.json). */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const modelPath = join(dir, "model.json");
  const metaPath = join(dir, "fstore-model.json");
  for (const p of [modelPath, metaPath])
    if (!existsSync(p)) throw new ValidationError(`model folder ${dir}: missing ${p}`);
  const json = JSON.parse(readFileSync(modelPath, "utf8")) as {
    modelTopology: object;
    weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  };
  const meta = JSON.parse(readFileSync(metaPath, "utf8")) as ModelMeta;
  if (meta.format !== "fstore-model")
    throw new ValidationError(`${metaPath}: not an fstore-model file (format ${String(meta.format)})`);
  const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
  const buffers = json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dir, p))));
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tf.loadLayersModel({
    load: async () => ({ modelTopology: json.modelTopology, weightSpecs, weightData, format: "layers-model" }),
  });
  return { model, meta };
}

/** Tensors for the model's inputs, in order, from a frame (unknown categories map to index 0). */
export function inputTensors(meta: ModelMeta, frame: Frame): tf.Tensor[] {
  return meta.inputs.map((inp) => {
    const col = frame.columns[inp.name];
    if (!col)
      throw new ValidationError(
        `model input "${inp.name}" is missing from the rows (have ${Object.keys(frame.columns).join(", ")})`,
      );
    const n = frame.length;
    if (inp.type === "continuous") {
      if (isList(col)) throw new ValidationError(`model input "${inp.name}" must be a number, got a list`);
      return tf.tensor2d(Float32Array.from(col), [n, 1]);
    }
    const card = inp.cardinality as number;
    if (inp.isList) {
      if (!isList(col)) throw new ValidationError(`model input "${inp.name}" must be a list`);
      const buf = new Float32Array(n * card);
      const w = new Float32Array(col.values.length);
      for (let r = 0; r < n; r++) {
        const s = col.offsets[r];
        const len = col.offsets[r + 1] - s;
        poolingWeights(inp.pooling ?? "mean", len, w, s);
        for (let k = 0; k < len; k++) {
          const v = col.values[s + k];
          buf[r * card + (v >= 0 && v < card ? v : 0)] += w[s + k];
        }
      }
      return tf.tensor2d(buf, [n, card]);
    }
    if (isList(col)) throw new ValidationError(`model input "${inp.name}" must be a scalar, got a list`);
    const ids = new Int32Array(n);
    for (let r = 0; r < n; r++) ids[r] = col[r] >= 0 && col[r] < card ? col[r] : 0;
    return tf.tensor2d(ids, [n, 1], "int32");
  });
}

/** Run a loaded model on a frame: embeddings [n, dim] (L2-normalised when the meta says so) or scores [n]. */
export function predict(loaded: LoadedModel, frame: Frame): Float32Array {
  const xs = inputTensors(loaded.meta, frame);
  const y = tf.tidy(() => {
    // execute() runs the whole frame at once; predict() would split it into batches of 32.
    let out = loaded.model.execute(xs, loaded.model.outputs[0].name) as tf.Tensor;
    if (loaded.meta.output.l2Normalize) out = tf.div(out, tf.sqrt(tf.maximum(tf.sum(tf.square(out), 1, true), 1e-12)));
    return out;
  });
  const data = y.dataSync() as Float32Array;
  y.dispose();
  tf.dispose(xs);
  return data;
}

/**
 * Write item embeddings to parquet: the item id column, the store's item key when given (e.g. the raw id the
 * item views are keyed by, row for row with `ids`), and one FLOAT[] column `embedding`. Values go to DuckDB
 * through typed data chunks (one FLOAT column per dimension), then one COPY builds the list column.
 */
export async function writeItemEmbeddings(
  path: string,
  idColumn: string,
  ids: ArrayLike<number>,
  embeddings: Float32Array,
  dim: number,
  key?: { name: string; values: readonly unknown[] },
): Promise<void> {
  const n = ids.length;
  if (embeddings.length !== n * dim)
    throw new Error(`item embeddings: ${embeddings.length} values for ${n} items x ${dim} dims`);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(idColumn))
    throw new ValidationError(`item id column name "${idColumn}" must be a plain identifier`);
  mkdirSync(dirname(path), { recursive: true });
  const db = await openDuckDB();
  const con = db.connection;
  const id = ident(idColumn);
  try {
    const cols = Array.from({ length: dim }, (_, j) => `e${j}`);
    await con.run(`CREATE TEMP TABLE wide (${id} INTEGER, ${cols.map((c) => `${c} FLOAT`).join(", ")})`);
    const app = await con.createAppender("wide");
    const types = [INTEGER, ...cols.map(() => FLOAT)];
    const CH = 2048;
    for (let s = 0; s < n; s += CH) {
      const m = Math.min(CH, n - s);
      const chunk = DuckDBDataChunk.create(types, m);
      const idv = chunk.getColumnVector(0) as DuckDBIntegerVector;
      for (let k = 0; k < m; k++) idv.setItem(k, ids[s + k]);
      idv.flush();
      for (let j = 0; j < dim; j++) {
        const v = chunk.getColumnVector(j + 1) as DuckDBFloatVector;
        for (let k = 0; k < m; k++) v.setItem(k, embeddings[(s + k) * dim + j]);
        v.flush();
      }
      app.appendDataChunk(chunk);
    }
    app.closeSync();
    let keyColumn = "";
    if (key && key.name !== idColumn) {
      if (key.values.length !== n) throw new Error(`item embeddings: ${key.values.length} keys for ${n} items`);
      const integral = key.values.every((v) => typeof v === "bigint" || Number.isSafeInteger(v));
      await con.run(`CREATE TEMP TABLE item_keys (id INTEGER PRIMARY KEY, k ${integral ? "BIGINT" : "VARCHAR"})`);
      const keys = await con.createAppender("item_keys");
      key.values.forEach((v, i) => {
        keys.appendInteger(ids[i]);
        if (integral) keys.appendBigInt(BigInt(v as number | bigint));
        else keys.appendVarchar(String(v));
        keys.endRow();
      });
      keys.closeSync();
      keyColumn = `(SELECT k FROM item_keys WHERE item_keys.id = w.${id}) AS ${ident(key.name)}, `;
    }
    const tmp = `${path}.tmp-${process.pid}.parquet`;
    await con.run(
      `COPY (SELECT ${id}, ${keyColumn}[${cols.join(", ")}]::FLOAT[] AS embedding FROM wide w ORDER BY ${id}) TO ${sqlString(tmp)} (FORMAT parquet)`,
    );
    renameSync(tmp, path);
  } finally {
    db.close();
  }
}

/** Read item embeddings written by writeItemEmbeddings: ids and a row-major [n, dim] matrix. */
export async function readItemEmbeddings(
  path: string,
  idColumn: string,
): Promise<{ ids: Int32Array; embeddings: Float32Array; dim: number }> {
  const db = await openDuckDB();
  const id = ident(idColumn);
  try {
    const r = await db.connection.runAndReadAll(
      `SELECT ${id}, embedding FROM read_parquet(${sqlString(path)}) ORDER BY ${id}`,
    );
    const rows = r.getRowsJS() as Array<[number, number[]]>;
    const dim = rows.length ? rows[0][1].length : 0;
    const ids = new Int32Array(rows.length);
    const embeddings = new Float32Array(rows.length * dim);
    rows.forEach(([id, e], i) => {
      ids[i] = Number(id);
      embeddings.set(e, i * dim);
    });
    return { ids, embeddings, dim };
  } finally {
    db.close();
  }
}
