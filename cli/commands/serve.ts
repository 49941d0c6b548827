import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { Flags } from "@oclif/core";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_ENTITY_ROWS,
  DEFAULT_MAX_FEATURE_VALUES,
  DEFAULT_PORT,
  SERVER_NODE_FLAGS,
} from "../../server/defaults.js";
import { LOG_LEVELS, type LogLevel } from "../../server/log.js";
import { FstoreCommand } from "../base.js";

export default class Serve extends FstoreCommand {
  static override description =
    "Serve the feature store over HTTP with Feast's REST API (get-online-features, push, write-to-online-store, materialize, health, metrics)";
  static override examples = [
    "fs serve",
    "fs serve --repo my_repo --port 6566 --host 0.0.0.0 --auth-token s3cret",
    "fs serve --workers 4",
    `curl -s localhost:6566/get-online-features -H 'content-type: application/json' -d '{"features":["user_features:age"],"entities":{"user_id":[1,2]}}'`,
  ];
  static override flags = {
    repo: Flags.string({
      char: "r",
      aliases: ["chdir"],
      description: "feature repository folder (holds feature_store.yaml)",
      default: ".",
    }),
    port: Flags.integer({
      char: "p",
      description: "port (0 picks a free one)",
      default: DEFAULT_PORT,
      min: 0,
      max: 65535,
    }),
    host: Flags.string({ description: "address to listen on", default: "127.0.0.1" }),
    "auth-token": Flags.string({
      description: "require 'Authorization: Bearer <token>' on every endpoint but /health",
      env: "FSTORE_AUTH_TOKEN",
    }),
    "max-body-bytes": Flags.integer({
      description: "larger request bodies answer 413",
      default: DEFAULT_MAX_BODY_BYTES,
      min: 1,
    }),
    "max-entity-rows": Flags.integer({
      description: "get-online-features asking more entity rows, or a push or write of more rows, answers 413",
      default: DEFAULT_MAX_ENTITY_ROWS,
      min: 1,
    }),
    "max-feature-values": Flags.integer({
      description: "get-online-features asking more entity rows x features answers 413",
      default: DEFAULT_MAX_FEATURE_VALUES,
      min: 1,
    }),
    "registry-ttl": Flags.integer({
      description:
        "seconds between background registry refreshes; 0 = load once, never refresh, as in Feast (default: registry_ttl_sec of feature_store.yaml, else 10)",
      min: 0,
    }),
    workers: Flags.integer({
      char: "w",
      description:
        "server processes sharing the port (Node cluster), each with its own store connections; 0 = one per core. /metrics then reports the worker that answers. Each runs with the V8 flags of SERVER_NODE_FLAGS (a 16 MB young generation)",
      default: 1,
      min: 0,
    }),
    "log-level": Flags.string({
      description: "log level of the JSON lines on stdout",
      options: [...LOG_LEVELS],
      default: process.env.FSTORE_LOG_LEVEL ?? "info",
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Serve);
    const workers = flags.workers === 0 ? availableParallelism() : flags.workers;
    // Server processes are always workers of a small primary: it starts them with the V8 flags a server
    // wants (fixed at process start), replaces one that dies, and passes signals on.
    if (cluster.isPrimary) return this.runPrimary(workers);
    // Every fs command loads this file; the server itself loads only for `fs serve`.
    const { startFeatureServer } = await import("../../server/server.js");
    const server = await startFeatureServer({
      repoPath: resolve(flags.repo),
      port: flags.port,
      host: flags.host,
      authToken: flags["auth-token"] ?? "",
      maxBodyBytes: flags["max-body-bytes"],
      maxEntityRows: flags["max-entity-rows"],
      maxFeatureValues: flags["max-feature-values"],
      registryTtlSeconds: flags["registry-ttl"],
      logLevel: flags["log-level"] as LogLevel,
    });
    // Runs until a signal: stop accepting, finish in-flight requests, close the stores, exit 0.
    await new Promise<void>((done) => {
      let stopping = false;
      const stop = (signal: string) => {
        // Ctrl-C reaches the worker twice, from the terminal and from the primary: a second signal must
        // not end the process (no listener left would) before in-flight requests finish
        if (stopping) return;
        stopping = true;
        server.logger.log("info", "shutting down", { signal });
        server.close().then(done, (e: unknown) => {
          server.logger.log("error", "shutdown failed", { error: String(e) });
          process.exit(1);
        });
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
    });
    process.exit(0);
  }

  /**
   * Forks `workers` processes (one or more) that run this command and share the listening socket. A worker that dies
   * unexpectedly is replaced; SIGTERM/SIGINT is passed on, and the primary exits once every worker has
   * finished its in-flight requests and closed its stores.
   */
  private async runPrimary(workers: number): Promise<void> {
    let stopping = false;
    // one worker accepts its own connections; several take turns handed out by the primary
    if (workers === 1) cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ execArgv: [...process.execArgv, ...SERVER_NODE_FLAGS] });
    const log = (msg: string, fields: Record<string, unknown> = {}) =>
      process.stdout.write(
        JSON.stringify({ time: new Date().toISOString(), level: "info", msg, pid: process.pid, ...fields }) + "\n",
      );
    const listening = new Set<number>();
    cluster.on("listening", (worker) => listening.add(worker.id));
    cluster.on("exit", (worker, code, signal) => {
      if (stopping) return;
      if (!listening.has(worker.id)) {
        // it failed before serving (bad repo, port in use...): its error is on stderr; another would fail too
        stopping = true;
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
        process.exitCode = 1;
        setTimeout(() => process.exit(1), 2000).unref();
        return;
      }
      log("worker exited; starting another", { worker_pid: worker.process.pid, code, signal });
      cluster.fork();
    });
    for (let i = 0; i < workers; i++) cluster.fork();
    log("feature server primary started", { workers });
    await new Promise<void>((done) => {
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) return;
        stopping = true;
        log("shutting down workers", { signal });
        const alive = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
        if (alive.length === 0) return done();
        let left = alive.length;
        for (const w of alive) {
          w.once("exit", () => {
            if (--left === 0) done();
          });
          w.process.kill(signal);
        }
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
    });
    process.exit(0);
  }
}
