// The stages that compute: QueryTower (query embeddings), Retrieve (nearest items through the vector view's
// index, or any CandidateSource such as exact scoring), Rank (DLRM per request row and candidate, the row's
// user side computed once) and Order (greedy or softmax sampling, diversity cap).

import { FstoreError, ValidationError } from "../../common/errors.js";
import { type Candidates, emptyCandidates, frameOf, idKey, takeCandidates } from "./batch.js";
import type { CandidateSource, RunContext, StageRunner } from "./context.js";
import { seenItems } from "./feature_stages.js";
import { orderCandidates } from "./ordering.js";
import type { TypedStage } from "./typing.js";

function modelOf<K extends "query-tower" | "dlrm">(ctx: RunContext, stage: TypedStage, kind: K) {
  const m = ctx.models.get(stage.spec.name);
  if (!m || m.kind !== kind) throw new FstoreError(`stage "${stage.spec.name}": its ${kind} model is not loaded`);
  return m as Extract<typeof m, { kind: K }>;
}

export const queryTower: StageRunner = (state, stage, ctx) => {
  const { scorer } = modelOf(ctx, stage, "query-tower");
  const { req } = state;
  const frame = frameOf(scorer.inputs, (name) => req.columns[name], { start: 0, end: req.n });
  req.embedding = scorer.embed(frame);
  req.dim = scorer.dim;
  return Promise.resolve();
};

function dot(a: ArrayLike<number>, aOff: number, b: ArrayLike<number>, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += a[aOff + k] * b[k];
  return s;
}

/** Nearest items of each active row from the online store's vector index; the score is the query . item product. */
export const annCandidates: CandidateSource = async (req, stage, topK, ctx, exclude) => {
  const { store } = ctx;
  const itemKey = ctx.typed.itemKey as string;
  const emb = req.embedding as Float32Array;
  const dim = req.dim;
  const ref = `${stage.vectors.view}:${stage.vectors.feature}`;
  // the index search skips excluded items and over-fetches, so topK candidates survive the seen filter
  const excludeOf = (r: number) => {
    const list = exclude?.[r] as ArrayLike<unknown> | null | undefined;
    return list == null ? undefined : Array.from(list);
  };
  const answers = await Promise.all(
    Array.from({ length: req.n }, (_, r) =>
      req.active[r]
        ? store.retrieveOnlineDocuments({
            features: [ref],
            query: emb.subarray(r * dim, (r + 1) * dim),
            topK,
            exclude: excludeOf(r),
          })
        : Promise.resolve(null),
    ),
  );
  const out = emptyCandidates(req.n, [itemKey]);
  const ids = out.columns[itemKey];
  const scores: number[] = [];
  answers.forEach((res, r) => {
    if (res) {
      const obj = res.toObject();
      const got = obj[itemKey] ?? [];
      const vecs = obj[stage.vectors.feature];
      const dist = obj.distance;
      for (let i = 0; i < got.length; i++) {
        const v = vecs?.[i] as ArrayLike<number> | null | undefined;
        // padding and ids without a vector never become candidates
        if (got[i] == null || (vecs && v == null)) continue;
        ids.push(got[i]);
        scores.push(v ? dot(emb, r * dim, v, dim) : -Number(dist?.[i] ?? 0));
      }
    }
    out.offsets[r + 1] = ids.length;
  });
  out.score = Float64Array.from(scores);
  return out;
};

/** Exact retrieval over an in-memory item matrix (ids, row-major [items, dim]): every item scored, top k per row
 * of those not excluded. */
export function exactCandidates(items: {
  ids: ArrayLike<unknown>;
  embeddings: Float32Array;
  dim: number;
}): CandidateSource {
  return (req, _stage, topK, ctx, exclude) => {
    const itemKey = ctx.typed.itemKey as string;
    const emb = req.embedding as Float32Array;
    if (req.dim !== items.dim)
      throw new ValidationError(`exact retrieval: query embeddings have ${req.dim} values, items ${items.dim}`);
    const m = items.ids.length;
    const keys = exclude ? Array.from(items.ids, idKey) : null;
    const out = emptyCandidates(req.n, [itemKey]);
    const ids = out.columns[itemKey];
    const scores: number[] = [];
    const s = new Float64Array(m);
    for (let r = 0; r < req.n; r++) {
      if (req.active[r]) {
        const q = emb.subarray(r * req.dim, (r + 1) * req.dim);
        for (let j = 0; j < m; j++) s[j] = dot(items.embeddings, j * items.dim, q, req.dim);
        const skip = new Set(Array.from((exclude?.[r] ?? []) as ArrayLike<unknown>, idKey));
        const order = Array.from({ length: m }, (_, j) => j)
          .filter((j) => !keys || !skip.has(keys[j]))
          .sort((a, b) => s[b] - s[a] || a - b);
        for (const j of order.slice(0, topK)) {
          ids.push(items.ids[j]);
          scores.push(s[j]);
        }
      }
      out.offsets[r + 1] = ids.length;
    }
    out.score = Float64Array.from(scores);
    return Promise.resolve(out);
  };
}

export const retrieve: StageRunner = async (state, stage, ctx) => {
  const s = stage.spec;
  if (s.kind !== "retrieve" || !stage.vectors) throw new FstoreError(`stage "${s.name}" is not a retrieve stage`);
  if (!state.req.embedding) throw new FstoreError(`stage "${s.name}": no query embeddings (QueryTower)`);
  const source = ctx.retrieve ?? annCandidates;
  const cand = await source(
    state.req,
    stage as TypedStage & { vectors: { view: string; feature: string } },
    s.topK,
    ctx,
    await seenItems(state, ctx),
  );
  for (let r = 0; r < state.req.n; r++) {
    const got = cand.offsets[r + 1] - cand.offsets[r];
    if (state.req.active[r] && got < s.topK) ctx.count("retrieved_short", r);
  }
  state.cand = cand;
};

export const rank: StageRunner = (state, stage, ctx) => {
  const cand = state.cand as Candidates;
  const { scorer } = modelOf(ctx, stage, "dlrm");
  const { req } = state;
  const w = scorer.weights;
  const inputs = [
    ...w.categorical.map((c) => ({ name: c.name, type: "categorical" as const, isList: c.isList, side: c.side })),
    ...w.continuous.map((c) => ({ name: c.name, type: "continuous" as const, side: c.side })),
  ];
  const shared = inputs.filter((i) => i.side !== "item");
  const item = inputs.filter((i) => i.side === "item");
  const score = new Float64Array(cand.score.length);
  for (let r = 0; r < req.n; r++) {
    const start = cand.offsets[r];
    const end = cand.offsets[r + 1];
    if (end === start) continue;
    const sharedFrame = frameOf(shared, (name) => req.columns[name], [r]);
    const itemFrame = frameOf(item, (name) => cand.columns[name], { start, end });
    score.set(scorer.scoreCandidates(sharedFrame, itemFrame), start);
  }
  cand.score = score;
  return Promise.resolve();
};

export const order: StageRunner = (state, stage, ctx) => {
  const cand = state.cand as Candidates;
  const s = stage.spec;
  if (s.kind !== "order") throw new FstoreError(`stage "${s.name}" is not an order stage`);
  state.cand = orderAll(cand, ctx, {
    topK: ctx.topK ?? s.topK,
    strategy: s.strategy,
    temperature: s.temperature,
    diversity: s.diversity,
  });
  return Promise.resolve();
};

/** Every row's candidates ordered and cut to topK. */
export function orderAll(
  cand: Candidates,
  ctx: RunContext,
  o: {
    topK: number;
    strategy: "greedy" | "softmax";
    temperature: number;
    diversity?: { feature: string; maxPerValue: number };
  },
): Candidates {
  const n = cand.offsets.length - 1;
  const offsets = new Int32Array(n + 1);
  const picked: number[] = [];
  const diversity = o.diversity
    ? { values: cand.columns[o.diversity.feature], maxPerValue: o.diversity.maxPerValue }
    : undefined;
  for (let r = 0; r < n; r++) {
    const list = orderCandidates(cand.score, cand.offsets[r], cand.offsets[r + 1], { ...o, diversity }, ctx.rng);
    picked.push(...list);
    offsets[r + 1] = picked.length;
  }
  return takeCandidates(cand, offsets, picked);
}
