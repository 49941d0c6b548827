// The HTTP feature server: Feast's REST shapes over the FeatureStore facade, on plain node:http.
// This file wires the server (options, metrics, registry refresh, auth, logging, shutdown); the endpoints are
// in routes.ts and body reading and answering in http_io.ts.

import { createHash, timingSafeEqual } from "node:crypto";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import type { Writable } from "node:stream";
import { FstoreError, ValidationError, errorMessage } from "../common/errors.js";
import { withTimeout } from "../common/timeout.js";
import { FeatureStore } from "../stores/feature_store.js";
import { recommenderFor } from "../adapters/serving/index.js";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_ENTITY_ROWS,
  DEFAULT_MAX_FEATURE_VALUES,
  DEFAULT_PORT,
  HEALTH_TIMEOUT_MS,
  SERVER_OFFLINE_THREADS,
} from "./defaults.js";
import { CLIENT_CLOSED, HttpError, boundedMessage, checkJsonBody, errorAnswer, readJson, send } from "./http_io.js";
import { BufferPool } from "./json_bytes.js";
import { type LogLevel, type Logger, errorFields, jsonLogger } from "./log.js";
import { Metrics } from "./metrics.js";
import { RegistrySchemas } from "./plans.js";
import { HEALTH_LATE, type ServedStore, buildRoutes } from "./routes.js";
import { newAjv } from "./schemas.js";

export {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_ENTITY_ROWS,
  DEFAULT_MAX_FEATURE_VALUES,
  DEFAULT_PORT,
} from "./defaults.js";
export type { ServedStore } from "./routes.js";

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
  /** get-online-features asking more entity rows, or a push or write of more rows, answers 413; default 10,000 */
  maxEntityRows?: number;
  /** get-online-features asking more entity rows x features answers 413; default 100,000 */
  maxFeatureValues?: number;
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

function bearerDigest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

export async function startFeatureServer(opts: FeatureServerOptions): Promise<FeatureServer> {
  if (!opts.store && !opts.repoPath) throw new ValidationError("startFeatureServer: give a store or a repoPath");
  const limits = {
    maxEntityRows: positiveInteger(opts.maxEntityRows ?? DEFAULT_MAX_ENTITY_ROWS, "maxEntityRows"),
    maxFeatureValues: positiveInteger(opts.maxFeatureValues ?? DEFAULT_MAX_FEATURE_VALUES, "maxFeatureValues"),
  };
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
  const countReload = metrics.counter(
    "fstore_registry_reloads_total",
    "Registry reloads after a change by another process, by outcome",
  );
  let inFlight = 0;
  const startedAt = Date.now();
  const countServing = metrics.counter(
    "fstore_recommend_events_total",
    "Recommendation events by pipeline: fallback_popularity, unknown_entity, missing_item_features_defaults/_dropped, short_list, ...",
  );
  if (store instanceof FeatureStore)
    recommenderFor(store).onEvent((event, pipeline, n) => countServing({ pipeline, event }, n));
  metrics.gauge("fstore_http_requests_in_flight", "Requests being served", () => inFlight);
  metrics.gauge("fstore_uptime_seconds", "Seconds since the server started", () => (Date.now() - startedAt) / 1000);

  // ---------------------------------------------------------------- registry-derived schemas and refresh
  // One ajv per registry snapshot, so compiled schemas of an old registry are dropped with it.
  let schemas = new RegistrySchemas(store.contents(), newAjv());
  const currentSchemas = (): RegistrySchemas => {
    const c = store.contents();
    if (c !== schemas.contents) schemas = new RegistrySchemas(c, newAjv());
    return schemas;
  };
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
  // answer buffers, reused once the socket has written them (see BufferPool)
  const answers = new BufferPool();
  const routes = buildRoutes({ store, metrics, schemas: currentSchemas, answers, limits });
  const endpoints = [...routes].map(([p, r]) => `${r.method} ${p}${p.endsWith("/") ? "{id}" : ""}`).join(", ");

  // ---------------------------------------------------------------- request handling
  let closing = false;
  let onDrained: (() => void) | undefined;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now();
    inFlight++;
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const fullPath = q < 0 ? url : url.slice(0, q);
    // "/recommendations/5" is the prefix route "/recommendations/" with rest "5"
    const slash = fullPath.indexOf("/", 1);
    const prefix = slash > 0 ? fullPath.slice(0, slash + 1) : "";
    const exact = routes.get(fullPath);
    const route = exact ?? (prefix && fullPath.length > prefix.length ? routes.get(prefix) : undefined);
    // the caller's text: logs and errors carry a prefix of it
    const path = fullPath.length <= 200 ? fullPath : `${fullPath.slice(0, 200)}…`;
    const endpoint = route ? (exact ? fullPath : prefix) : "other";
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
      let body;
      if (route.method === "POST") {
        checkJsonBody(req);
        body = await readJson(req, maxBody, route.prefixes);
      }
      const out = await route.run(body, {
        rest: exact ? "" : fullPath.slice(prefix.length),
        query: new URLSearchParams(q < 0 ? "" : url.slice(q + 1)),
      });
      status = out.status ?? 200;
      if (req.socket.destroyed) status = CLIENT_CLOSED;
      else send(res, { ...out, status }, answers, closing);
    } catch (e) {
      failure = e;
      const answer = errorAnswer(e);
      status = req.socket.destroyed ? CLIENT_CLOSED : answer.status;
      if (status === CLIENT_CLOSED) res.destroy();
      else if (!res.headersSent) send(res, answer, answers, closing);
      else res.destroy();
    } finally {
      const seconds = (performance.now() - t0) / 1000;
      const statusLabel = String(status);
      countRequest({ endpoint, method: req.method ?? "", status: statusLabel });
      observeRequest({ endpoint, status: statusLabel }, seconds);
      if (status === 500) {
        logger.log("error", "request failed", {
          method: req.method,
          path,
          status,
          duration_ms: seconds * 1000,
          ...errorFields(failure),
        });
      } else if (status >= 500) {
        // a store down is not a fault of the server: one line, no stack
        logger.log("warn", "request failed", {
          method: req.method,
          path,
          status,
          duration_ms: seconds * 1000,
          error: boundedMessage(failure),
        });
      } else if (logger.enabled("info")) {
        const fields: Record<string, unknown> = {
          method: req.method,
          path,
          status,
          duration_ms: Math.round(seconds * 1e6) / 1000,
        };
        if (failure !== undefined) fields.error = boundedMessage(failure);
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
    await withTimeout(store.health(), HEALTH_TIMEOUT_MS, HEALTH_LATE);
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

function positiveInteger(n: number, option: string): number {
  if (!Number.isInteger(n) || n < 1)
    throw new ValidationError(`startFeatureServer: ${option} must be a whole number >= 1, got ${n}`);
  return n;
}

function envLogLevel(): LogLevel {
  const l = process.env.FSTORE_LOG_LEVEL;
  return l === "debug" || l === "info" || l === "warn" || l === "error" || l === "silent" ? l : "info";
}
