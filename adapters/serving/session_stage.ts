// The SessionModel stage: next-item candidates for each request row from a session model, the session's raw
// events taken from the request (`session`) or read by the session id from an online view of event lists.
// The model and workflow folders are loaded on first use (the ETL pulls in DuckDB) and reloaded when retrained.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ValidationError, errorMessage } from "../../common/errors.js";
import type { Dtype, StageSpec } from "../../registry/types.js";
import type { NextItemModel, SessionEvents } from "../models/session/serve.js";
import type { Candidates } from "./batch.js";
import type { PipelineState, RunContext } from "./context.js";
import type { TypedStage } from "./typing.js";

type SessionStageSpec = Extract<StageSpec, { kind: "session_model" }>;

/** What typing needs of a session model: the raw item column (the candidates' id) and its dtype. */
export function sessionModelInfo(model: string, workflow: string): { itemKey: string; itemDtype: Dtype } {
  const read = (path: string): unknown => {
    try {
      return JSON.parse(readFileSync(path, "utf8"));
    } catch (e) {
      throw new ValidationError(`cannot read ${path}: ${errorMessage(e)}`, { cause: e });
    }
  };
  const meta = read(join(model, "fstore-model.json")) as { kind?: string; session?: { itemColumn?: string } };
  const itemColumn = meta.session?.itemColumn;
  if (!meta.kind?.startsWith("session-") || typeof itemColumn !== "string")
    throw new ValidationError(`${model} is not a session model folder (fs train session writes one)`);
  const wf = read(join(workflow, "workflow.json")) as {
    ops?: Array<{ kind?: string; vocab?: Record<string, { type?: string }> }>;
  };
  for (const op of wf.ops ?? []) {
    if (op.kind !== "Categorify") continue;
    for (const [c, v] of Object.entries(op.vocab ?? {}))
      if (itemColumn.startsWith(`${c}-`))
        return { itemKey: c, itemDtype: /INT/i.test(v.type ?? "") ? "int64" : "string" };
  }
  throw new ValidationError(
    `workflow ${workflow} has no Categorify of the column the model's item list "${itemColumn}" comes from`,
  );
}

interface Loaded {
  signature: string;
  model: Promise<NextItemModel>;
}
const loaded = new Map<string, Loaded>();

function signature(s: SessionStageSpec): string {
  const mtime = (p: string) => {
    try {
      return statSync(p).mtimeMs;
    } catch {
      return -1;
    }
  };
  return `${mtime(join(s.model, "fstore-model.json"))}|${mtime(join(s.model, "weights.bin"))}|${mtime(join(s.workflow, "workflow.json"))}`;
}

/** The loaded model of a stage; a retrained folder (new files) is loaded afresh, a failed load retried. */
async function modelOf(s: SessionStageSpec): Promise<NextItemModel> {
  const key = `${s.model}\u0000${s.workflow}`;
  const sig = signature(s);
  let l = loaded.get(key);
  if (!l || l.signature !== sig) {
    const { NextItemModel } = await import("../models/session/serve.js");
    l = { signature: sig, model: NextItemModel.open({ model: s.model, workflow: s.workflow }) };
    loaded.set(key, l);
    l.model.catch(() => loaded.delete(key));
  }
  return l.model;
}

/** Each request row's session: the request's own, or the view's event lists of the row's session id. */
async function sessionsOf(state: PipelineState, stage: TypedStage, ctx: RunContext): Promise<SessionEvents[]> {
  const s = stage.spec as SessionStageSpec;
  const n = state.req.n;
  if (ctx.session) {
    if (n !== 1)
      throw new ValidationError(`session: a request with a session answers one row, but ${n} entity rows were given`);
    return [ctx.session];
  }
  if (!stage.resolved)
    throw new ValidationError(
      `pipeline "${ctx.typed.spec.name}" stage "${s.name}": give the session's events ("session": {...}) or set the stage's view to read them by ${ctx.typed.entityKey}`,
    );
  const keys = state.req.columns[ctx.typed.entityKey];
  const features = stage.resolved.views.flatMap((v) => v.features.map((f) => `${v.view.name}:${f.name}`));
  const cols = (await ctx.store.getOnlineFeatures({ features, entities: { [ctx.typed.entityKey]: keys } })).toObject();
  // timestamps come back from the store as ms since the epoch; the workflow reads them as dates
  const times = new Set(
    stage.resolved.views.flatMap((v) =>
      v.view.features.filter((f) => f.dtype === "unix_timestamp[]").map((f) => f.name),
    ),
  );
  const names = features.map((f) => f.split(":")[1]);
  return Array.from({ length: n }, (_, r) => {
    const events: SessionEvents = {};
    for (const name of names) {
      const v = cols[name]?.[r];
      const list = Array.isArray(v) ? (v as unknown[]) : [];
      events[name] = times.has(name) ? list.map((t) => (typeof t === "number" ? new Date(t) : t)) : list;
    }
    return events;
  });
}

export async function sessionModel(state: PipelineState, stage: TypedStage, ctx: RunContext): Promise<void> {
  const s = stage.spec as SessionStageSpec;
  const itemKey = ctx.typed.itemKey as string;
  const model = await modelOf(s);
  const sessions = await sessionsOf(state, stage, ctx);
  const n = state.req.n;
  const offsets = new Int32Array(n + 1);
  const ids: unknown[] = [];
  const scores: number[] = [];
  const fallback = (state.fallback ??= new Uint8Array(n));
  for (let r = 0; r < n; r++) {
    if (state.req.active[r]) {
      const a = model.recommend({ session: sessions[r], topK: s.candidates, includeSeen: s.includeSeen });
      if (a.fallback) {
        fallback[r] = 1;
        ctx.count("fallback_popularity", r);
      }
      if (a.unknownItems) ctx.count("session_unknown_items", r, a.unknownItems);
      for (let i = 0; i < a.items.length; i++) {
        ids.push(a.items[i]);
        scores.push(a.scores[i]);
      }
    }
    offsets[r + 1] = ids.length;
  }
  const cand: Candidates = { offsets, columns: { [itemKey]: ids }, score: Float64Array.from(scores) };
  state.cand = cand;
}
