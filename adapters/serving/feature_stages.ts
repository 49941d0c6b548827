// The stages that read the feature store or test candidate columns: QueryFeatures (request rows' features, and
// which rows the store knows), FilterSeen (per request row, exact), Filter (an ETL expression per candidate) and
// ItemFeatures (each distinct candidate read once; missing ones kept on the model's defaults or dropped).

import { FstoreError } from "../../common/errors.js";
import type { ExprNode } from "../etl/expr.js";
import type { Row, Value } from "../etl/sql.js";
import { idKey, selectCandidates } from "./batch.js";
import type { PipelineState, RunContext, StageRunner } from "./context.js";
import { loadExpressions, type TypedStage } from "./typing.js";

function candidatesOf(state: PipelineState, stage: TypedStage) {
  if (!state.cand) throw new FstoreError(`stage "${stage.spec.name}" ran before any candidates`);
  return state.cand;
}

export const queryFeatures: StageRunner = async (state, stage, ctx) => {
  const { req } = state;
  const key = ctx.typed.entityKey;
  const res = await ctx.store.getOnlineFeatures({
    features: stageFeatures(stage),
    entities: { [key]: req.columns[key] },
  });
  const obj = res.toObject();
  const read: Record<string, unknown[]> = {};
  for (const name of res.featureNames) {
    if (name === key) continue;
    req.columns[name] = obj[name];
    read[name] = obj[name];
  }
  // a row none of whose views the store holds is unknown: the fallback answers it
  const views = res.views.length;
  for (let r = 0; r < req.n; r++) {
    let found = false;
    for (let v = 0; v < views && !found; v++) found = !Number.isNaN(res.eventTsOf(v)[r]);
    if (!found) {
      ctx.count("unknown_entity", r);
      if (ctx.typed.spec.fallback === "popularity") req.active[r] = 0;
    }
  }
};

/** The stage's references as the facade takes them. */
function stageFeatures(stage: TypedStage): string[] | string {
  const s = stage.spec;
  if (s.kind === "query_features" || s.kind === "item_features") return s.features;
  if (s.kind === "filter_seen") return [s.feature];
  throw new FstoreError(`stage "${s.name}" reads no features`);
}

/**
 * Each request row's seen items (the pipeline's FilterSeen feature; null where the store has none), read once
 * per run and kept in the state, so that Retrieve can exclude them from its search and FilterSeen drop the rest.
 * Null when the pipeline has no FilterSeen stage.
 */
export async function seenItems(state: PipelineState, ctx: RunContext): Promise<unknown[] | null> {
  if (state.seen) return state.seen;
  const stage = ctx.typed.stages.find((s) => s.spec.kind === "filter_seen");
  if (!stage) return null;
  const key = ctx.typed.entityKey;
  const res = await ctx.store.getOnlineFeatures({
    features: stageFeatures(stage),
    entities: { [key]: state.req.columns[key] },
  });
  const resolved = stage.resolved as NonNullable<TypedStage["resolved"]>;
  state.seen = res.toObject()[resolved.outputNames[0]];
  return state.seen;
}

export const filterSeen: StageRunner = async (state, stage, ctx) => {
  const cand = candidatesOf(state, stage);
  const { req } = state;
  const itemKey = ctx.typed.itemKey as string;
  const seenCol = (await seenItems(state, ctx)) as unknown[];
  const ids = cand.columns[itemKey];
  const keep = new Uint8Array(ids.length).fill(1);
  for (let r = 0; r < req.n; r++) {
    const list = seenCol[r];
    if (list == null) continue;
    const seen = new Set(Array.from(list as ArrayLike<unknown>, idKey));
    let dropped = 0;
    for (let i = cand.offsets[r]; i < cand.offsets[r + 1]; i++)
      if (seen.has(idKey(ids[i]))) {
        keep[i] = 0;
        dropped++;
      }
    if (dropped) ctx.count("seen_dropped", r, dropped);
  }
  state.cand = selectCandidates(cand, keep);
};

const parsed = new Map<string, ExprNode>();

export const filterExpression: StageRunner = async (state, stage, ctx) => {
  const cand = candidatesOf(state, stage);
  const s = stage.spec;
  // item features the expression reads and no earlier stage wrote (typing resolved them)
  if (stage.resolved) Object.assign(cand.columns, (await readItemColumns(state, stage, ctx)).columns);
  if (s.kind !== "filter") throw new FstoreError(`stage "${s.name}" is not a filter`);
  const { evalExpr, parseExpr } = await loadExpressions();
  let expr = parsed.get(s.expression);
  if (!expr) parsed.set(s.expression, (expr = parseExpr(s.expression)));
  const names = Object.keys(cand.columns);
  const keep = new Uint8Array(cand.score.length);
  const row: Row = {};
  const n = cand.offsets.length - 1;
  for (let r = 0; r < n; r++) {
    let dropped = 0;
    for (let i = cand.offsets[r]; i < cand.offsets[r + 1]; i++) {
      for (const c of names) row[c] = sqlValue(cand.columns[c][i]);
      row.score = cand.score[i];
      // SQL semantics: NULL (unknown) filters the candidate out
      if (evalExpr(expr, row) === true) keep[i] = 1;
      else dropped++;
    }
    if (dropped) ctx.count("filtered", r, dropped);
  }
  state.cand = selectCandidates(cand, keep);
};

function sqlValue(v: unknown): Value {
  if (v === undefined) return null;
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  return v as Value;
}

/**
 * The item features `features` of every candidate, each distinct item read once however many rows have it:
 * one column per output name, and whether each candidate's features are missing (a view without its row).
 */
async function readItemColumns(
  state: PipelineState,
  stage: TypedStage,
  ctx: Parameters<StageRunner>[2],
): Promise<{ columns: Record<string, unknown[]>; missing: Uint8Array }> {
  const cand = candidatesOf(state, stage);
  const itemKey = ctx.typed.itemKey as string;
  const ids = cand.columns[itemKey];
  const slot = new Map<unknown, number>();
  const unique: unknown[] = [];
  const at = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const k = idKey(ids[i]);
    let j = slot.get(k);
    if (j === undefined) slot.set(k, (j = unique.push(ids[i]) - 1));
    at[i] = j;
  }
  const resolved = stage.resolved as NonNullable<TypedStage["resolved"]>;
  const res = await ctx.store.getOnlineFeatures({
    features: resolved.views.flatMap((v) => v.features.map((f) => `${v.view.name}:${f.name}`)),
    entities: { [itemKey]: unique },
  });
  const obj = res.toObject();
  const missingUnique = new Uint8Array(unique.length);
  for (let v = 0; v < res.views.length; v++) {
    const ts = res.eventTsOf(v);
    for (let j = 0; j < unique.length; j++) if (Number.isNaN(ts[j])) missingUnique[j] = 1;
  }
  const columns: Record<string, unknown[]> = {};
  for (const name of resolved.outputNames) {
    const src = obj[name];
    columns[name] = Array.from(at, (j) => src[j]);
  }
  return { columns, missing: Uint8Array.from(at, (j) => missingUnique[j]) };
}

export const itemFeatures: StageRunner = async (state, stage, ctx) => {
  const cand = candidatesOf(state, stage);
  const s = stage.spec;
  if (s.kind !== "item_features") throw new FstoreError(`stage "${s.name}" is not item_features`);
  const { columns, missing } = await readItemColumns(state, stage, ctx);
  Object.assign(cand.columns, columns);
  const keep = new Uint8Array(missing.length).fill(1);
  const n = cand.offsets.length - 1;
  const event = s.missing === "drop" ? "missing_item_features_dropped" : "missing_item_features_defaults";
  let anyMissing = false;
  for (let r = 0; r < n; r++) {
    let m = 0;
    for (let i = cand.offsets[r]; i < cand.offsets[r + 1]; i++)
      if (missing[i]) {
        m++;
        if (s.missing === "drop") keep[i] = 0;
      }
    if (m) {
      anyMissing = true;
      ctx.count(event, r, m);
    }
  }
  if (s.missing === "drop" && anyMissing) state.cand = selectCandidates(cand, keep);
};
