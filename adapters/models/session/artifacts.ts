// Session model folders (DESIGN.md "Model and pipeline artifacts"): model.json (the topology and a TensorFlow.js
// weights manifest), weights.bin (the named typed arrays it lists) and fstore-model.json (kind, input schema,
// metrics, popularity counts for cold start). The layers format does not fit these models (causal
// self-attention, an output layer tied to the item embeddings, kNN indexes), so model.json names its own
// topology; loading builds the typed-array scorer and needs no TensorFlow.js.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ValidationError, errorMessage } from "../../../common/errors.js";
import { KnnScorer, RulesScorer, type SessionArtifact } from "./baselines.js";
import type { SessionInputs } from "./data.js";
import { NeuralScorer, type NeuralWeights } from "./neural_scorer.js";
import { PopularityScorer, topKItems, type Catalogue, type SessionModelKind, type SessionScorer } from "./scorer.js";

export const SESSION_MODEL_FORMAT = "fstore-session-model";
const KINDS: SessionModelKind[] = [
  "session-gru",
  "session-transformer",
  "session-knn",
  "session-rules",
  "session-popularity",
];

/** fstore-model.json of a session model. */
export interface SessionModelMeta {
  format: "fstore-model";
  version: 1;
  kind: SessionModelKind;
  createdAt: string;
  /** the inputs in the order the scorer takes them: the item list, then side features */
  inputs: Array<{ name: string; type: "categorical" | "continuous"; isList: true; cardinality?: number }>;
  session: SessionInputs;
  output: { name: "next_item_scores"; dim: number };
  itemIdColumn: string;
  /** mean metrics over the evaluation days */
  metrics: Record<string, number>;
  training: Record<string, unknown>;
  /** the most popular items of the training sessions (cold start: a session with no items) */
  popularity: { items: number[]; counts: number[] };
}

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: "float32" | "int32";
}

function writeAtomic(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Writes a session model folder; `training` and `metrics` go to fstore-model.json as they are. */
export function saveSessionModel(
  dir: string,
  artifact: SessionArtifact,
  catalogue: Catalogue,
  inputs: SessionInputs,
  info: { metrics: Record<string, number>; training: Record<string, unknown> },
): void {
  mkdirSync(dir, { recursive: true });
  const tensors = [
    ...artifact.tensors,
    { name: "item_counts", shape: [catalogue.counts.length], data: catalogue.counts },
  ];
  const specs: WeightSpec[] = tensors.map((t) => ({
    name: t.name,
    shape: t.shape,
    dtype: t.data instanceof Int32Array ? "int32" : "float32",
  }));
  const buf = Buffer.concat(tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
  writeAtomic(join(dir, "weights.bin"), buf);
  writeAtomic(
    join(dir, "model.json"),
    JSON.stringify({
      format: SESSION_MODEL_FORMAT,
      generatedBy: "fstore",
      modelTopology: {
        kind: artifact.kind,
        config: artifact.config,
        catalogue: { firstItemIndex: catalogue.firstItemIndex, oovIndex: catalogue.oovIndex },
      },
      weightsManifest: [{ paths: ["weights.bin"], weights: specs }],
    }),
  );
  const pop = topKItems(catalogue.counts, catalogue, 100);
  const meta: SessionModelMeta = {
    format: "fstore-model",
    version: 1,
    kind: artifact.kind,
    createdAt: new Date().toISOString(),
    inputs: [
      { name: inputs.itemColumn, type: "categorical", isList: true, cardinality: inputs.itemCardinality },
      ...inputs.categorical.map((c) => ({
        name: c.name,
        type: "categorical" as const,
        isList: true as const,
        cardinality: c.cardinality,
      })),
      ...inputs.continuous.map((name) => ({ name, type: "continuous" as const, isList: true as const })),
    ],
    session: inputs,
    output: { name: "next_item_scores", dim: inputs.itemCardinality },
    itemIdColumn: inputs.itemColumn,
    metrics: info.metrics,
    training: info.training,
    popularity: { items: Array.from(pop.items), counts: Array.from(pop.scores) },
  };
  writeAtomic(join(dir, "fstore-model.json"), JSON.stringify(meta, null, 2));
}

export interface LoadedSessionModel {
  meta: SessionModelMeta;
  scorer: SessionScorer;
}

function readJson(path: string): unknown {
  if (!existsSync(path)) throw new ValidationError(`session model: missing ${path}`);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ValidationError(`session model: ${path} is not valid JSON: ${errorMessage(e)}`);
  }
}

/** Loads a folder written by saveSessionModel into its typed-array scorer. */
export function loadSessionModel(dir: string): LoadedSessionModel {
  const meta = readJson(join(dir, "fstore-model.json")) as SessionModelMeta;
  if (meta.format !== "fstore-model" || !KINDS.includes(meta.kind))
    throw new ValidationError(
      `session model ${dir}: fstore-model.json is not a session model (kind ${JSON.stringify(meta.kind)})`,
    );
  const model = readJson(join(dir, "model.json")) as {
    format: string;
    modelTopology: {
      kind: SessionModelKind;
      config: Record<string, number> & { objective?: "causal" | "mlm" };
      catalogue: { firstItemIndex: number; oovIndex: number };
    };
    weightsManifest: Array<{ paths: string[]; weights: WeightSpec[] }>;
  };
  if (model.format !== SESSION_MODEL_FORMAT)
    throw new ValidationError(`session model ${dir}: model.json has format ${JSON.stringify(model.format)}`);
  const tensors = new Map<string, Float32Array | Int32Array>();
  for (const group of model.weightsManifest) {
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(join(dir, p))));
    let off = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      if (off + n * 4 > bytes.length)
        throw new ValidationError(`session model ${dir}: weights file too short for ${w.name}`);
      const copy = new Uint8Array(bytes.subarray(off, off + n * 4)).buffer;
      tensors.set(w.name, w.dtype === "int32" ? new Int32Array(copy) : new Float32Array(copy));
      off += n * 4;
    }
  }
  const get = <T extends Float32Array | Int32Array>(name: string): T => {
    const t = tensors.get(name);
    if (!t) throw new ValidationError(`session model ${dir}: weights have no "${name}"`);
    return t as T;
  };
  const { config, kind } = model.modelTopology;
  const catalogue: Catalogue = {
    itemCardinality: meta.session.itemCardinality,
    firstItemIndex: model.modelTopology.catalogue.firstItemIndex,
    oovIndex: model.modelTopology.catalogue.oovIndex,
    counts: get<Float32Array>("item_counts"),
  };
  let scorer: SessionScorer;
  if (kind === "session-popularity") scorer = new PopularityScorer(catalogue, config.window);
  else if (kind === "session-rules")
    scorer = new RulesScorer(catalogue, config.window, get("rule_start"), get("rule_items"), get("rule_weights"));
  else if (kind === "session-knn")
    scorer = new KnnScorer(
      catalogue,
      config.window,
      get("session_start"),
      get("session_items"),
      config.k,
      config.sampleSize,
    );
  else {
    const weights: NeuralWeights = {
      kind,
      options: {
        dim: config.dim,
        window: config.window,
        sideDim: config.sideDim,
        layers: config.layers,
        heads: config.heads,
        objective: config.objective,
      },
      inputs: meta.session,
      tensors: {},
    };
    for (const [name, data] of tensors)
      if (name !== "item_counts" && data instanceof Float32Array)
        weights.tensors[name] = {
          shape: (model.weightsManifest.flatMap((g) => g.weights).find((w) => w.name === name) as WeightSpec).shape,
          data,
        };
    scorer = new NeuralScorer(weights, catalogue);
  }
  return { meta, scorer };
}
