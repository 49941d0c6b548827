// Serving pipelines: 100k items x 64-d (FSTORE_BENCH_ITEMS), one user per request, QueryFeatures -> QueryTower
// -> Retrieve 100 (the vector view's HNSW index) -> ItemFeatures -> Rank 100 (DLRM) -> Order 10.
//   in process: p50/p99 of store.recommend and of each stage alone (the stages before it run untimed), and
//     the pipeline's p50 against the sum of the stages' p50 (target <= 1.25x: the glue costs little);
//   over HTTP: POST /recommend at 200 req/s (open loop, bench/loadgen.ts), against a bare node:http server
//     answering the same bytes (target: HTTP p50 - in-process p50 <= 2x the floor's p50);
//   throughput: closed loop with one server process, then one per core (`fs serve --workers 0`).
// The models are untrained (seeded weights): their cost does not depend on what they learned.
//
//   npm run bench -- recommend      FSTORE_BENCH_ITEMS=100000 FSTORE_BENCH_SECONDS=10 FSTORE_BENCH_CASES=inprocess,http
//   FSTORE_BENCH_RATES=200,20 (open-loop rates)  FSTORE_BENCH_ITERATIONS=1000 (in-process rounds)
import { type ChildProcess, fork } from "node:child_process";
import cluster from "node:cluster";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SERVER_NODE_FLAGS } from "../server/defaults.js";
import { measure, performance, percentile, report } from "./lib.js";
import { runLoad } from "./loadgen.js";

const ITEMS = Number(process.env.FSTORE_BENCH_ITEMS ?? 100_000);
const USERS = 10_000;
const DIM = 64;
const CATS = 50;
const SECONDS = Number(process.env.FSTORE_BENCH_SECONDS ?? 10);
const ITERATIONS = Number(process.env.FSTORE_BENCH_ITERATIONS ?? 1000);
/** open-loop request rates of the HTTP latency case */
const RATES = (process.env.FSTORE_BENCH_RATES ?? "200,20").split(",").map(Number);
const CASES = new Set((process.env.FSTORE_BENCH_CASES ?? "inprocess,http").split(","));
const SELF = fileURLToPath(import.meta.url);
const REPO = fileURLToPath(new URL(`./.data/recommend-${ITEMS}`, import.meta.url));
const T0 = Date.parse("2026-01-01T00:00:00Z");
const userRaw = (u: number) => 1_000_000 + u;

const FEATURES = `import { Entity, FeatureService, FeatureView, Field, FileSource, Pipeline, QueryFeatures, QueryTower, Retrieve, ItemFeatures, Rank, Order } from "fstore";
export const user = new Entity({ name: "user", joinKeys: ["user_id_raw"], valueType: "int64" });
export const item = new Entity({ name: "item", joinKeys: ["item_id_raw"], valueType: "int64" });
const src = (name: string) => new FileSource({ name, path: \`data/\${name}.parquet\`, timestampField: "event_timestamp" });
export const users = new FeatureView({ name: "users", entities: [user], source: src("users"),
  schema: [new Field({ name: "user_id", dtype: "int32" }), new Field({ name: "user_group", dtype: "int32" })] });
export const items = new FeatureView({ name: "items", entities: [item], source: src("items"),
  schema: [new Field({ name: "item_id", dtype: "int32" }), new Field({ name: "item_cat", dtype: "int32" })] });
export const embeddings = new FeatureView({ name: "item_embeddings", entities: [item], source: src("embeddings"),
  schema: [new Field({ name: "embedding", dtype: "float32[]", vectorIndex: true, vectorLength: ${DIM}, vectorSearchMetric: "inner_product" })] });
export const retrieval = new FeatureService({ name: "retrieval", features: [users] });
export const ranking_items = new FeatureService({ name: "ranking_items", features: [items] });
export const bench = new Pipeline({ name: "bench", entity: user, stages: [
  new QueryFeatures({ features: "retrieval" }),
  new QueryTower({ model: "models/two_tower" }),
  new Retrieve({ vectors: "item_embeddings:embedding", topK: 100 }),
  new ItemFeatures({ features: "ranking_items" }),
  new Rank({ model: "models/dlrm" }),
  new Order({ topK: 10 }),
]});
`;

/** The repo under bench/.data (built once): parquet sources, two saved models, materialized into SQLite. */
async function buildRepo(): Promise<void> {
  if (existsSync(join(REPO, "ready"))) return;
  rmSync(REPO, { recursive: true, force: true });
  mkdirSync(join(REPO, "data"), { recursive: true });
  const t = performance.now();
  const { initBackend } = await import("../adapters/models/backend.js");
  await initBackend("auto", () => {});
  const { parseSchema, selectInputs } = await import("../adapters/models/schema.js");
  const { TwoTowerModel } = await import("../adapters/models/two_tower.js");
  const { DlrmModel } = await import("../adapters/models/dlrm.js");
  const { saveDlrm, saveTower } = await import("../adapters/models/artifacts.js");
  const { writeParquet } = await import("../stores/offline/parquet.js");
  const { FeatureStore } = await import("../index.js");
  writeFileSync(
    join(REPO, "feature_store.yaml"),
    "project: recommend_bench\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: duckdb\n",
  );
  writeFileSync(join(REPO, "features.ts"), FEATURES);
  const cat = (name: string, card: number, side: string, extra: string[] = []) => ({
    name,
    dtype: "int32",
    tags: ["categorical", side, ...extra],
    properties: { cardinality: card },
  });
  const spec = selectInputs(
    parseSchema([
      cat("user_id", USERS, "user", ["user_id"]),
      cat("user_group", 10, "user"),
      cat("item_id", ITEMS, "item", ["item_id"]),
      cat("item_cat", CATS, "item"),
      { name: "click", dtype: "int32", tags: ["target", "binary_classification"], properties: {} },
    ]),
  );
  const popularity = {
    idColumn: "item_id_raw",
    ids: Array.from({ length: 100 }, (_, i) => i),
    counts: Array.from({ length: 100 }, (_, i) => 100 - i),
  };
  const tt = new TwoTowerModel(spec, { layers: [DIM], seed: 1 });
  await saveTower(tt, "query", join(REPO, "models/two_tower/query_tower"), { popularity });
  const dl = new DlrmModel(spec, { embeddingDim: 16, topLayers: [64, 32], seed: 2 });
  await saveDlrm(dl, join(REPO, "models/dlrm"), { popularity });
  const itemIds = Int32Array.from({ length: ITEMS }, (_, i) => i);
  const emb = tt.encode("candidate", {
    length: ITEMS,
    columns: { item_id: itemIds, item_cat: itemIds.map((i) => i % CATS) },
  });
  const ts = new Date(T0);
  await writeParquet(
    join(REPO, "data/embeddings.parquet"),
    {
      length: ITEMS,
      columns: {
        item_id_raw: Array.from(itemIds),
        event_timestamp: new Array<Date>(ITEMS).fill(ts),
        embedding: Array.from({ length: ITEMS }, (_, i) => emb.subarray(i * DIM, (i + 1) * DIM)),
      },
    },
    { item_id_raw: "int64", event_timestamp: "timestamp", embedding: "float32[]" },
  );
  await writeParquet(
    join(REPO, "data/items.parquet"),
    {
      length: ITEMS,
      columns: {
        item_id_raw: Array.from(itemIds),
        event_timestamp: new Array<Date>(ITEMS).fill(ts),
        item_id: Array.from(itemIds),
        item_cat: Array.from(itemIds, (i) => i % CATS),
      },
    },
    { item_id_raw: "int64", event_timestamp: "timestamp", item_id: "int32", item_cat: "int32" },
  );
  await writeParquet(
    join(REPO, "data/users.parquet"),
    Array.from({ length: USERS }, (_, u) => ({
      user_id_raw: userRaw(u),
      event_timestamp: ts,
      user_id: u,
      user_group: u % 10,
    })),
    { user_id_raw: "int64", event_timestamp: "timestamp", user_id: "int32", user_group: "int32" },
  );
  tt.dispose();
  dl.dispose();
  const store = await FeatureStore.open(REPO);
  try {
    await store.apply();
    await store.materialize(T0 - 86400_000, T0 + 86400_000);
  } finally {
    await store.close();
  }
  writeFileSync(join(REPO, "ready"), "");
  console.log(`built ${REPO} (${ITEMS} items x ${DIM}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

const randomUser = () => userRaw(Math.floor(Math.random() * USERS));

/** In-process p50 (µs) back to back, and paced at each HTTP rate (a request every 1/rate s, as the server sees them). */
async function inProcess(): Promise<{ backToBack: number; paced: Map<number, number> }> {
  const { FeatureStore, recommenderFor, RUNNERS, initialState, Prng } = await import("../index.js");
  const store = await FeatureStore.open(REPO);
  const rec = recommenderFor(store);
  const ask = () => store.recommend({ pipeline: "bench", entityRows: [{ user_id_raw: randomUser() }], seed: 1 });
  for (let i = 0; i < 200; i++) await ask();
  const typed = await rec.pipeline("bench");
  const models = await rec.modelsOf(typed);
  const stageTimes: number[][] = typed.stages.map(() => []);
  const whole: number[] = [];
  // whole pipeline and each stage alone, interleaved so they see the same machine
  for (let i = 0; i < ITERATIONS; i++) {
    let t = performance.now();
    const got = await ask();
    whole.push((performance.now() - t) * 1000);
    if (got.results[0].items.length !== 10) throw new Error("bench pipeline answered fewer than 10 items");
    for (let k = 0; k < typed.stages.length; k++) {
      const state = initialState(typed.entityKey, [randomUser()]);
      const ctx = { store, typed, models, rng: new Prng(1), count: () => {} };
      for (let j = 0; j < k; j++) await RUNNERS[typed.stages[j].spec.kind](state, typed.stages[j], ctx);
      t = performance.now();
      await RUNNERS[typed.stages[k].spec.kind](state, typed.stages[k], ctx);
      stageTimes[k].push((performance.now() - t) * 1000);
    }
  }
  let sum = 0;
  typed.stages.forEach((s, k) => {
    const p50 = percentile(stageTimes[k], 50);
    sum += p50;
    report(`in process: stage ${s.spec.name} alone p50`, p50, "µs");
    report(`in process: stage ${s.spec.name} alone p99`, percentile(stageTimes[k], 99), "µs");
  });
  const p50 = percentile(whole, 50);
  report("in process: store.recommend (1 user) p50", p50, "µs", {
    baseline: sum,
    baselineName: "sum of stage p50s",
    target: "<= 1.25x",
    pass: p50 <= 1.25 * sum,
  });
  report("in process: store.recommend (1 user) p99", percentile(whole, 99), "µs");
  // memory not touched for a few ms costs more on these VMs (bench/lib.ts memoryProbe): pace as the HTTP case does
  const paced = new Map<number, number>();
  for (const rate of RATES) {
    const stats = await measure(ask, Math.min(200, rate * SECONDS), 0, 1000 / rate);
    paced.set(rate, stats.p50);
    report(`in process: store.recommend paced at ${rate} req/s p50`, stats.p50, "µs");
  }
  await store.close();
  return { backToBack: p50, paced };
}

// ------------------------------------------------------------------ HTTP (child processes)

type ChildMode = "feature" | "floor" | "load";

async function childMain(mode: ChildMode): Promise<void> {
  if (mode === "load") {
    process.on("message", (m: { job?: Parameters<typeof runLoad>[0] & { users: number }; stop?: boolean }) => {
      if (m.stop) process.exit(0);
      if (!m.job) return;
      const job = m.job;
      const body = {
        prefix: `{"pipeline":"bench","seed":1,"entities":{"user_id_raw":[`,
        suffix: "]}}",
        rows: 1,
        nextId: () => userRaw(Math.floor(Math.random() * job.users)),
      };
      void runLoad({ ...job, body }).then((result) => process.send!({ result }));
    });
    process.send!({ url: "-" });
    return;
  }
  const processes = Number(process.env.FSTORE_BENCH_PROCESSES ?? 1);
  if (processes > 1 && cluster.isPrimary) {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    let up = 0;
    await new Promise<void>((resolve) => {
      cluster.on("listening", () => ++up === processes && resolve());
      for (let i = 0; i < processes; i++) cluster.fork({ FSTORE_BENCH_PORT: String(port) });
    });
    process.on("message", (m: { stop?: boolean }) => {
      if (!m.stop) return;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGKILL");
      process.exit(0);
    });
    process.send!({ url: `http://127.0.0.1:${port}` });
    return;
  }
  let url: string;
  if (mode === "feature") {
    // the built library, as `fs serve` runs it (`npm run bench` builds first)
    const { startFeatureServer } = (await import(
      new URL("../dist/server/server.js", import.meta.url).href
    )) as typeof import("../server/server.js");
    const s = await startFeatureServer({
      repoPath: REPO,
      port: Number(process.env.FSTORE_BENCH_PORT ?? 0),
      logLevel: "warn",
    });
    url = s.url;
    process.on("message", (m: { stop?: boolean }) => m.stop && void s.close().then(() => process.exit(0)));
  } else {
    const answer = Buffer.from(process.env.FSTORE_BENCH_FLOOR_BODY ?? "{}");
    const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      req.on("data", () => {});
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json", "content-length": answer.length });
        res.end(answer);
      });
    });
    await new Promise<void>((r) => server.listen(Number(process.env.FSTORE_BENCH_PORT ?? 0), "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    process.on("message", (m: { stop?: boolean }) => m.stop && process.exit(0));
  }
  if (!cluster.isWorker) process.send!({ url });
}

interface Child {
  proc: ChildProcess;
  url: string;
}

function startChild(mode: ChildMode, env: Record<string, string> = {}): Promise<Child> {
  // the feature server runs with the V8 flags `fs serve` gives its processes
  const proc = fork(SELF, [], {
    execArgv: ["--import", "tsx", ...(mode === "feature" ? SERVER_NODE_FLAGS : [])],
    env: { ...process.env, FSTORE_BENCH_CHILD: mode, ...env },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    proc.once("exit", (code) => reject(new Error(`bench ${mode} child exited with ${code}`)));
    proc.on("message", (m: { url?: string }) => m.url && resolve({ proc, url: m.url }));
  });
}

function stopChild(c: Child): Promise<void> {
  return new Promise((resolve) => {
    c.proc.removeAllListeners("exit");
    c.proc.once("exit", () => resolve());
    c.proc.send({ stop: true });
  });
}

async function load(
  gen: Child,
  url: string,
  o: { rate?: number; connections: number },
): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  return new Promise((resolve) => {
    gen.proc.once("message", (m: { result: { rps: number; p50: number; p99: number; errors: number } }) =>
      resolve(m.result),
    );
    gen.proc.send({
      job: { url, path: "/recommend", connections: o.connections, rate: o.rate, seconds: SECONDS, users: USERS },
    });
  });
}

async function overHttp(inProcessP50Us: Map<number, number>): Promise<void> {
  const { FeatureStore } = await import("../index.js");
  const store = await FeatureStore.open(REPO);
  const sample = JSON.stringify(
    await store.recommend({ pipeline: "bench", entityRows: [{ user_id_raw: userRaw(1) }], seed: 1 }),
  );
  await store.close();
  const gen = await startChild("load");
  const floor = await startChild("floor", { FSTORE_BENCH_FLOOR_BODY: sample });
  const server = await startChild("feature");
  try {
    await load(gen, server.url, { rate: 20, connections: 4 }); // warm-up: models loaded, JIT, caches
    // 200 req/s as the issue asks, and a rate a process sustains when Retrieve alone takes milliseconds
    for (const rate of RATES) {
      const f = await load(gen, floor.url, { rate, connections: 4 });
      const s = await load(gen, server.url, { rate, connections: 4 });
      report(`HTTP: POST /recommend at ${rate} req/s p50`, s.p50 * 1000, "µs", {
        baseline: f.p50 * 1000,
        baselineName: "node:http floor p50",
      });
      report(`HTTP: POST /recommend at ${rate} req/s p99`, s.p99 * 1000, "µs", {
        baseline: f.p99 * 1000,
        baselineName: "node:http floor p99",
      });
      const overhead = s.p50 * 1000 - (inProcessP50Us.get(rate) as number);
      report(`HTTP at ${rate} req/s: p50 minus in-process p50 at that pace`, overhead, "µs", {
        baseline: f.p50 * 1000,
        baselineName: "floor p50",
        target: "<= 2x floor p50",
        pass: overhead <= 2 * f.p50 * 1000,
      });
      if (s.errors) console.log(`  ${s.errors} requests failed or unanswered (the server is saturated at this rate)`);
    }
    const one = await load(gen, server.url, { connections: 8 });
    report("HTTP: throughput, 1 server process (closed loop, 8 conns)", one.rps, "req/s");
  } finally {
    await stopChild(server);
    await stopChild(floor);
  }
  const cores = availableParallelism();
  if (cores > 1) {
    const multi = await startChild("feature", { FSTORE_BENCH_PROCESSES: String(cores) });
    try {
      await load(gen, multi.url, { connections: 8 });
      const r = await load(gen, multi.url, { connections: 8 });
      report(`HTTP: throughput, ${cores} server processes (one per core)`, r.rps, "req/s");
    } finally {
      await stopChild(multi);
    }
  }
  await stopChild(gen);
}

export async function main(): Promise<void> {
  await buildRepo();
  const p50 = await inProcess();
  if (CASES.has("http")) await overHttp(p50.paced);
}

const childMode = process.env.FSTORE_BENCH_CHILD as ChildMode | undefined;
if (childMode) void childMain(childMode);
