// What every stage gets: the state it transforms (request rows and candidates) and the run's context.

import type { FeatureStore } from "../../stores/feature_store.js";
import type { Candidates, RequestRows } from "./batch.js";
import type { LoadedServingModel } from "./models.js";
import type { Prng } from "./ordering.js";
import type { TypedPipeline, TypedStage } from "./typing.js";

export interface PipelineState {
  req: RequestRows;
  cand: Candidates | null;
  /** rows a stage answered with its own popularity list (e.g. an empty session) */
  fallback?: Uint8Array;
  /** each request row's seen items (FilterSeen's feature), once a stage has read them (seenItems) */
  seen?: unknown[];
}

/** Candidates for the active request rows from their query embeddings: the ANN index, or exact scoring. */
export type CandidateSource = (
  req: RequestRows,
  stage: TypedStage & { vectors: { view: string; feature: string } },
  topK: number,
  ctx: RunContext,
  /** each row's items never to return (its seen items when the pipeline filters them), or null */
  exclude: unknown[] | null,
) => Promise<Candidates>;

export interface RunContext {
  store: FeatureStore;
  typed: TypedPipeline;
  /** loaded models by stage name (the versions this run started with) */
  models: Map<string, LoadedServingModel>;
  rng: Prng;
  /** the request's topK, which overrides the Order stage's */
  topK?: number;
  /** replaces the Retrieve stage's nearest-neighbour search (e.g. exact retrieval in batch jobs) */
  retrieve?: CandidateSource;
  /** the request's session events (a session pipeline answering one live session) */
  session?: Record<string, unknown[]>;
  /** count an event of the current stage for a request row (metrics, and the debug trace) */
  count(event: string, row: number, n?: number): void;
}

export type StageRunner = (state: PipelineState, stage: TypedStage, ctx: RunContext) => Promise<void>;
