// Stage typing: walks a pipeline's stages over the columns each one writes (query side: one value per request
// row; candidate side: one value per candidate) and refuses a stage that reads a column no earlier stage
// writes, a model whose inputs the columns do not cover, or references the registry does not hold, naming the
// pipeline, the stage and the column. `fs apply` runs it on the desired state; the runtime on the registry's.

import { ValidationError, errorMessage } from "../../common/errors.js";
import type { Dtype, PipelineSpec, RegistryContents, StageSpec } from "../../registry/types.js";
import { resolveFeatures, type ResolvedFeatures } from "../../stores/references.js";
import type { ModelMeta } from "../models/artifacts.js";
import type { ServingModelKind } from "./models.js";
import { sessionModelInfo } from "./session_stage.js";

/** the query-side column QueryTower writes and Retrieve reads */
export const QUERY_EMBEDDING = "query_embedding";
/** the candidate-side score column (Retrieve's similarity, then Rank's probability) */
export const SCORE = "score";

export type Registryish = Pick<RegistryContents, "project" | "featureViews" | "featureServices" | "entities">;

export interface TypedStage {
  spec: StageSpec;
  /** query_features, filter_seen, item_features: the resolved references */
  resolved?: ResolvedFeatures;
  /** retrieve: the vector view, its feature and the item key */
  vectors?: { view: string; feature: string };
}

export interface TypedPipeline {
  spec: PipelineSpec;
  entityKey: string;
  entityDtype: Dtype;
  /** the candidates' id column: the vector view's join key (null without a Retrieve) */
  itemKey: string | null;
  itemDtype: Dtype;
  stages: TypedStage[];
  /** each model stage's metadata, by stage name */
  models: Map<string, ModelMeta>;
}

/** Loaded only for pipelines with a Filter: the expression module pulls in DuckDB, which startup should not. */
let exprModule: typeof import("../etl/expr.js") | null = null;
export async function loadExpressions(): Promise<typeof import("../etl/expr.js")> {
  return (exprModule ??= await import("../etl/expr.js"));
}

/** Type a pipeline (typeSync), loading the expression module first when it has a Filter stage. */
export async function typePipeline(
  spec: PipelineSpec,
  reg: Registryish,
  metaOf: (dir: string, kind: ServingModelKind) => ModelMeta,
): Promise<TypedPipeline> {
  if (spec.stages.some((s) => s.kind === "filter")) await loadExpressions();
  return typeSync(spec, reg, metaOf);
}

function typeSync(
  spec: PipelineSpec,
  reg: Registryish,
  metaOf: (dir: string, kind: ServingModelKind) => ModelMeta,
): TypedPipeline {
  const where = (s?: StageSpec) => `pipeline "${spec.name}"${s ? ` stage "${s.name}"` : ""}`;
  const entity = reg.entities.find((e) => e.name === spec.entity);
  if (!entity) throw new ValidationError(`${where()}: entity "${spec.entity}" is not registered`);
  const entityKey = entity.joinKeys[0];
  const query = new Set<string>([entityKey]);
  let cand: Set<string> | null = null;
  let itemKey: string | null = null;
  let itemDtype: Dtype = "int64";
  let sessionStage = false;
  const stages: TypedStage[] = [];
  const models = new Map<string, ModelMeta>();
  const contents: RegistryContents = {
    ...reg,
    dataSources: [],
    pipelines: [],
    materializations: [],
    lastUpdated: null,
  };
  const resolve = (s: StageSpec, features: string[] | string, keyedBy: string, side: string) => {
    let r: ResolvedFeatures;
    try {
      r = resolveFeatures(contents, features);
    } catch (e) {
      throw new ValidationError(`${where(s)}: ${errorMessage(e)}`, { cause: e });
    }
    for (const v of r.views) {
      const keys = v.view.entityColumns.map((c) => c.name);
      if (keys.length !== 1 || keys[0] !== keyedBy)
        throw new ValidationError(
          `${where(s)}: feature view "${v.view.name}" is keyed by ${keys.join(", ")}, but the ${side} rows are keyed by "${keyedBy}"`,
        );
      if (!v.view.online) throw new ValidationError(`${where(s)}: feature view "${v.view.name}" has online: false`);
    }
    return r;
  };
  const needCandidates = (s: StageSpec): Set<string> => {
    if (!cand)
      throw new ValidationError(
        `${where(s)}: reads candidates, but no earlier stage writes them (Retrieve or SessionModel)`,
      );
    return cand;
  };
  const needColumn = (s: StageSpec, cols: Set<string>, col: string, side: "query" | "candidate", why: string) => {
    if (!cols.has(col))
      throw new ValidationError(
        `${where(s)}: ${why} reads ${side} column "${col}", which no earlier stage writes (${side} columns: ${[...cols].join(", ")})`,
      );
  };
  const model = (s: StageSpec & { model: string }, kind: ServingModelKind) => {
    let meta: ModelMeta;
    try {
      meta = metaOf(s.model, kind);
    } catch (e) {
      throw new ValidationError(`${where(s)}: ${errorMessage(e)}`, { cause: e });
    }
    models.set(s.name, meta);
    return meta;
  };

  for (const s of spec.stages) {
    const t: TypedStage = { spec: s };
    switch (s.kind) {
      case "query_features": {
        t.resolved = resolve(s, s.features, entityKey, "request");
        for (const n of t.resolved.outputNames) query.add(n);
        break;
      }
      case "query_tower": {
        const meta = model(s, "query-tower");
        for (const inp of meta.inputs) needColumn(s, query, inp.name, "query", `the model's input "${inp.name}"`);
        query.add(QUERY_EMBEDDING);
        break;
      }
      case "retrieve": {
        needColumn(s, query, QUERY_EMBEDDING, "query", "the nearest-neighbour search");
        const [view, feature] = s.vectors.split(":");
        const v = reg.featureViews.find((x) => x.name === view);
        const f = v?.features.find((x) => x.name === feature);
        if (!v || !f) throw new ValidationError(`${where(s)}: vectors "${s.vectors}" is not a registered feature`);
        if (f.dtype !== "float32[]" && f.dtype !== "float64[]")
          throw new ValidationError(
            `${where(s)}: vectors "${s.vectors}" is ${f.dtype}, expected float32[] or float64[]`,
          );
        if (v.entityColumns.length !== 1)
          throw new ValidationError(`${where(s)}: the vector view "${view}" must have one join key (the item id)`);
        itemKey = v.entityColumns[0].name;
        itemDtype = v.entityColumns[0].dtype;
        cand = new Set([itemKey, SCORE]);
        t.vectors = { view, feature };
        break;
      }
      case "filter_seen": {
        needCandidates(s);
        t.resolved = resolve(s, [s.feature], entityKey, "request");
        const f = t.resolved.views[0].view.features.find((x) => x.name === t.resolved?.views[0].features[0].name);
        if (!f?.dtype.endsWith("[]"))
          throw new ValidationError(`${where(s)}: feature "${s.feature}" is ${f?.dtype}, expected a list of item ids`);
        break;
      }
      case "filter": {
        const cols = needCandidates(s);
        let cs: Set<string>;
        try {
          const expr = exprModule as typeof import("../etl/expr.js");
          cs = expr.exprColumns(expr.parseExpr(s.expression));
        } catch (e) {
          throw new ValidationError(`${where(s)}: ${errorMessage(e)}`, { cause: e });
        }
        // columns no earlier stage wrote are read from the item views that hold a feature of that name
        const fetch: string[] = [];
        for (const c of cs) {
          if (cols.has(c)) continue;
          const views = reg.featureViews.filter(
            (v) =>
              v.entityColumns.length === 1 &&
              v.entityColumns[0].name === itemKey &&
              v.features.some((f) => f.name === c),
          );
          if (views.length !== 1)
            needColumn(s, cols, c, "candidate", `the expression "${s.expression}" (no single item view has it)`);
          fetch.push(`${views[0].name}:${c}`);
        }
        if (fetch.length) {
          t.resolved = resolve(s, fetch, itemKey ?? "", "candidate");
          for (const c of fetch) cols.add(c.split(":")[1]);
        }
        break;
      }
      case "item_features": {
        const cols = needCandidates(s);
        t.resolved = resolve(s, s.features, itemKey ?? "", "candidate");
        for (const n of t.resolved.outputNames) cols.add(n);
        break;
      }
      case "rank": {
        const cols = needCandidates(s);
        const meta = model(s, "dlrm");
        for (const inp of meta.inputs) {
          if (inp.side === "item") needColumn(s, cols, inp.name, "candidate", `the model's item input "${inp.name}"`);
          else needColumn(s, query, inp.name, "query", `the model's ${inp.side} input "${inp.name}"`);
        }
        break;
      }
      case "session_model": {
        let info: { itemKey: string; itemDtype: Dtype };
        try {
          info = sessionModelInfo(s.model, s.workflow);
        } catch (e) {
          throw new ValidationError(`${where(s)}: ${errorMessage(e)}`, { cause: e });
        }
        itemKey = info.itemKey;
        itemDtype = info.itemDtype;
        cand = new Set([itemKey, SCORE]);
        sessionStage = true;
        if (s.view) {
          const v = reg.featureViews.find((x) => x.name === s.view);
          if (!v) throw new ValidationError(`${where(s)}: view "${s.view}" is not a registered feature view`);
          t.resolved = resolve(
            s,
            v.features.map((f) => `${v.name}:${f.name}`),
            entityKey,
            "request",
          );
          if (!v.features.some((f) => f.name === itemKey))
            throw new ValidationError(
              `${where(s)}: view "${s.view}" has no feature "${itemKey}" (the session's items)`,
            );
        }
        break;
      }
      case "order": {
        const cols = needCandidates(s);
        if (s.diversity) needColumn(s, cols, s.diversity.feature, "candidate", "the diversity cap");
        break;
      }
    }
    stages.push(t);
  }
  if (!itemKey)
    throw new ValidationError(`${where()}: has no Retrieve or SessionModel stage, so it never has candidates`);
  // a session model answers an empty session with the popularity saved in its own folder
  if (spec.fallback === "popularity" && !sessionStage && ![...models.values()].some((m) => m.popularity?.ids.length))
    throw new ValidationError(
      `${where()}: fallback "popularity" needs a model stage whose fstore-model.json holds popularity (retrain, or set fallback: "none")`,
    );
  return { spec, entityKey, entityDtype: entity.valueType, itemKey, itemDtype, stages, models };
}
