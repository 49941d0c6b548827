// The HTTP feature server: Feast's REST shapes over the FeatureStore facade, on plain node:http.
// The hot path (get-online-features) is: read body, JSON.parse, two compiled schema checks, the facade
// call, JSON.stringify. No framework, no per-request compile, no registry read.

import { createHash, timingSafeEqual } from "node:crypto";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import type { Writable } from "node:stream";
import type { ValidateFunction } from "ajv";
import { FstoreError, NotFoundError, ValidationError, errorMessage } from "../common/errors.js";
import { FeatureStore, type PushTarget } from "../stores/feature_store.js";
import type { VectorMetric } from "../registry/types.js";
import { BufferPool } from "./json_bytes.js";
import { feastJSONBytes } from "./response_bytes.js";
import { type LogLevel, type Logger, errorFields, jsonLogger } from "./log.js";
import { BodyPrefixes } from "./body_prefix.js";
import { Metrics } from "./metrics.js";
import { type PlanError, RegistrySchemas } from "./plans.js";
import {
  GET_ONLINE_FEATURES,
  MATERIALIZE,
  MATERIALIZE_INCREMENTAL,
  PUSH,
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
  | "close"
>;

export interface FeatureServerOptions {
  /** a store to serve (the caller keeps owning it: close() does not close it)... */
  store?: ServedStore;
  /** ...or a feature repository to open (closed by close()) */
  repoPath?: string;
  /** default 6566; 0 picks a free port */
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
  /** bearer token required on every endpoint but /health; default env FSTORE_AUTH_TOKEN; "" = no auth */
  authToken?: string;
  /** request bodies above this answer 413; default 16 MiB */
  maxBodyBytes?: number;
  /** background registry refresh period; default registry_ttl_sec of feature_store.yaml (10 s); 0 = never refresh (Feast) */
  registryTtlSeconds?: number;
  /** default "info" (env FSTORE_LOG_LEVEL) */
  logLevel?: LogLevel;
  /** where JSON log lines go; default stdout */
  logStream?: Writable;
  /** in-flight requests get this long to finish on close(); default 10 s */
  shutdownTimeoutMs?: number;
}

export interface FeatureServer {
  /** e.g. "http://127.0.0.1:6566" */
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Stop accepting, let in-flight requests finish, close the store if the server opened it. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

type Json = Record<string, unknown>;

interface Route {
  method: "GET" | "POST";
  /** bodies parsed with remembered starts (get-online-features: the same feature list every time) */
  prefixes?: BodyPrefixes;
  /** false for /health: answers without the bearer token */
  auth: boolean;
  run(
    body: Json | undefined,
  ): Promise<{ status?: number; body: string | Buffer; contentType?: string; pooled?: boolean }>;
}

const JSON_TYPE = "application/json";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_PORT,
  SERVER_MATERIALIZE_BATCH_ROWS,
  SERVER_OFFLINE_THREADS,
} from "./defaults.js";
export { DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT } from "./defaults.js";

function planFailed<T extends object>(p: T | PlanError): p is PlanError {
  return "error" in p;
}

function bearerDigest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

export async function startFeatureServer(opts: FeatureServerOptions): Promise<FeatureServer> {
  if (!opts.store && !opts.repoPath) throw new ValidationError("startFeatureServer: give a store or a repoPath");
  const ttlSeconds = opts.registryTtlSeconds ?? opts.store?.config.registryTtlSeconds;
  // A store we open never reads the registry inside a request: the timer below refreshes it.
  const ownsStore = !opts.store;
  const store: ServedStore =
    opts.store ??
    (await FeatureStore.open(opts.repoPath!, {
      registryTtlSeconds: Infinity,
      defaultOfflineThreads: SERVER_OFFLINE_THREADS,
    }));
  const registryTtl = ttlSeconds ?? store.config.registryTtlSeconds;
  const logger = jsonLogger(opts.logLevel ?? envLogLevel(), opts.logStream);
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const token = opts.authToken ?? process.env.FSTORE_AUTH_TOKEN ?? "";
  const expectedAuth = token ? bearerDigest(`Bearer ${token}`) : null;

  // ---------------------------------------------------------------- metrics
  const metrics = new Metrics();
  const countRequest = metrics.counter("fstore_http_requests_total", "HTTP requests by endpoint, method and status");
  const observeRequest = metrics.histogram(
    "fstore_http_request_duration_seconds",
    "HTTP request latency by endpoint and status, from first byte to response end",
  );
  const observeRead = metrics.histogram(
    "fstore_online_read_duration_seconds",
    "Online feature read latency (FeatureStore.getOnlineFeatures: registry lookup + online store read + response build)",
  );
  const countReadRows = metrics.counter("fstore_online_read_rows_total", "Entity rows read from the online store");
  const countReload = metrics.counter(
    "fstore_registry_reloads_total",
    "Registry reloads after a change by another process, by outcome",
  );
  let inFlight = 0;
  const startedAt = Date.now();
  metrics.gauge("fstore_http_requests_in_flight", "Requests being served", () => inFlight);
  metrics.gauge("fstore_uptime_seconds", "Seconds since the server started", () => (Date.now() - startedAt) / 1000);

  // ---------------------------------------------------------------- validation
  const staticAjv = newAjv();
  const v = {
    getOnline: staticAjv.compile(GET_ONLINE_FEATURES),
    push: staticAjv.compile(PUSH),
    write: staticAjv.compile(WRITE_TO_ONLINE_STORE),
    materialize: staticAjv.compile(MATERIALIZE),
    materializeIncremental: staticAjv.compile(MATERIALIZE_INCREMENTAL),
    search: staticAjv.compile(SEARCH),
  };
  // One ajv per registry snapshot, so compiled schemas of an old registry are dropped with it.
  let schemas = new RegistrySchemas(store.contents(), newAjv());
  const currentSchemas = (): RegistrySchemas => {
    const c = store.contents();
    if (c !== schemas.contents) schemas = new RegistrySchemas(c, newAjv());
    return schemas;
  };
  const validate = (fn: ValidateFunction, data: unknown, prefix = ""): void => {
    const err = check(fn, data, prefix);
    if (err) throw new HttpError(400, err);
  };

  // ---------------------------------------------------------------- registry refresh
  const refresh = () => {
    try {
      if (store.refreshRegistry()) {
        countReload({ outcome: "changed" });
        currentSchemas();
        logger.log("info", "registry reloaded", { project: store.config.project });
      }
    } catch (e) {
      countReload({ outcome: "failed" });
      logger.log("warn", "registry refresh failed; serving the cached registry", errorFields(e));
    }
  };
  const refreshTimer =
    registryTtl > 0 && Number.isFinite(registryTtl) ? setInterval(refresh, registryTtl * 1000) : undefined;
  refreshTimer?.unref();

  // ---------------------------------------------------------------- routes
  const ok = (body: unknown, status = 200) => ({ status, body: JSON.stringify(body) });
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
  const routes = new Map<string, Route>([
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
          const plan = currentSchemas().online(b.features, b.feature_service);
          if (planFailed(plan)) throw new HttpError(plan.status, plan.error);
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
          const b = body as { push_source_name: string; df: Record<string, unknown[]>; to?: PushTarget };
          const plan = currentSchemas().push(b.push_source_name);
          if (planFailed(plan)) throw new HttpError(plan.status, plan.error);
          validate(plan.validateDf, b.df, "df");
          const written = await store.push(b.push_source_name, b.df, { to: b.to ?? "online" });
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
          const plan = currentSchemas().write(b.feature_view_name);
          if (planFailed(plan)) throw new HttpError(plan.status, plan.error);
          validate(plan.validateDf, b.df, "df");
          const written = await store.writeToOnlineStore(b.feature_view_name, b.df);
          return ok({ status: "ok", rows: firstColumnLength(b.df), written });
        },
      },
    ],
    ["/search", searchRoute],
    // Feast's older name of the same search
    ["/retrieve-online-documents", searchRoute],
    [
      "/materialize",
      {
        method: "POST",
        auth: true,
        async run(body) {
          validate(v.materialize, body);
          const b = body as { start_ts: string | number; end_ts: string | number; feature_views?: string[] };
          const bad = currentSchemas().checkViewNames(b.feature_views);
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
          const bad = currentSchemas().checkViewNames(b.feature_views);
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
            await store.health();
          } catch (e) {
            throw new HttpError(503, `unhealthy: ${errorMessage(e)}`);
          }
          return ok({ status: "ok", project: store.config.project });
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
  const endpoints = [...routes].map(([p, r]) => `${r.method} ${p}`).join(", ");

  // ---------------------------------------------------------------- request handling
  let closing = false;
  let onDrained: (() => void) | undefined;

  // answer buffers, reused once the socket has written them (see BufferPool)
  const answers = new BufferPool();
  const send = (
    res: ServerResponse,
    status: number,
    body: string | Buffer,
    contentType = JSON_TYPE,
    extra?: Record<string, string>,
    pooled = false,
  ) => {
    const headers: Record<string, string | number> = {
      "content-type": contentType,
      "content-length": typeof body === "string" ? Buffer.byteLength(body) : body.length,
    };
    if (closing) headers.connection = "close";
    if (extra) Object.assign(headers, extra);
    res.writeHead(status, headers);
    // given back only after a write that completed: a failed one may still be held by the socket
    if (pooled && typeof body !== "string") res.end(body, () => res.writableFinished && answers.give(body));
    else res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now();
    inFlight++;
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const route = routes.get(path);
    const endpoint = route ? path : "other";
    let status = 200;
    let failure: unknown;
    try {
      if (!route) throw new HttpError(404, `no endpoint ${req.method} ${path} (endpoints: ${endpoints})`);
      if (req.method !== route.method)
        throw new HttpError(405, `${path} takes ${route.method}, got ${req.method}`, { allow: route.method });
      if (expectedAuth && route.auth) {
        const h = req.headers.authorization;
        if (typeof h !== "string" || !timingSafeEqual(bearerDigest(h), expectedAuth)) {
          throw new HttpError(401, 'missing or wrong bearer token: send "Authorization: Bearer <token>"', {
            "www-authenticate": 'Bearer realm="fstore"',
          });
        }
      }
      const body = route.method === "POST" ? await readJson(req, maxBody, route.prefixes) : undefined;
      const out = await route.run(body);
      status = out.status ?? 200;
      send(res, status, out.body, out.contentType, undefined, out.pooled);
    } catch (e) {
      failure = e;
      let headers: Record<string, string> | undefined;
      if (e instanceof HttpError) {
        status = e.status;
        headers = e.headers;
      } else if (e instanceof NotFoundError) status = 404;
      else if (e instanceof ValidationError) status = 400;
      else status = 500;
      if (status === 413) headers = { ...headers, connection: "close" };
      const msg = status === 500 ? `internal error: ${errorMessage(e)}` : errorMessage(e);
      if (!res.headersSent) send(res, status, JSON.stringify({ error: msg }), JSON_TYPE, headers);
      else res.destroy();
    } finally {
      const seconds = (performance.now() - t0) / 1000;
      const statusLabel = String(status);
      countRequest({ endpoint, method: req.method ?? "", status: statusLabel });
      observeRequest({ endpoint, status: statusLabel }, seconds);
      if (status >= 500) {
        logger.log("error", "request failed", {
          method: req.method,
          path,
          status,
          duration_ms: seconds * 1000,
          ...errorFields(failure),
        });
      } else if (logger.enabled("info")) {
        const fields: Record<string, unknown> = {
          method: req.method,
          path,
          status,
          duration_ms: Math.round(seconds * 1e6) / 1000,
        };
        if (failure !== undefined) fields.error = errorMessage(failure);
        logger.log("info", "request", fields);
      }
      inFlight--;
      if (closing && inFlight === 0) onDrained?.();
    }
  };

  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => void handle(req, res));
  server.on("clientError", (err, socket) => {
    // malformed HTTP (not JSON): answer 400 when the socket can still take it
    if (socket.writable)
      socket.end(
        'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"error":"malformed HTTP request"}',
      );
    logger.log("info", "client error", { error: errorMessage(err) });
  });
  // Open the online store before the first request (concurrent first requests would each open one).
  try {
    await store.health();
  } catch (e) {
    logger.log("warn", "the online store does not answer yet; /health reports 503 until it does", errorFields(e));
  }
  const port = opts.port ?? DEFAULT_PORT;
  const host = opts.host ?? "127.0.0.1";
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    if (refreshTimer) clearInterval(refreshTimer);
    if (ownsStore) await store.close();
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "EADDRINUSE" ? "the port is in use (pick another with --port, or 0 for a free one)" : errorMessage(e);
    throw new FstoreError(`feature server: cannot listen on ${host}:${port}: ${why}`, { cause: e });
  }
  const addr = server.address() as AddressInfo;
  const hostForUrl = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const url = `http://${hostForUrl}:${addr.port}`;
  logger.log("info", "feature server listening", {
    url,
    pid: process.pid,
    project: store.config.project,
    auth: Boolean(expectedAuth),
    registry_ttl_sec: registryTtl,
    online_store: store.config.onlineStore.type,
  });

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      if (refreshTimer) clearInterval(refreshTimer);
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const drained = inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (onDrained = resolve));
      const timeoutMs = opts.shutdownTimeoutMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
      const forced = await Promise.race([drained.then(() => false), timedOut]);
      if (forced)
        logger.log("warn", "shutdown timeout: closing connections with requests in flight", { in_flight: inFlight });
      server.closeAllConnections();
      await stopped;
      clearTimeout(timer);
      if (ownsStore) await store.close();
      logger.log("info", "feature server stopped", { url });
      logger.flush();
    })();
    return closed;
  };

  return { url, port: addr.port, server, metrics, logger, close };
}

function envLogLevel(): LogLevel {
  const l = process.env.FSTORE_LOG_LEVEL;
  return l === "debug" || l === "info" || l === "warn" || l === "error" || l === "silent" ? l : "info";
}

function firstColumnLength(cols: Record<string, unknown[]>): number {
  for (const k in cols) return cols[k].length;
  return 0;
}

/** The request body as a JSON object; 413 past `limit` bytes, 400 for anything but a JSON object. */
function readJson(req: IncomingMessage, limit: number, prefixes?: BodyPrefixes): Promise<Json> {
  const declared = Number(req.headers["content-length"]);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new HttpError(413, `body: ${declared} bytes is over the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new HttpError(413, `body: over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("error", reject);
    // a client that goes away mid-body: settle, so the request is not counted in flight forever
    req.on("close", () => {
      if (!req.complete) reject(new HttpError(400, "body: the client closed the connection before the body ended"));
    });
    req.on("end", () => {
      if (over) return;
      const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      let parsed: unknown;
      try {
        parsed = prefixes ? prefixes.parse(bytes) : JSON.parse(bytes.toString("utf8"));
      } catch (e) {
        if (bytes.toString("utf8").trim() === "")
          return reject(new HttpError(400, "body: expected a JSON object, got an empty body"));
        return reject(new HttpError(400, `body: malformed JSON: ${errorMessage(e)}`));
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        return reject(
          new HttpError(
            400,
            `body: expected a JSON object, got ${Array.isArray(parsed) ? "an array" : JSON.stringify(parsed)}`,
          ),
        );
      }
      resolve(parsed as Json);
    });
  });
}
