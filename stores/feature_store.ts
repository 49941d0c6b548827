// The FeatureStore facade: what services, the CLI and the HTTP server all call.

import { FstoreError, NotFoundError, ValidationError, errorMessage } from "../common/errors.js";
import { StringListMemo } from "../common/list_memo.js";
import { silentProgress } from "../common/progress.js";
import { isoUtc, toEpochMs } from "../common/time.js";
import { CONFIG_FILE, loadRepoConfig, type RepoConfig } from "../registry/config.js";
import { loadRepoDefinitions } from "../registry/loader.js";
import { type Plan, compileDefinitions, diff } from "../registry/plan.js";
import { Registry } from "../registry/registry.js";
import {
  type FeatureServiceSpec,
  type FeatureViewSpec,
  type RegistryContents,
  viewIn,
  withRepoPaths,
} from "../registry/types.js";
import { type MaterializeReport, defaultMergeRows, materializeViews } from "./materialize.js";
import { OnlineResponse } from "./online_response.js";
import { type PrecomputedReadOptions, PrecomputedReaders } from "./precomputed_readers.js";
import { type PushOptions, SerialQueue, pushRows } from "./push.js";
import { type ResolvedFeatures, resolveFeatures } from "./references.js";
import type {
  HistoricalFeaturesRequest,
  MaterializeOptions,
  OnlineFeaturesRequest,
  OpenOptions,
  TimeInput,
} from "./requests.js";
import { type RowsInput, toColumns, toOnlineBatch } from "./rows.js";
import { type RecommendRequest, type RecommendResponse, type RecommendService, servingExtension } from "./serving.js";
import type { OfflineStore, OnlineReadGroup, OnlineStore, RetrievalJob } from "./types.js";
import { DEFAULT_MAX_TOP_K, type RetrieveOnlineDocumentsRequest, retrieveOnlineDocuments } from "./vector_search.js";

export type { MaterializeReport, RetrieveOnlineDocumentsRequest };
export type {
  TimeInput,
  OpenOptions,
  OnlineFeaturesRequest,
  HistoricalFeaturesRequest,
  MaterializeOptions,
} from "./requests.js";
export type { PushTarget, PushOptions } from "./push.js";

export class FeatureStore {
  // Promises, not stores: concurrent first calls share one opening instead of each opening its own.
  private online: Promise<OnlineStore> | null;
  /** the online store once `online` has resolved */
  private openOnline: OnlineStore | null = null;
  private offline: Promise<OfflineStore> | null = null;
  private cached: RegistryContents;
  private cachedVersion: number;
  private checkedAt: number;
  private readonly ttlMs: number;
  private maxTopK = DEFAULT_MAX_TOP_K;
  /** appends read then write: one at a time in this process, so none is lost between the two */
  private readonly appendQueue = new SerialQueue();
  /**
   * resolved feature lists and services by request, for the cached registry (cleared when it reloads)
   * defended by: `npm run bench -- online` sqlite FeatureStore.getOnlineFeatures 1 entity x 250 features p50
   */
  private readonly resolved = new StringListMemo<ResolvedFeatures>(1000);
  private readonly resolvedServices = new Map<string, ResolvedFeatures>();
  /** the serving runtime (adapters/serving), made on the first recommend */
  private serving: RecommendService | null = null;
  /** readers of precomputed recommendation lists, by target, opened on first use */
  private readonly precomputed = new PrecomputedReaders();

  private constructor(
    readonly config: RepoConfig,
    readonly registry: Registry,
    online: OnlineStore | null,
    ttlSeconds: number,
  ) {
    this.online = online ? Promise.resolve(online) : null;
    this.openOnline = online;
    this.ttlMs = ttlSeconds * 1000;
    this.cachedVersion = registry.version(config.project);
    this.cached = withRepoPaths(registry.load(config.project), config.repoPath);
    this.checkedAt = Date.now();
  }

  static async open(repoPath: string, opts: OpenOptions = {}): Promise<FeatureStore> {
    const config = loadRepoConfig(repoPath);
    if (opts.defaultOfflineThreads !== undefined) config.offlineStore.threads ??= opts.defaultOfflineThreads;
    const registry = Registry.open(config.registryPath);
    const store = new FeatureStore(
      config,
      registry,
      opts.onlineStore ?? null,
      opts.registryTtlSeconds ?? config.registryTtlSeconds,
    );
    if (opts.maxTopK !== undefined) store.maxTopK = opts.maxTopK;
    return store;
  }

  /** How long the cached registry is trusted before its version is checked again (ms). */
  get registryTtlMs(): number {
    return this.ttlMs;
  }

  get project(): string {
    return this.config.project;
  }

  // ------------------------------------------------------------ stores (opened on first use)

  async onlineStore(): Promise<OnlineStore> {
    // Loaded on first use: a process that only reads definitions never pays for DuckDB or ioredis.
    if (!this.online) {
      const opening: Promise<OnlineStore> = import("./online/index.js")
        .then(({ createOnlineStore }) => createOnlineStore(this.config.onlineStore))
        .then((store) => {
          if (this.online === opening) this.openOnline = store; // not when closed meanwhile
          return store;
        })
        .catch((e: unknown) => {
          if (this.online === opening) this.online = null; // let the next call try again (e.g. Redis came back)
          throw e;
        });
      this.online = opening;
    }
    return this.online;
  }

  async offlineStore(): Promise<OfflineStore> {
    this.offline ??= import("./offline/duckdb.js")
      .then(({ createDuckDBOfflineStore }) => createDuckDBOfflineStore(this.config.offlineStore))
      .catch((e: unknown) => {
        this.offline = null;
        throw e;
      });
    return this.offline;
  }

  // ------------------------------------------------------------ registry

  /**
   * The registry contents, cached. After the TTL a version check (one indexed SQLite read) decides
   * whether to reload, so an apply in another process shows up without a restart.
   */
  contents(): RegistryContents {
    const now = Date.now();
    if (now - this.checkedAt >= this.ttlMs) this.refreshRegistry(now);
    return this.cached;
  }

  /** Reload the registry now if another process changed it. Returns true when it changed. */
  refreshRegistry(now = Date.now()): boolean {
    this.checkedAt = now;
    const v = this.registry.version(this.project);
    if (v === this.cachedVersion) return false;
    this.cached = withRepoPaths(this.registry.load(this.project), this.config.repoPath);
    this.cachedVersion = v;
    this.resolved.clear();
    this.resolvedServices.clear();
    return true;
  }

  private reloadNow(): RegistryContents {
    this.refreshRegistry();
    return this.cached;
  }

  listEntities() {
    return this.contents().entities;
  }
  listDataSources() {
    return this.contents().dataSources;
  }
  listFeatureViews(): FeatureViewSpec[] {
    return this.contents().featureViews;
  }
  listFeatureServices(): FeatureServiceSpec[] {
    return this.contents().featureServices;
  }
  getFeatureView(name: string): FeatureViewSpec {
    const v = this.contents().featureViews.find((x) => x.name === name);
    if (!v)
      throw new NotFoundError(
        `feature view "${name}" is not in the registry of project "${this.project}" (known: ${
          this.contents()
            .featureViews.map((x) => x.name)
            .join(", ") || "none"
        })`,
      );
    return v;
  }
  getFeatureService(name: string): FeatureServiceSpec {
    const s = this.contents().featureServices.find((x) => x.name === name);
    if (!s) throw new NotFoundError(`feature service "${name}" is not in the registry of project "${this.project}"`);
    return s;
  }

  // ------------------------------------------------------------ plan / apply / teardown

  /**
   * What apply would create, update and delete. Validates the definitions and their parquet sources, and
   * diffs against the registry as stored (source paths as written), not the cache (paths resolved).
   */
  async plan(): Promise<Plan> {
    const loaded = await loadRepoDefinitions(this.config.repoPath);
    const desired = compileDefinitions(loaded);
    const offline = await this.offlineStore();
    for (const v of desired.featureViews) {
      try {
        await offline.validateView(viewIn(v, this.config.repoPath));
      } catch (e) {
        if (e instanceof ValidationError) {
          throw new ValidationError(`${desired.origin.get(`feature_view:${v.name}`) ?? "repo"}: ${e.message}`, {
            cause: e,
          });
        }
        throw e;
      }
    }
    if (desired.pipelines.length) {
      const ext = servingExtension();
      if (!ext)
        throw new FstoreError(
          `the repo defines pipelines (${desired.pipelines.map((p) => p.name).join(", ")}) but the serving runtime is not loaded: import "fstore" (adapters/serving)`,
        );
      await ext.checkPlan(desired, this);
    }
    this.reloadNow();
    return diff(this.registry.load(this.project), desired);
  }

  /**
   * Apply the repo: all-or-nothing. Online tables are created first (idempotent), then the registry
   * changes in one transaction, then storage of removed views is dropped.
   */
  async apply(): Promise<Plan> {
    const plan = await this.plan();
    const online = await this.onlineStore();
    await online.update(this.project, plan.onlineKeep, []);
    this.registry.commit(this.project, plan.change);
    if (plan.onlineDrop.length) await online.update(this.project, plan.onlineKeep, plan.onlineDrop);
    this.reloadNow();
    return plan;
  }

  async teardown(): Promise<void> {
    const online = await this.onlineStore();
    await online.teardown(this.project, this.reloadNow().featureViews);
    this.registry.teardown(this.project);
    this.reloadNow();
  }

  // ------------------------------------------------------------ materialize

  private viewsToMaterialize(names?: string[]): FeatureViewSpec[] {
    const all = this.reloadNow().featureViews;
    if (!names || names.length === 0) return all.filter((v) => v.online);
    return names.map((n) => {
      const v = all.find((x) => x.name === n);
      if (!v)
        throw new NotFoundError(
          `feature view "${n}" is not in the registry of project "${this.project}" (known: ${all.map((x) => x.name).join(", ") || "none"})`,
        );
      if (!v.online) throw new ValidationError(`feature view "${n}" has online: false; it cannot be materialized`);
      return v;
    });
  }

  async materialize(start: TimeInput, end: TimeInput, opts: MaterializeOptions = {}): Promise<MaterializeReport> {
    const startMs = toEpochMs(start, "start");
    const endMs = toEpochMs(end, "end");
    if (startMs > endMs)
      throw new ValidationError(`materialize: start ${isoUtc(startMs)} is after end ${isoUtc(endMs)}`);
    const views = this.viewsToMaterialize(opts.views);
    return this.runMaterialize(
      views.map((view) => ({ view, startMs, endMs })),
      opts,
    );
  }

  /** Each view from the end of its latest interval (or end - ttl; ttl 0: end - 52 weeks) to `end`. */
  async materializeIncremental(end: TimeInput, opts: MaterializeOptions = {}): Promise<MaterializeReport> {
    const endMs = toEpochMs(end, "end");
    const views = this.viewsToMaterialize(opts.views);
    const intervals = this.cached.materializations;
    const jobs = views.map((view) => {
      const last = intervals.filter((i) => i.view === view.name).reduce((m, i) => Math.max(m, i.end), -Infinity);
      const startMs = Number.isFinite(last)
        ? last
        : endMs - (view.ttlSeconds > 0 ? view.ttlSeconds : 52 * 7 * 86400) * 1000;
      return { view, startMs, endMs };
    });
    // checked for every view before any is written: one view past `end` fails the whole run
    for (const { view, startMs } of jobs)
      if (startMs > endMs)
        throw new ValidationError(
          `materialize-incremental: end ${isoUtc(endMs)} is before feature view "${view.name}"'s start ${isoUtc(startMs)} (where its last materialization ended); give a later end, or use materialize START END`,
        );
    return this.runMaterialize(jobs, opts);
  }

  private async runMaterialize(
    jobs: Array<{ view: FeatureViewSpec; startMs: number; endMs: number }>,
    opts: MaterializeOptions,
  ): Promise<MaterializeReport> {
    let report: MaterializeReport;
    try {
      report = await materializeViews(jobs, {
        project: this.project,
        offline: await this.offlineStore(),
        online: await this.onlineStore(),
        progress: opts.progress ?? silentProgress,
        batchSize: opts.batchSize,
        mergeRows: opts.mergeRows ?? defaultMergeRows(this.config.offlineStore.memoryLimitBytes),
        recordInterval: (interval) => this.registry.addMaterialization(this.project, interval),
      });
    } catch (e) {
      // DuckDB's own message names neither the setting nor the way out
      if (/Out of Memory Error/i.test(errorMessage(e))) {
        const limit = this.config.offlineStore.memoryLimit;
        throw new FstoreError(
          `materialize: the offline store (DuckDB) ran out of memory${limit ? ` under offline_store.memory_limit ${limit}` : ""}: raise offline_store.memory_limit in ${CONFIG_FILE}, or merge fewer rows at once (MaterializeOptions.mergeRows). DuckDB said: ${errorMessage(e)}`,
          { cause: e },
        );
      }
      throw e;
    }
    this.reloadNow();
    return report;
  }

  // ------------------------------------------------------------ online

  /** resolveFeatures, memoised per registry version */
  private resolve(features: string[] | string, fullFeatureNames: boolean): ResolvedFeatures {
    const reg = this.contents();
    const tag = fullFeatureNames ? 1 : 0;
    if (typeof features === "string") {
      const key = `${tag}${features}`;
      let r = this.resolvedServices.get(key);
      if (!r) {
        r = resolveFeatures(reg, features, fullFeatureNames);
        if (this.resolvedServices.size > 1000) this.resolvedServices.clear();
        this.resolvedServices.set(key, r);
      }
      return r;
    }
    let r = Array.isArray(features) ? this.resolved.get(features, tag) : undefined;
    if (!r) {
      r = resolveFeatures(reg, features, fullFeatureNames);
      this.resolved.set(features, tag, r);
    }
    return r;
  }

  async getOnlineFeatures(req: OnlineFeaturesRequest): Promise<OnlineResponse> {
    const resolved = this.resolve(req.features, req.fullFeatureNames ?? false);
    const entityInput = req.entities ?? req.entityRows;
    if (!entityInput) throw new ValidationError(`entities: give the entity rows (e.g. {"user_id": [1, 2]})`);
    const { length, columns } = toColumns(entityInput, "entities");
    for (const { view } of resolved.views)
      if (!view.online)
        throw new ValidationError(`feature view "${view.name}" has online: false; read it with getHistoricalFeatures`);
    // one read group per set of join keys: the store reads each entity once for all the group's views
    const groups: OnlineReadGroup[] = resolved.groups.map(({ joinKeys, views }) => {
      const keyCols = joinKeys.map((name) => {
        const col = columns[name];
        if (!col)
          throw new ValidationError(
            `entities: join key "${name}" is missing (feature view "${views[0].view.name}" is keyed by ${joinKeys.join(", ")})`,
          );
        return col;
      });
      const entityKeys = new Array<unknown[]>(length);
      for (let i = 0; i < length; i++) entityKeys[i] = keyCols.map((col) => col[i]);
      return { entityKeys, views };
    });
    // an open store is used without awaiting its promise again (a microtask hop less per read)
    const online = this.openOnline ?? (await this.onlineStore());
    const answers = await online.read(this.project, groups);
    const entityColumns = Object.entries(columns).map(([name, values]) => ({ name, values }));
    const results = resolved.views.map((rv) => answers[rv.group][rv.slot]);
    return new OnlineResponse(entityColumns, resolved.views, results, length, Date.now());
  }

  /**
   * The entities nearest `query` in the index of the one vector-indexed field among `features`, with the
   * other features (views keyed by the same entity) and a `distance` column, nearest first (vector_search.ts).
   */
  async retrieveOnlineDocuments(req: RetrieveOnlineDocumentsRequest): Promise<OnlineResponse> {
    if (!Array.isArray(req?.features))
      throw new ValidationError(`features: expected a list of "view:feature" references, one of a vector field`);
    return retrieveOnlineDocuments(
      {
        project: this.project,
        online: this.openOnline ?? (await this.onlineStore()),
        resolved: this.resolve(req.features, false),
        maxTopK: this.maxTopK,
      },
      req,
    );
  }

  /** Write fresh rows for a view straight to the online store (checked against the view's schema). */
  async writeToOnlineStore(viewName: string, rows: RowsInput): Promise<number> {
    const view = this.getFeatureView(viewName);
    if (!view.online) throw new ValidationError(`feature view "${viewName}" has online: false`);
    const batch = toOnlineBatch(view, rows, `write to "${viewName}"`);
    if (batch.length === 0) return 0;
    return (await this.onlineStore()).write(this.project, view, batch);
  }

  /**
   * Push rows to every view fed by a push source: online, offline (its batch source) or both. With
   * `mode: "append"` (online only) each row is one event whose values are appended to the stored lists of its
   * key, keeping the latest `maxLength` (see stores/append.ts).
   */
  async push(pushSourceName: string, rows: RowsInput, opts: PushOptions = {}): Promise<number> {
    return pushRows(
      {
        project: this.project,
        contents: this.contents(),
        online: () => this.onlineStore(),
        offline: () => this.offlineStore(),
        appendQueue: this.appendQueue,
      },
      pushSourceName,
      rows,
      opts,
    );
  }

  // ------------------------------------------------------------ offline

  async getHistoricalFeatures(req: HistoricalFeaturesRequest): Promise<RetrievalJob> {
    const resolved = this.resolve(req.features, req.fullFeatureNames ?? false);
    return (await this.offlineStore()).getHistoricalFeatures({
      entityDf: req.entityDf,
      views: resolved.views,
      timestampColumn: req.timestampColumn,
      filterByCreatedTimestamp: req.filterByCreatedTimestamp,
    });
  }

  // ------------------------------------------------------------ recommend

  /** Run a registered pipeline for some entity rows (the runtime lives in adapters/serving). */
  async recommend(req: RecommendRequest): Promise<RecommendResponse> {
    if (!this.serving) {
      const ext = servingExtension();
      if (!ext)
        throw new FstoreError(`recommend: the serving runtime is not loaded: import "fstore" (adapters/serving)`);
      this.serving = ext.open(this);
    }
    return this.serving.recommend(req);
  }

  /**
   * The list `fs recommend batch` stored for one entity (under "<keyPrefix><id>", default "USER:"), parsed: the
   * /recommend result with `pipeline` and `created_at`; null when none is stored. `from` defaults to the online
   * store's type; `redis` is the connection string when the online store is not Redis.
   */
  async getPrecomputedRecommendations(
    entity: string | number | bigint,
    opts: PrecomputedReadOptions = {},
  ): Promise<Record<string, unknown> | null> {
    return this.precomputed.read(this.config, entity, opts);
  }

  /** The serving runtime of this store, when a recommend made one. */
  servingRuntime(): RecommendService | null {
    return this.serving;
  }

  // ------------------------------------------------------------ lifecycle

  /** Throws when the registry or the online store does not answer. */
  async health(): Promise<void> {
    this.registry.version(this.project);
    await (await this.onlineStore()).health();
  }

  async close(): Promise<void> {
    const serving = this.serving;
    this.serving = null;
    await serving?.close(); // flushes feature logs while the stores are still open
    await this.precomputed.close();
    const online = this.online;
    const offline = this.offline;
    this.online = null;
    this.openOnline = null;
    this.offline = null;
    await Promise.allSettled([online?.then((s) => s.close()), offline?.then((s) => s.close())]);
    this.registry.close();
  }
}
