// The route table: each endpoint's method, auth, body checks and its call into the FeatureStore facade.
import { performance } from "node:perf_hooks";
import type { ValidateFunction } from "ajv";
import { errorMessage, quoteValue } from "../common/errors.js";
import { withTimeout } from "../common/timeout.js";
import type { VectorMetric } from "../registry/types.js";
import type { FeatureStore, PushTarget } from "../stores/feature_store.js";
import { BodyPrefixes } from "./body_prefix.js";
import { HEALTH_TIMEOUT_MS, SERVER_MATERIALIZE_BATCH_ROWS } from "./defaults.js";
import { HttpError, type Json } from "./http_io.js";
import type { BufferPool } from "./json_bytes.js";
import type { Metrics } from "./metrics.js";
import type { PlanError, RegistrySchemas } from "./plans.js";
import { feastJSONBytes } from "./response_bytes.js";
import {
  GET_ONLINE_FEATURES,
  MATERIALIZE,
  MATERIALIZE_INCREMENTAL,
  PUSH,
  RECOMMEND,
  SEARCH,
  WRITE_TO_ONLINE_STORE,
  check,
  newAjv,
} from "./schemas.js";

/** What the server needs of a FeatureStore (a FeatureStore, or anything shaped like one). */
export type ServedStore = Pick<
  FeatureStore,
  | "config"
  | "contents"
  | "refreshRegistry"
  | "getOnlineFeatures"
  | "retrieveOnlineDocuments"
  | "push"
  | "writeToOnlineStore"
  | "materialize"
  | "materializeIncremental"
  | "health"
  | "recommend"
  | "close"
  | "getPrecomputedRecommendations"
>;

export interface RouteAnswer {
  status?: number;
  body: string | Buffer;
  contentType?: string;
  pooled?: boolean;
}

export interface Route {
  method: "GET" | "POST";
  /** bodies parsed with remembered starts (get-online-features: the same feature list every time) */
  prefixes?: BodyPrefixes;
  /** false for /health: answers without the bearer token */
  auth: boolean;
  /** `rest`: the path after a prefix route's key (a key ending in "/"); `query`: the URL's query string */
  run(body: Json | undefined, at: { rest: string; query: URLSearchParams }): Promise<RouteAnswer>;
}

/** What the routes use of the server around them. */
export interface RouteContext {
  store: ServedStore;
  metrics: Metrics;
  /** the compiled registry-derived schemas of the store's current registry */
  schemas(): RegistrySchemas;
  /** answer buffers of get-online-features */
  answers: BufferPool;
  limits: RequestLimits;
}

/** Bounds on one get-online-features request, so that no request can take the process for long. */
export interface RequestLimits {
  /** entity rows */
  maxEntityRows: number;
  /** entity rows x features */
  maxFeatureValues: number;
}

function planFailed<T extends object>(p: T | PlanError): p is PlanError {
  return "error" in p;
}

function firstColumnLength(cols: Record<string, unknown[]>): number {
  for (const k in cols) return cols[k].length;
  return 0;
}

/** The longest entity column (lengths are checked equal later, by a check that walks every value). */
function longestColumn(cols: Record<string, unknown[]>): number {
  let n = 0;
  for (const k in cols) n = Math.max(n, cols[k].length);
  return n;
}

export const HEALTH_LATE = `the registry or the online store did not answer within ${HEALTH_TIMEOUT_MS} ms`;

export function buildRoutes(ctx: RouteContext): Map<string, Route> {
  const { store, metrics, answers, limits } = ctx;
  const observeRead = metrics.histogram(
    "fstore_online_read_duration_seconds",
    "Online feature read latency (FeatureStore.getOnlineFeatures: registry lookup + online store read + response build)",
  );
  const countReadRows = metrics.counter("fstore_online_read_rows_total", "Entity rows read from the online store");

  const ajv = newAjv();
  const v = {
    getOnline: ajv.compile(GET_ONLINE_FEATURES),
    push: ajv.compile(PUSH),
    write: ajv.compile(WRITE_TO_ONLINE_STORE),
    materialize: ajv.compile(MATERIALIZE),
    materializeIncremental: ajv.compile(MATERIALIZE_INCREMENTAL),
    recommend: ajv.compile(RECOMMEND),
    search: ajv.compile(SEARCH),
  };
  const validate = (fn: ValidateFunction, data: unknown, prefix = ""): void => {
    const err = check(fn, data, prefix);
    if (err) throw new HttpError(400, err);
  };
  const ok = (body: unknown, status = 200) => ({ status, body: JSON.stringify(body) });
  // a write holds the process for the encoding and the store's write of every row, as a read does
  const checkDfRows = (df: Record<string, unknown[]>, what: string): void => {
    const rows = longestColumn(df);
    if (rows > limits.maxEntityRows)
      throw new HttpError(
        413,
        `df: ${rows} rows is over the limit of ${limits.maxEntityRows} per request (maxEntityRows, fs serve --max-entity-rows): split the ${what}`,
      );
  };
  const searchRoute: Route = {
    method: "POST",
    auth: true,
    async run(body) {
      validate(v.search, body);
      const b = body as {
        features: string[];
        query: number[];
        top_k: number;
        distance_metric?: VectorMetric;
        exclude?: unknown[];
        filter?: string;
        exact?: boolean;
      };
      const resp = await store.retrieveOnlineDocuments({
        features: b.features,
        query: b.query,
        topK: b.top_k,
        distanceMetric: b.distance_metric,
        exclude: b.exclude,
        filter: b.filter,
        exact: b.exact,
      });
      return { body: feastJSONBytes(resp, answers), pooled: true };
    },
  };

  return new Map<string, Route>([
    ["/search", searchRoute],
    // Feast's older name of the same search
    ["/retrieve-online-documents", searchRoute],
    [
      "/recommend",
      {
        method: "POST",
        auth: true,
        async run(body) {
          validate(v.recommend, body);
          const b = body as {
            pipeline: string;
            entities?: Record<string, unknown[]>;
            session?: Record<string, unknown[]>;
            top_k?: number;
            seed?: number;
            debug?: boolean;
          };
          if (b.entities && longestColumn(b.entities) > limits.maxEntityRows)
            throw new HttpError(413, `entities: more than ${limits.maxEntityRows} rows in one request`);
          const answer = await store.recommend({
            pipeline: b.pipeline,
            entities: b.entities,
            session: b.session,
            topK: b.top_k,
            seed: b.seed,
            debug: b.debug,
          });
          return ok(answer);
        },
      },
    ],
    [
      "/get-online-features",
      {
        method: "POST",
        auth: true,
        prefixes: new BodyPrefixes(),
        async run(body) {
          validate(v.getOnline, body);
          const b = body as {
            features?: string[];
            feature_service?: string;
            entities: Record<string, unknown[]>;
            full_feature_names?: boolean;
          };
          const plan = ctx.schemas().online(b.features, b.feature_service);
          if (planFailed(plan)) throw new HttpError(plan.status, plan.error);
          const rows = longestColumn(b.entities);
          if (rows > limits.maxEntityRows)
            throw new HttpError(
              413,
              `entities: ${rows} entity rows is over the limit of ${limits.maxEntityRows} per request (maxEntityRows, fs serve --max-entity-rows): split the request`,
            );
          if (rows * plan.features > limits.maxFeatureValues)
            throw new HttpError(
              413,
              `entities: ${rows} entity rows x ${plan.features} features = ${rows * plan.features} feature values is over the limit of ${limits.maxFeatureValues} per request (maxFeatureValues, fs serve --max-feature-values): split the request`,
            );
          validate(plan.validateEntities, b.entities, "entities");
          const t = performance.now();
          const resp = await store.getOnlineFeatures({
            features: b.features ?? b.feature_service!,
            entities: b.entities,
            fullFeatureNames: b.full_feature_names,
          });
          observeRead({}, (performance.now() - t) / 1000);
          const json = feastJSONBytes(resp, answers);
          countReadRows({}, firstColumnLength(b.entities));
          return { body: json, pooled: true };
        },
      },
    ],
    [
      "/push",
      {
        method: "POST",
        auth: true,
        async run(body) {
          validate(v.push, body);
          const b = body as {
            push_source_name: string;
            df: Record<string, unknown[]>;
            to?: PushTarget;
            mode?: "replace" | "append";
            max_length?: number;
          };
          checkDfRows(b.df, "push");
          const plan = ctx.schemas().push(b.push_source_name);
          if (planFailed(plan)) throw new HttpError(plan.status, plan.error);
          // append rows carry one event's scalars for list features: the library checks them per event
          if (b.mode !== "append") validate(plan.validateDf, b.df, "df");
          const written = await store.push(b.push_source_name, b.df, {
            to: b.to ?? "online",
            mode: b.mode,
            maxLength: b.max_length,
          });
          return ok({ status: "ok", rows: firstColumnLength(b.df), written });
        },
      },
    ],
    [
      "/write-to-online-store",
      {
        method: "POST",
        auth: true,
        async run(body) {
          validate(v.write, body);
          const b = body as { feature_view_name: string; df: Record<string, unknown[]> };
          checkDfRows(b.df, "write");
          const plan = ctx.schemas().write(b.feature_view_name);
          if (planFailed(plan)) throw new HttpError(plan.status, plan.error);
          validate(plan.validateDf, b.df, "df");
          const written = await store.writeToOnlineStore(b.feature_view_name, b.df);
          return ok({ status: "ok", rows: firstColumnLength(b.df), written });
        },
      },
    ],
    [
      "/materialize",
      {
        method: "POST",
        auth: true,
        async run(body) {
          validate(v.materialize, body);
          const b = body as { start_ts: string | number; end_ts: string | number; feature_views?: string[] };
          const bad = ctx.schemas().checkViewNames(b.feature_views);
          if (bad) throw new HttpError(bad.status, bad.error);
          const report = await store.materialize(b.start_ts, b.end_ts, {
            views: b.feature_views,
            batchSize: SERVER_MATERIALIZE_BATCH_ROWS,
          });
          return ok({ status: "ok", ...report });
        },
      },
    ],
    [
      "/materialize-incremental",
      {
        method: "POST",
        auth: true,
        async run(body) {
          validate(v.materializeIncremental, body);
          const b = body as { end_ts: string | number; feature_views?: string[] };
          const bad = ctx.schemas().checkViewNames(b.feature_views);
          if (bad) throw new HttpError(bad.status, bad.error);
          const report = await store.materializeIncremental(b.end_ts, {
            views: b.feature_views,
            batchSize: SERVER_MATERIALIZE_BATCH_ROWS,
          });
          return ok({ status: "ok", ...report });
        },
      },
    ],
    [
      "/health",
      {
        method: "GET",
        auth: false,
        async run() {
          try {
            await withTimeout(store.health(), HEALTH_TIMEOUT_MS, HEALTH_LATE);
          } catch (e) {
            throw new HttpError(503, `unhealthy: ${errorMessage(e)}`);
          }
          return ok({ status: "ok", project: store.config.project });
        },
      },
    ],
    [
      "/recommendations/",
      {
        method: "GET",
        auth: true,
        async run(_body, at) {
          let id: string;
          try {
            id = decodeURIComponent(at.rest);
          } catch {
            throw new HttpError(400, `/recommendations/{id}: the id ${quoteValue(at.rest)} is not URL-encoded text`);
          }
          if (id === "" || id.includes("/"))
            throw new HttpError(
              400,
              `/recommendations/{id}: expected one entity id after the slash, got ${quoteValue(id)}`,
            );
          const keyPrefix = at.query.get("key_prefix") ?? undefined;
          const list = await store.getPrecomputedRecommendations(id, { keyPrefix });
          if (!list)
            throw new HttpError(
              404,
              `no precomputed recommendations under ${quoteValue(`${keyPrefix ?? "USER:"}${id}`)} (run "fs recommend batch")`,
            );
          return ok(list);
        },
      },
    ],
    [
      "/metrics",
      {
        method: "GET",
        auth: true,
        async run() {
          return { body: metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8" };
        },
      },
    ],
  ]);
}
