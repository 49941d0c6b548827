// What the facade knows of recommendations: the request and answer shapes, and the extension point through which
// the serving runtime (adapters/serving, a higher layer) plugs into FeatureStore: `store.recommend` and the
// apply-time checks of pipelines are delegated to whatever extension is registered.

import type { DesiredState } from "../registry/plan.js";
import type { FeatureStore } from "./feature_store.js";

export interface RecommendRequest {
  /** the pipeline's name in the registry */
  pipeline: string;
  /** entity rows as objects... */
  entityRows?: Array<Record<string, unknown>>;
  /** ...or as columns ({"user_id": [1, 2]}) */
  entities?: Record<string, unknown[]>;
  /** a live session's raw events as columns ({"product_id": [...], "event_time": [...]}), for a pipeline with a
   * SessionModel stage; the answer has one result */
  session?: Record<string, unknown[]>;
  /** items per row; default the pipeline's Order topK */
  topK?: number;
  /** the same seed gives the same lists; none draws fresh */
  seed?: number;
  /** add each stage's candidates and timing to every result */
  debug?: boolean;
}

export interface RecommendedItem {
  /** the item join key's value, under the item join key's name, and the score */
  [column: string]: unknown;
  score: number;
}

export interface StageTrace {
  stage: string;
  kind: string;
  ms: number;
  /** candidates after the stage, for this row */
  count: number;
  /** the candidates' ids and scores after the stage (at most the first 1,000) */
  ids?: unknown[];
  scores?: number[];
  /** events the stage counted for this row (e.g. missing features) */
  events?: Record<string, number>;
}

export interface RecommendResult {
  /** the entity key, under its join key's name, then the items */
  [column: string]: unknown;
  items: RecommendedItem[];
  fallback: "popularity" | null;
  debug?: StageTrace[];
}

export interface RecommendResponse {
  results: RecommendResult[];
}

/** The serving runtime as the facade sees it. */
export interface RecommendService {
  recommend(req: RecommendRequest): Promise<RecommendResponse>;
  /** flush what is buffered (feature logs) and release models */
  close(): Promise<void>;
}

export interface ServingExtension {
  /** apply-time checks of the desired pipelines (stage typing, model loading); throws a ValidationError */
  checkPlan(desired: DesiredState, store: FeatureStore): Promise<void>;
  /** the runtime of one store, made on its first recommend */
  open(store: FeatureStore): RecommendService;
}

let extension: ServingExtension | null = null;

/** Installed by adapters/serving when it is imported (importing "fstore" does). */
export function registerServingExtension(e: ServingExtension): void {
  extension = e;
}

export function servingExtension(): ServingExtension | null {
  return extension;
}
