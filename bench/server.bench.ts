// The feature server under load (bench/loadgen.ts, loopback), on Feast's benchmark shape: 25 feature views x
// 10 features over N entities (FSTORE_BENCH_ENTITIES, default 100,000: materializing 25 x 1M rows
// into each store takes minutes; FSTORE_BENCH_ENTITIES=1000000 gives Feast's full shape), SQLite and Redis online stores.
// Beside each figure: the same load against a bare node:http handler answering a body of the same size
// (the floor) and the ratio. The servers and the load generator run in child processes of their own
// (bench/loadgen.ts: evenly spaced open-loop requests, latency counted from when each was due).
//
//   npm run bench -- server            FSTORE_BENCH_ENTITIES=100000 FSTORE_BENCH_SECONDS=5 npm run bench -- server
//   FSTORE_BENCH_WORKERS=2 (server processes)  FSTORE_BENCH_STORES=sqlite|redis  FSTORE_BENCH_ROUNDS=3
//   FSTORE_BENCH_CASES=inprocess,1x250,100x250,ramp,1x20,materialize (reads during POST /materialize)
//   FSTORE_BENCH_THROUGHPUT_WORKERS=N: the throughput cases (ramp, 1x20) run again with N server processes,
//   fstore's and the floor's alike (`fs serve --workers 0`: one per core; default the core count, 0 = skip)
import { type ChildProcess, fork } from "node:child_process";
import cluster from "node:cluster";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DuckDBInstance } from "@duckdb/node-api";
import { Redis } from "ioredis";
import { SERVER_NODE_FLAGS } from "../server/defaults.js";
import { measure, memoryProbe, performance, report } from "./lib.js";
import { type BodyTemplate, type LoadResult, runLoad } from "./loadgen.js";

const VIEWS = 25;
const FEATURES = 10;
const ENTITIES = Number(process.env.FSTORE_BENCH_ENTITIES ?? 100_000);
const SECONDS = Number(process.env.FSTORE_BENCH_SECONDS ?? 10);
/** rounds of each latency case (1 x 250 and 100 x 250); the median round is reported */
const ROUNDS = Number(process.env.FSTORE_BENCH_ROUNDS ?? 3);
/** server processes (fs serve --workers); they share the 2 cores with the load generator */
const WORKERS = Number(process.env.FSTORE_BENCH_WORKERS ?? 1);
/**
 * Server processes for a second pass of the throughput cases: one per core, as `fs serve --workers 0`
 * runs. One Node process serves on one core; a throughput figure from one process on a 2-core machine
 * leaves a core to the load generator and idle time.
 */
const THROUGHPUT_WORKERS = Number(process.env.FSTORE_BENCH_THROUGHPUT_WORKERS ?? availableParallelism());
/** in a server child: how many processes serve (set per child by startChild) */
const PROCESSES = Number(process.env.FSTORE_BENCH_PROCESSES ?? WORKERS);
/** which cases run: FSTORE_BENCH_CASES=inprocess,1x250,100x250,ramp,1x20,materialize (all by default) */
const CASES = new Set((process.env.FSTORE_BENCH_CASES ?? "inprocess,1x250,100x250,ramp,1x20,materialize").split(","));
const SELF = fileURLToPath(import.meta.url);
const END = Date.parse("2026-01-01T00:00:00Z");

// ------------------------------------------------------------------ child processes (servers)

type ChildMode = "feature" | "floor" | "load";

interface LoadJob {
  url: string;
  path: string;
  features: string[];
  rows: number;
  connections: number;
  rate?: number;
  seconds: number;
}

async function childMain(mode: ChildMode): Promise<void> {
  let url: string;
  if (mode === "load") {
    // The load generator in a process of its own: its GC and event loop stay apart from the bench's
    // (DuckDB, ioredis, a heap of materialized data), which added stalls of its own to every p99.
    process.on("message", (m: { job?: LoadJob; stop?: boolean }) => {
      if (m.stop) process.exit(0);
      const job = m.job;
      if (!job) return;
      void runLoad({ ...job, body: bodyTemplate(job.features, job.rows) }).then((result) => process.send!({ result }));
    });
    url = "-";
  } else if (PROCESSES > 1 && cluster.isPrimary) {
    // as `fs serve --workers N`: N processes share one port (the floor's too, in the multi-process pass)
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    let up = 0;
    await new Promise<void>((resolve) => {
      cluster.on("listening", () => {
        if (++up === PROCESSES) resolve();
      });
      for (let i = 0; i < PROCESSES; i++) cluster.fork({ FSTORE_BENCH_PORT: String(port) });
    });
    url = `http://127.0.0.1:${port}`;
    process.on("message", (m: { path?: string; body?: string; stop?: boolean }) => {
      if (m.path !== undefined) {
        // a floor body goes to every process; acknowledged once all have it
        const workers = Object.values(cluster.workers ?? {});
        let left = workers.length;
        for (const w of workers) {
          const on = (r: { ack?: string }) => {
            if (r.ack !== m.path) return;
            w?.off("message", on);
            if (--left === 0) process.send!({ ack: m.path });
          };
          w?.on("message", on);
          w?.send(m);
        }
        return;
      }
      if (!m.stop) return;
      const alive = Object.values(cluster.workers ?? {});
      let left = alive.length;
      for (const w of alive) {
        w?.once("exit", () => --left === 0 && process.exit(0));
        w?.process.kill("SIGTERM");
      }
    });
  } else if (mode === "feature") {
    // the built library, as `fs serve` runs it (`npm run bench` builds first); tsx's transform of the
    // sources names every closure it creates (esbuild keepNames), a cost the real server does not pay
    const { startFeatureServer } = (await import(
      new URL("../dist/server/server.js", import.meta.url).href
    )) as typeof import("../server/server.js");
    const s = await startFeatureServer({
      repoPath: process.env.FSTORE_BENCH_REPO!,
      port: Number(process.env.FSTORE_BENCH_PORT ?? 0),
      logLevel: (process.env.FSTORE_BENCH_LOG as "info") ?? "info",
    });
    url = s.url;
    const stop = () => void s.close().then(() => process.exit(0));
    process.on("message", (m: { stop?: boolean }) => m.stop && stop());
    if (cluster.isWorker) {
      process.once("SIGTERM", stop);
      return;
    }
  } else {
    // The floor: read the body, answer the prepared bytes for that path. Nothing else.
    const bodies = new Map<string, Buffer>();
    process.on("message", (m: { path?: string; body?: string; stop?: boolean }) => {
      if (m.stop) process.exit(0);
      if (m.path && m.body !== undefined) {
        bodies.set(m.path, Buffer.from(m.body));
        process.send!({ ack: m.path });
      }
    });
    // keep-alive as long as the feature server's (node's default of 5 s closed connections the generator
    // had left idle, and the request it next sent on one was lost)
    const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      req.on("data", () => {});
      req.on("end", () => {
        const b = bodies.get(req.url ?? "") ?? Buffer.from("{}");
        res.writeHead(200, { "content-type": "application/json", "content-length": b.length });
        res.end(b);
      });
    });
    await new Promise<void>((r) => server.listen(Number(process.env.FSTORE_BENCH_PORT ?? 0), "127.0.0.1", r));
    const a = server.address() as { port: number };
    url = `http://127.0.0.1:${a.port}`;
    if (cluster.isWorker) return;
  }
  process.send!({ url });
}

interface Child {
  proc: ChildProcess;
  url: string;
}

function startChild(mode: ChildMode, env: Record<string, string> = {}): Promise<Child> {
  // the feature server runs with the V8 flags `fs serve` gives its processes
  const execArgv = ["--import", "tsx", ...(mode === "feature" ? SERVER_NODE_FLAGS : [])];
  const proc = fork(SELF, [], {
    execArgv,
    env: { ...process.env, FSTORE_BENCH_CHILD: mode, ...env },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    proc.once("exit", (code) => reject(new Error(`bench ${mode} child exited with ${code}`)));
    proc.on("message", (m: { url?: string }) => {
      if (m.url) resolve({ proc, url: m.url });
    });
  });
}

function stopChild(c: Child): Promise<void> {
  return new Promise((resolve) => {
    c.proc.removeAllListeners("exit");
    c.proc.once("exit", () => resolve());
    c.proc.send({ stop: true });
  });
}

function setFloorBody(floor: Child, path: string, body: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (m: { ack?: string }) => {
      if (m.ack === path) {
        floor.proc.off("message", on);
        resolve();
      }
    };
    floor.proc.on("message", on);
    floor.proc.send({ path, body });
  });
}

// ------------------------------------------------------------------ data

const definitions = (dataDir: string) => {
  const lines = [
    `import { Entity, FeatureService, FeatureView, Field, FileSource } from "fstore";`,
    `export const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64" });`,
  ];
  for (let v = 0; v < VIEWS; v++) {
    const fields = Array.from(
      { length: FEATURES },
      (_, f) => `new Field({ name: "v${v}_f${f}", dtype: "${f % 2 ? "int64" : "float64"}" })`,
    ).join(", ");
    lines.push(
      `export const v${v} = new FeatureView({ name: "view_${v}", entities: [user], ttl: 0, online: true, schema: [${fields}],`,
      `  source: new FileSource({ name: "src_${v}", path: ${JSON.stringify(join(dataDir, `view_${v}.parquet`))}, timestampField: "event_timestamp" }) });`,
    );
  }
  lines.push(
    `export const all = new FeatureService({ name: "all_features", features: [${Array.from({ length: VIEWS }, (_, v) => `v${v}`).join(", ")}] });`,
  );
  return lines.join("\n") + "\n";
};

async function writeData(dataDir: string): Promise<void> {
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    for (let v = 0; v < VIEWS; v++) {
      const cols = Array.from({ length: FEATURES }, (_, f) =>
        f % 2
          ? `(hash(range * ${v + 1} + ${f}) % 100000)::BIGINT AS v${v}_f${f}`
          : `round(random() * 1000, 3)::DOUBLE AS v${v}_f${f}`,
      ).join(", ");
      await c.run(
        `COPY (SELECT range::BIGINT AS user_id, ${cols}, TIMESTAMP '2025-12-31 00:00:00' + to_seconds(range % 86400) AS event_timestamp FROM range(${ENTITIES})) TO '${join(dataDir, `view_${v}.parquet`)}' (FORMAT parquet)`,
      );
    }
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

async function buildRepo(base: string, kind: "sqlite" | "redis", redisPrefix: string): Promise<string> {
  const dir = join(base, kind);
  const marker = join(dir, "data", "materialized");
  if (kind === "sqlite" && existsSync(marker)) return dir;
  mkdirSync(join(dir, "data"), { recursive: true });
  const online =
    kind === "sqlite"
      ? "online_store:\n  type: sqlite\n  path: data/online_store.db\n"
      : `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=0"\n  key_prefix: ${redisPrefix}\n`;
  writeFileSync(
    join(dir, "feature_store.yaml"),
    `project: server_bench\nregistry: data/registry.db\n${online}registry_ttl_sec: 10\n`,
  );
  writeFileSync(join(dir, "definitions.ts"), definitions(join(base, "parquet")));
  const { FeatureStore } = await import("../stores/feature_store.js");
  const store = await FeatureStore.open(dir);
  try {
    await store.apply();
    const t = performance.now();
    await store.materialize(0, END);
    const s = (performance.now() - t) / 1000;
    console.log(
      `  materialized ${VIEWS} views x ${ENTITIES} entities into ${kind} in ${s.toFixed(1)} s (${((VIEWS * ENTITIES) / s).toFixed(0)} rows/s)`,
    );
  } finally {
    await store.close();
  }
  writeFileSync(marker, new Date().toISOString());
  return dir;
}

async function dropRedisKeys(prefix: string): Promise<void> {
  const r = new Redis({ host: "127.0.0.1", port: 6379 });
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 10000);
    if (keys.length) await r.unlink(...keys);
    cursor = next;
  } while (cursor !== "0");
  await r.quit();
}

// ------------------------------------------------------------------ load

const ALL_FEATURES = Array.from({ length: VIEWS }, (_, v) =>
  Array.from({ length: FEATURES }, (_, f) => `view_${v}:v${v}_f${f}`),
).flat();
const TWENTY = ALL_FEATURES.slice(0, 20);

let seed = 12345;
function randomId(): number {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % ENTITIES;
}

function bodyFor(features: string[], rows: number): string {
  return JSON.stringify({ features, entities: { user_id: Array.from({ length: rows }, randomId) } });
}

/** bodyFor's requests for the load generator: the same JSON, its constant parts encoded once. */
function bodyTemplate(features: string[], rows: number): BodyTemplate {
  return {
    prefix: `{"features":${JSON.stringify(features)},"entities":{"user_id":[`,
    suffix: "]}}",
    rows,
    nextId: randomId,
  };
}

let loader: Child | undefined;

/** One run of the load generator child against `url` + `path`, with bodies of `rows` random entities. */
function load(
  url: string,
  path: string,
  features: string[],
  rows: number,
  opts: { connections: number; rate?: number; seconds?: number },
): Promise<LoadResult> {
  const child = loader!;
  return new Promise((resolve) => {
    const on = (m: { result?: LoadResult }) => {
      if (!m.result) return;
      child.proc.off("message", on);
      resolve(m.result);
    };
    child.proc.on("message", on);
    const job: LoadJob = {
      url,
      path,
      features,
      rows,
      connections: opts.connections,
      rate: opts.rate,
      seconds: opts.seconds ?? SECONDS,
    };
    child.proc.send({ job });
  });
}

async function fetchBody(url: string, path: string, body: string): Promise<string> {
  const res = await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

/**
 * The load against the feature server, then against the floor, `rounds` times; the round of median
 * fstore p99 (and of median floor p99) stands for the case. A 10 s p99 on this 2-vCPU machine moves by 2x
 * from run to run, the floor's too: one round is one draw.
 */
async function compare(
  name: string,
  fs: Child,
  floor: Child,
  features: string[],
  rows: number,
  opts: { connections: number; rate?: number; seconds?: number },
  rounds = 1,
): Promise<{ fs: LoadResult; floor: LoadResult; bytes: number }> {
  const sample = await fetchBody(fs.url, "/get-online-features", bodyFor(features, rows));
  const floorPath = `/floor_${rows}_${features.length}`;
  await setFloorBody(floor, floorPath, sample);
  const all: Array<{ fs: LoadResult; floor: LoadResult; inside?: string }> = [];
  // the paced (latency) cases, with one server process: its /metrics covers every request of the round
  const inside = opts.rate !== undefined && WORKERS === 1;
  for (let r = 0; r < rounds; r++) {
    // warm up both (JIT, caches), then measure
    await load(fs.url, "/get-online-features", features, rows, { ...opts, seconds: 1 });
    const before = inside ? await handlerBuckets(fs.url) : undefined;
    const a = await load(fs.url, "/get-online-features", features, rows, opts);
    const within = before ? insideShare(before, await handlerBuckets(fs.url)) : undefined;
    await load(floor.url, floorPath, features, rows, { ...opts, seconds: 1 });
    const b = await load(floor.url, floorPath, features, rows, opts);
    if (a.errors) console.log(`  ${name}: ${a.errors} errors`);
    all.push({ fs: a, floor: b, inside: within });
  }
  const median = (pick: (x: (typeof all)[number]) => LoadResult) =>
    pick([...all].sort((x, y) => pick(x).p99 - pick(y).p99)[(all.length - 1) >> 1]);
  if (rounds > 1)
    console.log(
      `  ${name} p99 by round: fstore ${all.map((x) => x.fs.p99.toFixed(2)).join(", ")} ms | floor ${all.map((x) => x.floor.p99.toFixed(2)).join(", ")} ms`,
    );
  if (inside)
    console.log(
      `  ${name} time inside the server's handler (its own /metrics), by round: ${all.map((x) => x.inside).join(" | ")}`,
    );
  return { fs: median((x) => x.fs), floor: median((x) => x.floor), bytes: Buffer.byteLength(sample) };
}

/** The feature server's own histogram of /get-online-features handler times: bucket bound (s) -> cumulative count. */
async function handlerBuckets(url: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<number, number>();
  const re =
    /^fstore_http_request_duration_seconds_bucket\{endpoint="\/get-online-features",status="200",le="([^"]+)"\} (\d+)$/gm;
  for (const m of text.matchAll(re)) out.set(m[1] === "+Inf" ? Infinity : Number(m[1]), Number(m[2]));
  return out;
}

/**
 * Of the requests between two snapshots, the share whose handler took <= 1 ms, and the smallest bucket
 * bound that holds 99% of them: how much of the round's p99 the server's own code accounts for (the
 * rest is waiting: the event loop, the kernel, the load generator).
 */
function insideShare(before: Map<number, number>, after: Map<number, number>): string {
  const n = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (n <= 0) return "no requests";
  const upTo = (le: number) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const p99 = [...after.keys()].sort((x, y) => x - y).find((le) => upTo(le) >= 0.99 * n) ?? Infinity;
  return `${((upTo(0.001) / n) * 100).toFixed(2)}% <= 1 ms, p99 <= ${p99 * 1000} ms`;
}

/** The same reads in process, without HTTP: FeatureStore.getOnlineFeatures + the response JSON. */
async function inProcess(kind: string, repo: string): Promise<void> {
  const { FeatureStore } = await import("../stores/feature_store.js");
  const { feastJSONBytes } = await import("../server/response_bytes.js");
  const store = await FeatureStore.open(repo, { registryTtlSeconds: Infinity });
  try {
    for (const [name, features, rows] of [
      ["1 row x 250 features", ALL_FEATURES, 1],
      ["100 rows x 250 features", ALL_FEATURES, 100],
      ["1 row x 20 features", TWENTY, 1],
    ] as const) {
      const iterations = rows === 1 ? 3000 : 200;
      const read = await measure(
        () => store.getOnlineFeatures({ features, entities: { user_id: Array.from({ length: rows }, randomId) } }),
        iterations,
      );
      const readJson = async () => {
        const r = await store.getOnlineFeatures({
          features,
          entities: { user_id: Array.from({ length: rows }, randomId) },
        });
        return feastJSONBytes(r);
      };
      const full = await measure(readJson, iterations);
      report(`${kind}: in process (no HTTP), ${name}: read+JSON p99`, full.p99 / 1000, "ms", {
        baseline: read.p99 / 1000,
        baselineName: "getOnlineFeatures alone",
      });
      report(`${kind}: in process (no HTTP), ${name}: read+JSON p50`, full.p50 / 1000, "ms", {
        baseline: read.p50 / 1000,
        baselineName: "getOnlineFeatures alone",
      });
      if (rows === 1 && features.length === ALL_FEATURES.length) {
        // the same calls 1 ms apart, as the 1,000 req/s case makes them
        const paced = await measure(readJson, 2000, undefined, 1);
        report(`${kind}: in process (no HTTP), ${name}, 1 ms apart: read+JSON p99`, paced.p99 / 1000, "ms", {
          baseline: full.p99 / 1000,
          baselineName: "back to back",
        });
      }
    }
    // the hand-written serialiser against JSON.stringify on the largest answer
    const bigResponse = await store.getOnlineFeatures({
      features: ALL_FEATURES,
      entities: { user_id: Array.from({ length: 100 }, randomId) },
    });
    const hand = await measure(() => feastJSONBytes(bigResponse), 100, 20);
    const std = await measure(() => Buffer.from(JSON.stringify(bigResponse.toFeastJSON())), 100, 20);
    report(`${kind}: JSON bytes of the 100 x 250 answer, feastJSONBytes p50`, hand.p50 / 1000, "ms", {
      baseline: std.p50 / 1000,
      baselineName: "Buffer.from(JSON.stringify(toFeastJSON()))",
    });
  } finally {
    await store.close();
  }
}

/**
 * A fresh server first runs every request shape for a while (JIT tiers, caches, schema compiles), as one
 * in service would have; each case then warms up for another second before it is measured.
 */
async function warmUp(fs: Child): Promise<void> {
  for (const [features, rows] of [
    [ALL_FEATURES, 1],
    [ALL_FEATURES, 100],
    [TWENTY, 1],
  ] as const) {
    await load(fs.url, "/get-online-features", features, rows, { connections: 4, seconds: 2 });
  }
}

async function benchStore(kind: "sqlite" | "redis", repo: string, floor: Child): Promise<void> {
  if (CASES.has("inprocess")) await inProcess(kind, repo);
  const fs = await startChild("feature", { FSTORE_BENCH_REPO: repo });
  try {
    console.log(
      `-- ${kind} online store, ${ENTITIES} entities, ${VIEWS} views x ${FEATURES} features, ${SECONDS} s per case, ${WORKERS} server process(es)`,
    );
    await warmUp(fs);
    // 1. one row, 250 features, at 1,000 requests/s
    if (CASES.has("1x250")) {
      const one = await compare("1x250", fs, floor, ALL_FEATURES, 1, { connections: 8, rate: 1000 }, ROUNDS);
      report(`${kind}: 1 row x 250 features @1000 req/s p99, median of ${ROUNDS} (${one.bytes} B)`, one.fs.p99, "ms", {
        baseline: one.floor.p99,
        baselineName: "bare node:http",
        target: "<= 1 ms",
        pass: one.fs.p99 <= 1,
      });
      report(`${kind}: 1 row x 250 features @1000 req/s p50`, one.fs.p50, "ms", {
        baseline: one.floor.p50,
        baselineName: "bare node:http",
      });
    }
    // 2. 100 rows, 250 features, at 100 requests/s
    if (CASES.has("100x250")) {
      const hundred = await compare("100x250", fs, floor, ALL_FEATURES, 100, { connections: 4, rate: 100 }, ROUNDS);
      report(
        `${kind}: 100 rows x 250 features @100 req/s p99, median of ${ROUNDS} (${hundred.bytes} B)`,
        hundred.fs.p99,
        "ms",
        { baseline: hundred.floor.p99, baselineName: "bare node:http", target: "<= 15 ms", pass: hundred.fs.p99 <= 15 },
      );
      report(`${kind}: 100 rows x 250 features @100 req/s p50`, hundred.fs.p50, "ms", {
        baseline: hundred.floor.p50,
        baselineName: "bare node:http",
      });
    }
    await throughputCases(kind, fs, floor, WORKERS);
    if (CASES.has("materialize")) await readsDuringMaterialize(kind, fs);
  } finally {
    await stopChild(fs);
  }
  if (THROUGHPUT_WORKERS > WORKERS && (CASES.has("ramp") || CASES.has("1x20"))) {
    const env = { FSTORE_BENCH_PROCESSES: String(THROUGHPUT_WORKERS) };
    const many = await startChild("feature", { FSTORE_BENCH_REPO: repo, ...env });
    const manyFloor = await startChild("floor", env);
    try {
      console.log(
        `-- ${kind}: throughput with ${THROUGHPUT_WORKERS} server processes (fs serve --workers ${THROUGHPUT_WORKERS}), and a floor of as many`,
      );
      await warmUp(many);
      await throughputCases(kind, many, manyFloor, THROUGHPUT_WORKERS);
    } finally {
      await stopChild(many);
      await stopChild(manyFloor);
    }
  }
}

/**
 * 5. Reads while the server materializes every view (POST /materialize: the same rows again, so the store
 * ends as it began): 1 x 20 at 500 req/s for as long as a materialize takes, against the same load with
 * no materialize.
 */
async function readsDuringMaterialize(kind: string, fs: Child): Promise<void> {
  const materialize = async (): Promise<number> => {
    const t = performance.now();
    await fetchBody(
      fs.url,
      "/materialize",
      JSON.stringify({ start_ts: "1970-01-01T00:00:00Z", end_ts: new Date(END).toISOString() }),
    );
    return (performance.now() - t) / 1000;
  };
  const alone = await materialize();
  const seconds = Math.max(2, Math.floor(alone));
  const quiet = await load(fs.url, "/get-online-features", TWENTY, 1, { connections: 4, rate: 500, seconds });
  const [busy, during] = await Promise.all([
    load(fs.url, "/get-online-features", TWENTY, 1, { connections: 4, rate: 500, seconds }),
    materialize(),
  ]);
  console.log(
    `  materialize of ${VIEWS} views x ${ENTITIES} entities through the server: ${alone.toFixed(1)} s alone, ${during.toFixed(1)} s under the reads`,
  );
  report(`${kind}: 1 x 20 @500 req/s while POST /materialize runs, p99`, busy.p99, "ms", {
    baseline: quiet.p99,
    baselineName: "no materialize",
  });
}

/** The throughput cases (3 and 4) against a feature server and a floor of `processes` processes each. */
async function throughputCases(kind: string, fs: Child, floor: Child, processes: number): Promise<void> {
  const procs = processes === 1 ? "1 process" : `${processes} processes`;
  // 3. the highest throughput of 1 x 250 with p99 <= 10 ms (closed loop, growing concurrency)
  if (CASES.has("ramp")) {
    const best = { fs: 0, floor: 0, fsConn: 0, floorConn: 0 };
    for (const connections of [1, 2, 4, 8, 16]) {
      const r = await compare("ramp", fs, floor, ALL_FEATURES, 1, {
        connections,
        seconds: Math.max(3, Math.round(SECONDS / 2)),
      });
      console.log(
        `  ramp ${procs} c=${connections}: fstore ${r.fs.rps.toFixed(0)} req/s p99 ${r.fs.p99.toFixed(2)} ms | floor ${r.floor.rps.toFixed(0)} req/s p99 ${r.floor.p99.toFixed(2)} ms`,
      );
      if (r.fs.p99 <= 10 && r.fs.rps > best.fs) Object.assign(best, { fs: r.fs.rps, fsConn: connections });
      if (r.floor.p99 <= 10 && r.floor.rps > best.floor)
        Object.assign(best, { floor: r.floor.rps, floorConn: connections });
      if (r.fs.p99 > 10 && r.floor.p99 > 10) break;
    }
    if (best.fs === 0)
      console.log(
        `${kind}: max 1 x 250 throughput with p99 <= 10 ms, ${procs}: none (p99 > 10 ms already at 1 connection) | bare node:http ${best.floor.toFixed(0)} req/s`,
      );
    else
      report(
        `${kind}: max 1 x 250 throughput with p99 <= 10 ms, ${procs} (c=${best.fsConn}/${best.floorConn})`,
        best.fs,
        "req/s",
        { baseline: best.floor, baselineName: "bare node:http" },
      );
  }
  // 4. one entity, 20 features: throughput
  if (CASES.has("1x20")) {
    const twenty = await compare("1x20", fs, floor, TWENTY, 1, { connections: 16 });
    report(
      `${kind}: 1 row x 20 features throughput, ${procs} (p99 ${twenty.fs.p99.toFixed(2)} ms)`,
      twenty.fs.rps,
      "req/s",
      {
        baseline: twenty.floor.rps,
        baselineName: "bare node:http",
        target: ">= 10000 req/s",
        pass: twenty.fs.rps >= 10_000,
      },
    );
  }
}

export async function main(): Promise<void> {
  const base = join(tmpdir(), `fstore-server-bench-${ENTITIES}`);
  const parquetDir = join(base, "parquet");
  if (!existsSync(join(parquetDir, `view_${VIEWS - 1}.parquet`))) {
    mkdirSync(parquetDir, { recursive: true });
    const t = performance.now();
    await writeData(parquetDir);
    console.log(
      `  wrote ${VIEWS} parquet files x ${ENTITIES} rows in ${((performance.now() - t) / 1000).toFixed(1)} s (${parquetDir})`,
    );
  }
  const probe = await memoryProbe();
  report("machine: 8 random reads in 128 MB, 1 ms apart, p99", probe.paced.p99, "µs", {
    baseline: probe.backToBack.p99,
    baselineName: "back to back",
  });
  const redisPrefix = `fstore_server_bench_${process.pid}`;
  const floor = await startChild("floor");
  loader = await startChild("load");
  try {
    const kinds = (process.env.FSTORE_BENCH_STORES ?? "sqlite,redis").split(",") as Array<"sqlite" | "redis">;
    for (const kind of kinds) {
      const repo = await buildRepo(base, kind, redisPrefix);
      try {
        await benchStore(kind, repo, floor);
      } finally {
        // Redis keys are dropped after each run (the SQLite store stays in the temp dir for the next run)
        if (kind === "redis") await dropRedisKeys(redisPrefix);
      }
    }
  } finally {
    await stopChild(floor);
    await stopChild(loader);
  }
}

if (process.env.FSTORE_BENCH_CHILD) await childMain(process.env.FSTORE_BENCH_CHILD as ChildMode);
