// Runs a typed pipeline over a batch of request rows: each stage in order on the shared state, then the answer
// per row (the popularity list for rows the store does not know), with each stage's candidates and timing when
// debugging. Events (fallbacks, missing features, short lists) are counted per row and in total.

import type { StageKind } from "../../registry/types.js";
import type { RecommendResult, RecommendedItem, StageTrace } from "../../stores/serving.js";
import type { ItemPopularity } from "../models/artifacts.js";
import { type Candidates, type RequestRows, idKey } from "./batch.js";
import type { CandidateSource, PipelineState, RunContext, StageRunner } from "./context.js";
import { filterExpression, filterSeen, itemFeatures, queryFeatures } from "./feature_stages.js";
import { order, orderAll, queryTower, rank, retrieve } from "./model_stages.js";
import type { LoadedServingModel } from "./models.js";
import type { Prng } from "./ordering.js";
import { sessionModel } from "./session_stage.js";
import type { TypedPipeline } from "./typing.js";

/** Each stage kind's implementation (exported for benchmarks that time one stage alone). */
export const RUNNERS: Record<StageKind, StageRunner> = {
  query_features: queryFeatures,
  query_tower: queryTower,
  retrieve,
  filter_seen: filterSeen,
  filter: filterExpression,
  item_features: itemFeatures,
  rank,
  session_model: sessionModel,
  order,
};

/** ids and scores listed per stage in a debug trace, at most */
const TRACE_IDS = 1000;
/** items per row when neither the request nor an Order stage says */
export const DEFAULT_TOP_K = 10;

export interface RunInput {
  store: RunContext["store"];
  typed: TypedPipeline;
  models: Map<string, LoadedServingModel>;
  /** the entity key of each request row */
  keys: unknown[];
  rng: Prng;
  topK?: number;
  debug?: boolean;
  retrieve?: CandidateSource;
  session?: Record<string, unknown[]>;
}

export interface RunOutput {
  results: RecommendResult[];
  /** events counted, in total */
  events: Map<string, number>;
  /** the final state: query columns and each row's served candidates with their columns (feature logging) */
  state: PipelineState;
}

/** The state before the first stage: the request rows' keys, every row active, no candidates. */
export function initialState(entityKey: string, keys: unknown[]): PipelineState {
  const n = keys.length;
  const req: RequestRows = {
    n,
    columns: { [entityKey]: keys },
    embedding: null,
    dim: 0,
    active: new Uint8Array(n).fill(1),
  };
  return { req, cand: null };
}

export async function runPipeline(input: RunInput): Promise<RunOutput> {
  const { typed } = input;
  const n = input.keys.length;
  const state = initialState(typed.entityKey, input.keys);
  const { req } = state;
  const events = new Map<string, number>();
  const traces: StageTrace[][] | null = input.debug ? Array.from({ length: n }, () => []) : null;
  let rowEvents: Array<Record<string, number>> | null = null;
  const ctx: RunContext = {
    store: input.store,
    typed,
    models: input.models,
    rng: input.rng,
    topK: input.topK,
    retrieve: input.retrieve,
    session: input.session,
    count(event, row, by = 1) {
      events.set(event, (events.get(event) ?? 0) + by);
      if (rowEvents) rowEvents[row][event] = (rowEvents[row][event] ?? 0) + by;
    },
  };
  let ordered = false;
  for (const stage of typed.stages) {
    if (traces) rowEvents = Array.from({ length: n }, () => ({}));
    const t0 = performance.now();
    await RUNNERS[stage.spec.kind](state, stage, ctx);
    const ms = performance.now() - t0;
    if (stage.spec.kind === "order") ordered = true;
    if (traces && rowEvents) {
      for (let r = 0; r < n; r++)
        traces[r].push(traceOf(stage.spec.name, stage.spec.kind, ms, state.cand, r, typed.itemKey, rowEvents[r]));
    }
  }
  rowEvents = null;
  const topK = input.topK ?? DEFAULT_TOP_K;
  if (!ordered && state.cand) state.cand = orderAll(state.cand, ctx, { topK, strategy: "greedy", temperature: 1 });
  const want = input.topK ?? orderTopK(typed) ?? DEFAULT_TOP_K;
  const popularity = popularityOf(input.models);
  const itemKey = typed.itemKey as string;
  const results: RecommendResult[] = [];
  for (let r = 0; r < n; r++) {
    let items: RecommendedItem[];
    let fallback: RecommendResult["fallback"] = null;
    if (!req.active[r]) {
      fallback = "popularity";
      items = popularity ? popularItems(popularity, itemKey, want) : [];
      ctx.count("fallback_popularity", r);
    } else {
      if (state.fallback?.[r]) fallback = "popularity";
      const c = state.cand as Candidates;
      items = [];
      for (let i = c.offsets[r]; i < c.offsets[r + 1]; i++)
        items.push({ [itemKey]: idKey(c.columns[itemKey][i]), score: c.score[i] });
    }
    if (items.length < want) ctx.count("short_list", r);
    const result: RecommendResult = { [typed.entityKey]: idKey(input.keys[r]), items, fallback };
    if (traces) result.debug = traces[r];
    results.push(result);
  }
  return { results, events, state };
}

function orderTopK(typed: TypedPipeline): number | undefined {
  for (const s of typed.stages) if (s.spec.kind === "order") return s.spec.topK;
  return undefined;
}

function traceOf(
  stage: string,
  kind: string,
  ms: number,
  cand: Candidates | null,
  r: number,
  itemKey: string | null,
  events: Record<string, number>,
): StageTrace {
  const t: StageTrace = { stage, kind, ms: Math.round(ms * 1000) / 1000, count: 0 };
  if (cand && itemKey) {
    const start = cand.offsets[r];
    const end = Math.min(cand.offsets[r + 1], start + TRACE_IDS);
    t.count = cand.offsets[r + 1] - start;
    t.ids = cand.columns[itemKey].slice(start, end).map(idKey);
    t.scores = Array.from(cand.score.subarray(start, end));
  }
  if (Object.keys(events).length) t.events = events;
  return t;
}

/** The popularity saved with the first model that has one. */
function popularityOf(models: Map<string, LoadedServingModel>): ItemPopularity | null {
  for (const m of models.values()) if (m.meta.popularity?.ids.length) return m.meta.popularity;
  return null;
}

/** The `k` most popular items, scored by their share of the training interactions. */
function popularItems(p: ItemPopularity, itemKey: string, k: number): RecommendedItem[] {
  const total = p.counts.reduce((a, b) => a + b, 0) || 1;
  return p.ids.slice(0, k).map((id, i) => ({ [itemKey]: id, score: p.counts[i] / total }));
}
