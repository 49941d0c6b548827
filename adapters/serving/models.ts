// The models a pipeline runs: a model folder's metadata (read as JSON, no TensorFlow.js), and its typed-array
// scorer, loaded on first use and reloaded when the folder's files change (a retrained model is picked up
// without a restart). The scorers' modules are imported on demand, so importing "fstore" never loads tfjs.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FstoreError, ValidationError, errorMessage } from "../../common/errors.js";
import type { ModelMeta } from "../models/artifacts.js";
import type { DlrmScorer } from "../models/dlrm_scorer.js";
import type { QueryTowerScorer } from "../models/query_tower_scorer.js";

export type ServingModelKind = "query-tower" | "dlrm";

/** The folder holding fstore-model.json: `dir` itself, or the query tower inside a two-tower export. */
export function modelDir(dir: string, kind: ServingModelKind): string {
  if (existsSync(join(dir, "fstore-model.json"))) return dir;
  if (kind === "query-tower" && existsSync(join(dir, "query_tower", "fstore-model.json")))
    return join(dir, "query_tower");
  const hint =
    kind === "query-tower" ? "a `fs train two-tower` export (with query_tower/)" : "a `fs train dlrm` export";
  throw new ValidationError(`model folder ${dir} has no fstore-model.json: expected ${hint}`);
}

export function readModelMeta(dir: string, kind: ServingModelKind): ModelMeta {
  const d = modelDir(dir, kind);
  const path = join(d, "fstore-model.json");
  let meta: ModelMeta;
  try {
    meta = JSON.parse(readFileSync(path, "utf8")) as ModelMeta;
  } catch (e) {
    throw new ValidationError(`${path}: not readable JSON: ${errorMessage(e)}`, { cause: e });
  }
  if (meta.format !== "fstore-model" || !Array.isArray(meta.inputs))
    throw new ValidationError(`${path}: not an fstore-model file`);
  if (meta.kind !== kind) throw new ValidationError(`${path}: the model is a ${meta.kind}, expected a ${kind}`);
  return meta;
}

/** Change stamp of a model folder: the modification times and sizes of its files. */
function stampOf(dir: string): string {
  return ["fstore-model.json", "model.json", "weights.bin"]
    .map((f) => {
      try {
        const s = statSync(join(dir, f));
        return `${s.mtimeMs}:${s.size}`;
      } catch {
        return "-";
      }
    })
    .join("|");
}

export interface LoadedQueryTower {
  kind: "query-tower";
  scorer: QueryTowerScorer;
  meta: ModelMeta;
}
export interface LoadedRanker {
  kind: "dlrm";
  scorer: DlrmScorer;
  meta: ModelMeta;
}
export type LoadedServingModel = LoadedQueryTower | LoadedRanker;

async function load(dir: string, kind: ServingModelKind): Promise<LoadedServingModel> {
  const d = modelDir(dir, kind);
  const meta = readModelMeta(dir, kind);
  // weights load through TensorFlow.js, which needs a backend; a process that never trained has none yet
  const { initBackend } = await import("../models/backend.js");
  await initBackend("auto", () => {});
  const { loadModel } = await import("../models/artifacts.js");
  const loaded = await loadModel(d);
  try {
    if (kind === "query-tower") {
      const { QueryTowerScorer } = await import("../models/query_tower_scorer.js");
      return { kind, scorer: QueryTowerScorer.fromLayers(loaded), meta };
    }
    const { DlrmScorer } = await import("../models/dlrm_scorer.js");
    // "js": the whole request on typed arrays, whatever TensorFlow.js backend happens to be registered
    return { kind, scorer: DlrmScorer.fromLayers(loaded, "js"), meta };
  } finally {
    loaded.model.dispose();
  }
}

/** Load a model folder now (apply-time check): a ValidationError naming the folder when it does not load. */
export async function checkModelLoads(dir: string, kind: ServingModelKind): Promise<LoadedServingModel> {
  try {
    return await load(dir, kind);
  } catch (e) {
    if (e instanceof ValidationError) throw e;
    throw new ValidationError(`model folder ${dir} does not load: ${errorMessage(e)}`, { cause: e });
  }
}

/**
 * Loaded models by folder. A folder's files are looked at again at most every `checkMs`; a change loads the new
 * version, which later requests get (a request keeps the model objects it started with).
 */
export class ModelCache {
  private readonly entries = new Map<
    string,
    { stamp: string; checkedAt: number; model: Promise<LoadedServingModel> }
  >();
  constructor(private readonly checkMs: number) {}

  get(dir: string, kind: ServingModelKind, now = Date.now()): Promise<LoadedServingModel> {
    const key = `${kind}\u0001${dir}`;
    const e = this.entries.get(key);
    if (e && now - e.checkedAt < this.checkMs) return e.model;
    const stamp = stampOf(existsSync(dir) ? safeModelDir(dir, kind) : dir);
    if (e && e.stamp === stamp) {
      e.checkedAt = now;
      return e.model;
    }
    // at request time a folder that does not load is the server's fault (5xx), not the caller's
    const model = load(dir, kind).catch((e: unknown) => {
      throw new FstoreError(`model folder ${dir} does not load: ${errorMessage(e)}`, { cause: e });
    });
    // a folder being rewritten is tried again on the next request
    model.catch(() => {
      if (this.entries.get(key)?.model === model) this.entries.delete(key);
    });
    this.entries.set(key, { stamp, checkedAt: now, model });
    return model;
  }
}

function safeModelDir(dir: string, kind: ServingModelKind): string {
  try {
    return modelDir(dir, kind);
  } catch {
    return dir;
  }
}
