// The serving runtime of one FeatureStore: looks the pipeline up in the (cached) registry, types it, takes the
// current version of each model, runs it, counts its events and hands sampled answers to the feature logger.
// A request holds the pipeline spec and model objects it started with, so a new `fs apply` or a retrained model
// folder changes later requests only. One implementation answers the library, HTTP and the CLI.

import { NotFoundError, ValidationError } from "../../common/errors.js";
import type { RegistryContents } from "../../registry/types.js";
import type { FeatureStore } from "../../stores/feature_store.js";
import { toColumns } from "../../stores/rows.js";
import type { RecommendRequest, RecommendResponse, RecommendService } from "../../stores/serving.js";
import type { CandidateSource } from "./context.js";
import { FeatureLogger } from "./feature_log.js";
import { ModelCache, readModelMeta, type LoadedServingModel } from "./models.js";
import { Prng } from "./ordering.js";
import { runPipeline } from "./runner.js";
import { type TypedPipeline, typePipeline } from "./typing.js";

/** the most items a request may ask for per row */
export const MAX_TOP_K = 10000;

/** Called with every counted event: (event, pipeline, count). The HTTP server turns them into /metrics. */
export type ServingListener = (event: string, pipeline: string, n: number) => void;

export interface RecommendOptions {
  /** replaces the Retrieve stage's ANN search (batch jobs score every item exactly) */
  retrieve?: CandidateSource;
}

export class Recommender implements RecommendService {
  private readonly models: ModelCache;
  private typedFor: RegistryContents | null = null;
  private readonly typed = new Map<string, TypedPipeline>();
  private readonly loggers = new Map<string, FeatureLogger>();
  private readonly listeners: ServingListener[] = [];
  /** events counted since the runtime started, by "pipeline\u0001event" */
  readonly totals = new Map<string, number>();

  constructor(readonly store: FeatureStore) {
    // a server trusts its registry forever and refreshes it on a timer: model folders follow the configured TTL
    const ttl = Number.isFinite(store.registryTtlMs) ? store.registryTtlMs : store.config.registryTtlSeconds * 1000;
    this.models = new ModelCache(ttl);
  }

  onEvent(listener: ServingListener): void {
    this.listeners.push(listener);
  }

  /** The pipeline as the registry holds it now, typed against the registry's views and its models' inputs. */
  async pipeline(name: string): Promise<TypedPipeline> {
    const contents = this.store.contents();
    if (contents !== this.typedFor) {
      this.typed.clear();
      this.typedFor = contents;
    }
    let t = this.typed.get(name);
    if (!t) {
      const spec = contents.pipelines.find((p) => p.name === name);
      if (!spec)
        throw new NotFoundError(
          `pipeline "${name}" is not in the registry of project "${contents.project}" (known: ${contents.pipelines.map((p) => p.name).join(", ") || "none"}; run "fs apply"?)`,
        );
      t = await typePipeline(spec, contents, readModelMeta);
      this.typed.set(name, t);
    }
    return t;
  }

  async recommend(req: RecommendRequest, opts: RecommendOptions = {}): Promise<RecommendResponse> {
    if (typeof req !== "object" || req === null) throw new ValidationError("recommend: expected a request object");
    if (typeof req.pipeline !== "string" || req.pipeline === "")
      throw new ValidationError(`pipeline: expected a pipeline name, got ${JSON.stringify(req.pipeline)}`);
    const topK = req.topK;
    if (topK !== undefined && (!Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K))
      throw new ValidationError(`top_k: expected an integer from 1 to ${MAX_TOP_K}, got ${JSON.stringify(topK)}`);
    if (req.seed !== undefined && (typeof req.seed !== "number" || !Number.isFinite(req.seed)))
      throw new ValidationError(`seed: expected a number, got ${JSON.stringify(req.seed)}`);
    const typed = await this.pipeline(req.pipeline);
    if (req.session !== undefined) {
      if (!typed.stages.some((s) => s.spec.kind === "session_model"))
        throw new ValidationError(`session: pipeline "${typed.spec.name}" has no SessionModel stage to read it`);
      if (typeof req.session !== "object" || req.session === null || Array.isArray(req.session))
        throw new ValidationError(`session: expected an object of event columns, e.g. {"product_id": [1, 2]}`);
    }
    const input =
      req.entities ?? req.entityRows ?? (req.session !== undefined ? { [typed.entityKey]: [null] } : undefined);
    if (!input) throw new ValidationError(`entities: give the entity rows (e.g. {"${typed.entityKey}": [1, 2]})`);
    const { columns, length } = toColumns(input, "entities");
    const keys = columns[typed.entityKey];
    if (!keys)
      throw new ValidationError(
        `entities: join key "${typed.entityKey}" is missing (pipeline "${typed.spec.name}" is keyed by ${typed.entityKey}; got ${Object.keys(columns).join(", ") || "no columns"})`,
      );
    for (const name of Object.keys(columns))
      if (name !== typed.entityKey)
        throw new ValidationError(`entities: column "${name}" is not the pipeline's join key "${typed.entityKey}"`);
    if (length === 0) return { results: [] };
    const models = await this.modelsOf(typed);
    const out = await runPipeline({
      store: this.store,
      typed,
      models,
      keys,
      rng: new Prng(req.seed),
      topK,
      debug: req.debug === true,
      retrieve: opts.retrieve,
      session: req.session,
    });
    for (const [event, n] of out.events) {
      const key = `${typed.spec.name}\u0001${event}`;
      this.totals.set(key, (this.totals.get(key) ?? 0) + n);
      for (const l of this.listeners) l(event, typed.spec.name, n);
    }
    const logging = typed.spec.logging;
    if (logging && Math.random() < logging.sampleRate) this.loggerOf(typed).append(out);
    return { results: out.results };
  }

  /** The current version of each model stage's model, by stage name. */
  async modelsOf(typed: TypedPipeline): Promise<Map<string, LoadedServingModel>> {
    const models = new Map<string, LoadedServingModel>();
    for (const s of typed.stages) {
      if (s.spec.kind === "query_tower") models.set(s.spec.name, await this.models.get(s.spec.model, "query-tower"));
      if (s.spec.kind === "rank") models.set(s.spec.name, await this.models.get(s.spec.model, "dlrm"));
    }
    return models;
  }

  private loggerOf(typed: TypedPipeline): FeatureLogger {
    const key = `${typed.spec.name}\u0001${typed.spec.logging?.destination}`;
    let l = this.loggers.get(key);
    if (!l) this.loggers.set(key, (l = new FeatureLogger(typed)));
    return l;
  }

  /** Writes every buffered feature log (also called by close). */
  async flush(): Promise<void> {
    await Promise.all([...this.loggers.values()].map((l) => l.flush()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.loggers.values()].map((l) => l.close()));
    this.loggers.clear();
  }
}

const runtimes = new WeakMap<FeatureStore, Recommender>();

/** The store's serving runtime (the one `store.recommend` uses). */
export function recommenderFor(store: FeatureStore): Recommender {
  let r = runtimes.get(store);
  if (!r) runtimes.set(store, (r = new Recommender(store)));
  return r;
}
