// The serving pipeline definitions users write in their repo: a Pipeline of typed stages, compiled to a plain
// PipelineSpec the registry stores. The stages run in adapters/serving; here they are only checked and compiled.
// Like the other definitions they carry a `fstoreKind` brand, so copies loaded through jiti are recognised.

import { ValidationError } from "../common/errors.js";
import { checkOptions as refuseUnknown } from "./options.js";
import type { Entity } from "./definitions.js";
import type { PipelineSpec, StageKind, StageSpec } from "./types.js";

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The options object, with anything the definition does not know refused (a misspelt option is not ignored). */
function checkOptions(what: string, o: unknown, known: readonly string[]): Record<string, unknown> {
  refuseUnknown(what, undefined, o, known);
  return o as Record<string, unknown>;
}

function positiveInt(what: string, name: string, v: unknown, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1)
    throw new ValidationError(`${what}: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function featureRef(what: string, name: string, v: unknown): string {
  if (typeof v !== "string" || !/^[^:]+:[^:]+$/.test(v))
    throw new ValidationError(`${what}: ${name} must be a "view:feature" reference, got ${JSON.stringify(v)}`);
  return v;
}

/** A feature service name or a non-empty list of "view:feature" references. */
function featureList(what: string, v: unknown): string[] | string {
  if (typeof v === "string" && v.length > 0 && !v.includes(":")) return v;
  if (Array.isArray(v) && v.length > 0) return v.map((r, i) => featureRef(what, `features[${i}]`, r));
  throw new ValidationError(
    `${what}: features must be a feature service name or a non-empty list of "view:feature" references, got ${JSON.stringify(v)}`,
  );
}

function modelPath(what: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0)
    throw new ValidationError(`${what}: model must be the path of a model folder, got ${JSON.stringify(v)}`);
  return v;
}

/** A stage definition: its options, checked, as a spec whose model paths are still as written. */
abstract class StageDefinition<S extends StageSpec = StageSpec> {
  readonly fstoreKind = "pipeline_stage" as const;
  abstract readonly kind: StageKind;
  /** the spec, with `name` empty until the pipeline names the stage */
  abstract spec(): S;
}

export interface QueryFeaturesOptions {
  features: string[] | string;
}
/** Reads the request rows' features from the online store (a feature service or references). */
export class QueryFeatures extends StageDefinition {
  readonly kind = "query_features" as const;
  private readonly features: string[] | string;
  constructor(o: QueryFeaturesOptions) {
    const opts = checkOptions("QueryFeatures", o, ["features"]);
    super();
    this.features = featureList("QueryFeatures", opts.features);
  }
  spec(): StageSpec {
    return { kind: this.kind, name: "", features: this.features };
  }
}

export interface QueryTowerOptions {
  model: string;
}
/** Embeds each request row with the query tower of a `fs train two-tower` export. */
export class QueryTower extends StageDefinition {
  readonly kind = "query_tower" as const;
  private readonly model: string;
  constructor(o: QueryTowerOptions) {
    const opts = checkOptions("QueryTower", o, ["model"]);
    super();
    this.model = modelPath("QueryTower", opts.model);
  }
  spec(): StageSpec {
    return { kind: this.kind, name: "", model: this.model };
  }
}

export interface RetrieveOptions {
  /** the vector feature, "view:feature" */
  vectors: string;
  topK?: number;
}
/** The nearest items to each row's query embedding, from the vector view's index. */
export class Retrieve extends StageDefinition {
  readonly kind = "retrieve" as const;
  private readonly vectors: string;
  private readonly topK: number;
  constructor(o: RetrieveOptions) {
    const opts = checkOptions("Retrieve", o, ["vectors", "topK"]);
    super();
    this.vectors = featureRef("Retrieve", "vectors", opts.vectors);
    this.topK = positiveInt("Retrieve", "topK", opts.topK, 100);
  }
  spec(): StageSpec {
    return { kind: this.kind, name: "", vectors: this.vectors, topK: this.topK };
  }
}

export interface FilterSeenOptions {
  /** a list feature of the request entity holding the item ids each row has seen */
  feature: string;
}
/** Drops, per request row, the candidates that row's seen-items list holds. */
export class FilterSeen extends StageDefinition {
  readonly kind = "filter_seen" as const;
  private readonly feature: string;
  constructor(o: FilterSeenOptions) {
    const opts = checkOptions("FilterSeen", o, ["feature"]);
    super();
    this.feature = featureRef("FilterSeen", "feature", opts.feature);
  }
  spec(): StageSpec {
    return { kind: this.kind, name: "", feature: this.feature };
  }
}

/** Keeps the candidates for which an ETL expression over candidate columns is true (e.g. "item_category != 3"). */
export class Filter extends StageDefinition {
  readonly kind = "filter" as const;
  private readonly expression: string;
  constructor(expression: string) {
    super();
    if (typeof expression !== "string" || expression.trim() === "")
      throw new ValidationError(`Filter: expected an expression string, got ${JSON.stringify(expression)}`);
    this.expression = expression;
  }
  spec(): StageSpec {
    return { kind: this.kind, name: "", expression: this.expression };
  }
}

export interface ItemFeaturesOptions {
  features: string[] | string;
  /** a candidate whose features are missing: scored with the model's defaults (default) or dropped */
  missing?: "defaults" | "drop";
}
/** Reads each candidate's item features from the online store. */
export class ItemFeatures extends StageDefinition {
  readonly kind = "item_features" as const;
  private readonly features: string[] | string;
  private readonly missing: "defaults" | "drop";
  constructor(o: ItemFeaturesOptions) {
    const opts = checkOptions("ItemFeatures", o, ["features", "missing"]);
    super();
    this.features = featureList("ItemFeatures", opts.features);
    const m = opts.missing ?? "defaults";
    if (m !== "defaults" && m !== "drop")
      throw new ValidationError(`ItemFeatures: missing must be "defaults" or "drop", got ${JSON.stringify(m)}`);
    this.missing = m;
  }
  spec(): StageSpec {
    return { kind: this.kind, name: "", features: this.features, missing: this.missing };
  }
}

export interface RankOptions {
  model: string;
}
/** Scores every (request row, candidate) pair with a `fs train dlrm` export. */
export class Rank extends StageDefinition {
  readonly kind = "rank" as const;
  private readonly model: string;
  constructor(o: RankOptions) {
    const opts = checkOptions("Rank", o, ["model"]);
    super();
    this.model = modelPath("Rank", opts.model);
  }
  spec(): StageSpec {
    return { kind: this.kind, name: "", model: this.model };
  }
}

export interface SessionModelOptions {
  /** a `fs train session` model folder (relative to the repo) */
  model: string;
  /** the saved session ETL workflow folder (`fs etl run ... --save`), run on the session's raw events */
  workflow: string;
  /** an online view keyed by the session id whose list features hold the session's events (push mode append) */
  view?: string;
  /** candidates handed to the next stage (default 100) */
  candidates?: number;
  /** keep the session's own items among the candidates (default false) */
  includeSeen?: boolean;
}
/** Next-item candidates of a session model: the session's raw events (from the request, or its view) in. */
export class SessionModel extends StageDefinition {
  readonly kind = "session_model" as const;
  private readonly o: Extract<StageSpec, { kind: "session_model" }>;
  constructor(o: SessionModelOptions) {
    const opts = checkOptions("SessionModel", o, ["model", "workflow", "view", "candidates", "includeSeen"]);
    super();
    if (typeof opts.workflow !== "string" || opts.workflow === "")
      throw new ValidationError(`SessionModel: workflow must be the path of a saved workflow folder`);
    if (opts.view !== undefined && (typeof opts.view !== "string" || !NAME_RE.test(opts.view)))
      throw new ValidationError(`SessionModel: view must be a feature view name, got ${JSON.stringify(opts.view)}`);
    if (opts.includeSeen !== undefined && typeof opts.includeSeen !== "boolean")
      throw new ValidationError(`SessionModel: includeSeen must be true or false`);
    this.o = {
      kind: this.kind,
      name: "",
      model: modelPath("SessionModel", opts.model),
      workflow: opts.workflow,
      candidates: positiveInt("SessionModel", "candidates", opts.candidates, 100),
      includeSeen: opts.includeSeen === true,
    };
    if (opts.view !== undefined) this.o.view = opts.view;
  }
  spec(): StageSpec {
    return { ...this.o };
  }
}

export interface OrderOptions {
  topK?: number;
  strategy?: "greedy" | "softmax";
  /** softmax only: p ∝ exp(score / temperature) */
  temperature?: number;
  /** at most `maxPerValue` items per value of a candidate column (e.g. the item category) */
  diversity?: { feature: string; maxPerValue: number };
}
/** The final list: by score (greedy) or sampled without replacement from a softmax of the scores. */
export class Order extends StageDefinition {
  readonly kind = "order" as const;
  private readonly o: Extract<StageSpec, { kind: "order" }>;
  constructor(o: OrderOptions = {}) {
    const opts = checkOptions("Order", o, ["topK", "strategy", "temperature", "diversity"]);
    super();
    const strategy = opts.strategy ?? "greedy";
    if (strategy !== "greedy" && strategy !== "softmax")
      throw new ValidationError(`Order: strategy must be "greedy" or "softmax", got ${JSON.stringify(strategy)}`);
    const temperature = opts.temperature ?? 1;
    if (typeof temperature !== "number" || !(temperature > 0) || !Number.isFinite(temperature))
      throw new ValidationError(`Order: temperature must be a positive number, got ${JSON.stringify(temperature)}`);
    this.o = { kind: this.kind, name: "", topK: positiveInt("Order", "topK", opts.topK, 10), strategy, temperature };
    if (opts.diversity !== undefined) {
      const d = checkOptions("Order diversity", opts.diversity, ["feature", "maxPerValue"]);
      if (typeof d.feature !== "string" || !NAME_RE.test(d.feature))
        throw new ValidationError(`Order: diversity.feature must be a column name, got ${JSON.stringify(d.feature)}`);
      this.o.diversity = {
        feature: d.feature,
        maxPerValue: positiveInt("Order", "diversity.maxPerValue", d.maxPerValue),
      };
    }
  }
  spec(): StageSpec {
    return { ...this.o };
  }
}

export type Stage =
  QueryFeatures | QueryTower | Retrieve | FilterSeen | Filter | ItemFeatures | Rank | SessionModel | Order;

export interface PipelineOptions {
  name: string;
  entity: Entity;
  stages: Stage[];
  /** a row the store does not know: a popularity list (default) or the pipeline on default features */
  fallback?: "popularity" | "none";
  /** feature logging: parquet files under `destination` (relative to the repo) for `sampleRate` of requests */
  logging?: { destination: string; sampleRate?: number };
  description?: string;
  tags?: Record<string, string>;
}

const isStage = (x: unknown): x is Stage =>
  typeof x === "object" && x !== null && (x as { fstoreKind?: unknown }).fstoreKind === "pipeline_stage";

export class Pipeline {
  readonly fstoreKind = "pipeline" as const;
  readonly name: string;
  readonly entity: Entity;
  readonly stages: Stage[];
  readonly fallback: "popularity" | "none";
  readonly logging?: { destination: string; sampleRate: number };
  readonly description: string;
  readonly tags: Record<string, string>;
  constructor(o: PipelineOptions) {
    const opts = checkOptions("Pipeline", o, [
      "name",
      "entity",
      "stages",
      "fallback",
      "logging",
      "description",
      "tags",
    ]);
    if (typeof opts.name !== "string" || !NAME_RE.test(opts.name))
      throw new ValidationError(`Pipeline name ${JSON.stringify(opts.name)} must be an identifier`);
    this.name = opts.name;
    const what = `Pipeline "${this.name}"`;
    const entity = opts.entity as { fstoreKind?: unknown } | undefined;
    if (entity?.fstoreKind !== "entity") throw new ValidationError(`${what}: entity must be an Entity`);
    this.entity = opts.entity as Entity;
    if (!Array.isArray(opts.stages) || opts.stages.length === 0)
      throw new ValidationError(`${what}: stages must list at least one stage`);
    opts.stages.forEach((s, i) => {
      if (!isStage(s))
        throw new ValidationError(
          `${what}: stages[${i}] is not a stage (QueryFeatures, QueryTower, Retrieve, FilterSeen, Filter, ItemFeatures, Rank, SessionModel, Order)`,
        );
    });
    this.stages = [...(opts.stages as Stage[])];
    const fallback = opts.fallback ?? "popularity";
    if (fallback !== "popularity" && fallback !== "none")
      throw new ValidationError(`${what}: fallback must be "popularity" or "none", got ${JSON.stringify(fallback)}`);
    this.fallback = fallback;
    if (opts.logging !== undefined) {
      const l = checkOptions(`${what} logging`, opts.logging, ["destination", "sampleRate"]);
      if (typeof l.destination !== "string" || l.destination === "")
        throw new ValidationError(`${what}: logging.destination must be a folder path`);
      const rate = l.sampleRate ?? 1;
      if (typeof rate !== "number" || !(rate > 0 && rate <= 1))
        throw new ValidationError(`${what}: logging.sampleRate must be in (0, 1], got ${JSON.stringify(rate)}`);
      this.logging = { destination: l.destination, sampleRate: rate };
    }
    this.description = typeof opts.description === "string" ? opts.description : "";
    this.tags = { ...((opts.tags as Record<string, string> | undefined) ?? {}) };
    for (const [k, v] of Object.entries(this.tags))
      if (typeof v !== "string") throw new ValidationError(`${what}: tag "${k}" must be a string`);
  }

  /** The spec: stages named by kind (a repeated kind gets _2, _3, ...); paths as written (relative to the repo). */
  toSpec(): PipelineSpec {
    const seen = new Map<string, number>();
    const stages = this.stages.map((s) => {
      const spec = s.spec();
      const n = (seen.get(spec.kind) ?? 0) + 1;
      seen.set(spec.kind, n);
      spec.name = n === 1 ? spec.kind : `${spec.kind}_${n}`;
      return spec;
    });
    const spec: PipelineSpec = {
      name: this.name,
      entity: this.entity.name,
      stages,
      fallback: this.fallback,
      tags: this.tags,
      description: this.description,
    };
    if (this.logging) spec.logging = { ...this.logging };
    return spec;
  }
}
