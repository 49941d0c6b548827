// Online stores, Feast's published benchmark shape: 1M entities, 25 feature views x 10 float features.
// Figures: materialize-style write throughput (1M x 10 features into one view) and online reads
// (1 entity x 25 views; 100 entities x 25 views in one call) on SQLite and Redis, each beside the raw
// client doing the same I/O on the same bytes (better-sqlite3 prepared statements; one ioredis pipeline),
// the two measured in turns (measurePair) so that neither reads pages the other brought in.
// ONLINE_BENCH_N=200000 shrinks the run for a quick look; ONLINE_BENCH_STORES=redis runs one store.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { Registry } from "../registry/registry.js";
import type { FeatureViewSpec } from "../registry/types.js";
import { FeatureStore } from "../stores/feature_store.js";
import { EntityKeyCodec } from "../stores/online/entity_keys.js";
import { SchemaBook, encodeRows } from "../stores/online/payload.js";
import { createOnlineStore, parseRedisConnectionString, sqliteTableName } from "../stores/online/index.js";
import type { OnlineReadGroup, OnlineStore, OnlineWriteBatch } from "../stores/types.js";
import { measure, measurePair, performance, report } from "./lib.js";

const N = Number(process.env.ONLINE_BENCH_N ?? 1_000_000);
const VIEWS = 25;
const FEATURES = 10;
const WRITE_BATCH = 50_000;
const PROJECT = "bench";
const REDIS_URL = "127.0.0.1:6379,db=15";
const here = dirname(fileURLToPath(import.meta.url));
const dataDir = join(here, ".data");

function makeView(i: number): FeatureViewSpec {
  return {
    name: `fv_${String(i).padStart(2, "0")}`,
    entities: ["user"],
    entityColumns: [{ name: "user_id", dtype: "int64" }],
    features: Array.from({ length: FEATURES }, (_, f) => ({ name: `f${f}`, dtype: "float64" as const })),
    ttlSeconds: 0,
    source: {
      type: "file",
      name: "src",
      path: "/dev/null",
      timestampField: "ts",
      fieldMapping: {},
      description: "",
      tags: {},
    },
    online: true,
    tags: {},
    description: "",
    owner: "",
  };
}

/** deterministic pseudo-random floats (xorshift) so both stores get the same data */
function columns(seed: number): Float64Array[] {
  let x = seed * 2654435761 + 1;
  return Array.from({ length: FEATURES }, () => {
    const a = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      a[i] = (x >>> 0) / 4294967296;
    }
    return a;
  });
}

const ids = Float64Array.from({ length: N }, (_, i) => i);
const eventTs = new Float64Array(N).fill(1_700_000_000_000);
const createdTs = new Float64Array(N).fill(1_700_000_000_500);

function slice(view: FeatureViewSpec, cols: Float64Array[], start: number, end: number): OnlineWriteBatch {
  const features: Record<string, ArrayLike<unknown>> = {};
  view.features.forEach((f, i) => (features[f.name] = cols[i].subarray(start, end)));
  return {
    length: end - start,
    keys: { user_id: ids.subarray(start, end) },
    features,
    eventTs: eventTs.subarray(start, end),
    createdTs: createdTs.subarray(start, end),
  };
}

/** write all N rows of one view in materialize-sized batches; rows/s */
async function writeView(store: OnlineStore, view: FeatureViewSpec, cols: Float64Array[]): Promise<number> {
  const t = performance.now();
  let written = 0;
  for (let s = 0; s < N; s += WRITE_BATCH)
    written += await store.write(PROJECT, view, slice(view, cols, s, Math.min(N, s + WRITE_BATCH)));
  if (written !== N) throw new Error(`${store.type}: wrote ${written} of ${N} rows of ${view.name}`);
  return N / ((performance.now() - t) / 1000);
}

/** the same rows as keys + payload buffers, for the raw-client baselines */
function preEncode(
  view: FeatureViewSpec,
  cols: Float64Array[],
  withNames: boolean,
): Array<{ keys: string[]; payloads: Buffer[] }> {
  const codec = new EntityKeyCodec(view, withNames);
  const schema = new SchemaBook().current(view);
  const out = [];
  for (let s = 0; s < N; s += WRITE_BATCH) {
    const b = slice(view, cols, s, Math.min(N, s + WRITE_BATCH));
    const { buf, starts, ends } = encodeRows(view, schema, b);
    const payloads = Array.from({ length: b.length }, (_, r) => buf.subarray(starts[r], ends[r]));
    out.push({ keys: codec.keysOfColumns(b.keys, b.length), payloads });
  }
  return out;
}

let rng = 12345;
function randomId(): number {
  rng = (rng * 1103515245 + 12345) % 2147483648;
  return rng % N;
}

/** One read group: every feature of `views` for the entities `entityIds`. */
function groupsFor(views: FeatureViewSpec[], entityIds: number[]): OnlineReadGroup[] {
  return [
    {
      entityKeys: entityIds.map((id) => [id]),
      views: views.map((view) => ({ view, features: view.features.map((f) => f.name) })),
    },
  ];
}

function randomIds(n: number): number[] {
  return Array.from({ length: n }, randomId);
}

async function checkRead(store: OnlineStore, views: FeatureViewSpec[], allCols: Float64Array[][]): Promise<void> {
  const id = randomId();
  const [res] = await store.read(PROJECT, groupsFor(views, [id]));
  views.forEach((v, i) => {
    const got = res[i].values.f3[0];
    if (got !== allCols[i][3][id])
      throw new Error(`${store.type}: ${v.name} f3 of ${id} is ${String(got)}, expected ${allCols[i][3][id]}`);
  });
}

/**
 * A FeatureStore over `store`: a repo folder whose registry holds the 25 views (committed directly,
 * as apply would, without parquet sources to validate).
 */
async function facadeOver(store: OnlineStore, views: FeatureViewSpec[]): Promise<FeatureStore> {
  const repo = join(dataDir, `repo_${store.type}`);
  rmSync(repo, { recursive: true, force: true });
  mkdirSync(join(repo, "data"), { recursive: true });
  writeFileSync(join(repo, "feature_store.yaml"), `project: ${PROJECT}\nregistry: data/registry.db\nprovider: local\n`);
  const registry = Registry.open(join(repo, "data", "registry.db"));
  registry.commit(PROJECT, {
    upsert: [
      {
        kind: "entity",
        name: "user",
        spec: { name: "user", joinKeys: ["user_id"], valueType: "int64", description: "", tags: {}, owner: "" },
      },
      { kind: "data_source", name: "src", spec: views[0].source },
      ...views.map((v) => ({ kind: "feature_view" as const, name: v.name, spec: v })),
    ],
    remove: [],
  });
  registry.close();
  return FeatureStore.open(repo, { onlineStore: store });
}

async function benchFacade(
  store: OnlineStore,
  views: FeatureViewSpec[],
  raw1: { p50: number; p99: number },
  raw100: { p50: number; p99: number },
): Promise<void> {
  const fs = await facadeOver(store, views);
  const features = views.flatMap((v) => v.features.map((f) => `${v.name}:${f.name}`));
  const check = await fs.getOnlineFeatures({ features, entities: { user_id: [randomId()] }, fullFeatureNames: true });
  if (Object.keys(check.toObject()).length !== 1 + features.length)
    throw new Error("facade: unexpected response shape");
  const f1 = await measure(
    () => fs.getOnlineFeatures({ features, entities: { user_id: [randomId()] }, fullFeatureNames: true }),
    ITER_1,
  );
  report(`${store.type} FeatureStore.getOnlineFeatures 1 entity x 250 features p99`, f1.p99, "us", {
    baseline: raw1.p99,
    baselineName: "raw client",
  });
  report(`${store.type} FeatureStore.getOnlineFeatures 1 entity x 250 features p50`, f1.p50, "us", {
    baseline: raw1.p50,
    baselineName: "raw client",
  });
  const f100 = await measure(
    () => fs.getOnlineFeatures({ features, entities: { user_id: randomIds(100) }, fullFeatureNames: true }),
    ITER_100,
  );
  report(`${store.type} FeatureStore.getOnlineFeatures 100 entities x 250 features p99`, f100.p99 / 1000, "ms", {
    baseline: raw100.p99 / 1000,
    baselineName: "raw client",
  });
  report(`${store.type} FeatureStore.getOnlineFeatures 100 entities x 250 features p50`, f100.p50 / 1000, "ms", {
    baseline: raw100.p50 / 1000,
    baselineName: "raw client",
  });
  await fs.close(); // closes `store` too
  rmSync(join(dataDir, `repo_${store.type}`), { recursive: true, force: true });
}

const ITER_1 = 5000;
const ITER_100 = 1000;

async function benchSqlite(views: FeatureViewSpec[], allCols: Float64Array[][]): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, "online_bench.db");
  for (const suffix of ["", "-wal", "-shm"]) rmSync(path + suffix, { force: true });
  const store = await createOnlineStore({ type: "sqlite", path });
  await store.update(PROJECT, views, []);

  const wps = await writeView(store, views[0], allCols[0]);
  // raw baseline: the same upsert of pre-encoded keys and payloads, one transaction per batch
  const raw = new Database(path);
  // same settings as the store, so the ratio is the store's own overhead
  raw.pragma("synchronous = NORMAL");
  raw.pragma("mmap_size = 17179869184");
  raw.pragma("cache_size = -131072");
  raw.exec(
    `CREATE TABLE raw_upsert (entity_key TEXT NOT NULL, view TEXT NOT NULL, event_ts INTEGER NOT NULL, created_ts INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (entity_key, view)) WITHOUT ROWID`,
  );
  const pre = preEncode(views[0], allCols[0], false);
  const ins = raw.prepare(
    "INSERT INTO raw_upsert VALUES (?, ?, ?, ?, ?) ON CONFLICT(entity_key, view) DO UPDATE SET event_ts = excluded.event_ts, created_ts = excluded.created_ts, payload = excluded.payload WHERE excluded.event_ts > raw_upsert.event_ts OR (excluded.event_ts = raw_upsert.event_ts AND excluded.created_ts >= raw_upsert.created_ts)",
  );
  const t0 = performance.now();
  for (const b of pre) {
    raw.transaction(() => {
      for (let r = 0; r < b.keys.length; r++)
        ins.run(b.keys[r], views[0].name, 1_700_000_000_000, 1_700_000_000_500, b.payloads[r]);
    })();
  }
  const rawWps = N / ((performance.now() - t0) / 1000);
  raw.exec("DROP TABLE raw_upsert");
  report(`sqlite write ${N} x ${FEATURES} features (rows/s)`, wps, "rows/s", {
    baseline: rawWps,
    baselineName: "raw upsert of pre-encoded rows",
    target: ">= 300000",
    pass: wps >= 300_000,
  });

  const t1 = performance.now();
  let lastWps = 0;
  for (let v = 1; v < views.length; v++) lastWps = await writeView(store, views[v], allCols[v]);
  console.log(`sqlite: wrote the other ${views.length - 1} views in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  // views of one entity share a table (one seek reads them all); the price: a view written into a table
  // that already holds 24 others dirties a page per row
  report(`sqlite write of view ${views.length} into the shared entity table (rows/s)`, lastWps, "rows/s", {
    baseline: wps,
    baselineName: "first view",
  });
  await checkRead(store, views, allCols);

  // raw reads of the same bytes: prepared statements over the store's table, one row per (entity, view), no decoding
  const table = `"${sqliteTableName(PROJECT, views[0])}"`;
  const oneEntity = raw.prepare(`SELECT view, frame FROM ${table} WHERE entity_key = ?`).raw(true);
  const hundredEntities = raw
    .prepare(`SELECT entity_key, view, frame FROM ${table} WHERE entity_key IN (${"?,".repeat(99)}?)`)
    .raw(true);

  const [s1, r1] = await measurePair(
    () => store.read(PROJECT, groupsFor(views, [randomId()])),
    () => oneEntity.all(String(randomId())),
    ITER_1,
  );
  report("sqlite read 1 entity x 25 views p99", s1.p99, "us", {
    baseline: r1.p99,
    baselineName: "raw prepared SELECT",
    target: "<= 300 us",
    pass: s1.p99 <= 300,
  });
  report("sqlite read 1 entity x 25 views p50", s1.p50, "us", {
    baseline: r1.p50,
    baselineName: "raw prepared SELECT",
  });

  const [s100, r100] = await measurePair(
    () => store.read(PROJECT, groupsFor(views, randomIds(100))),
    () => hundredEntities.all(...randomIds(100).map(String)),
    ITER_100,
  );
  report("sqlite read 100 entities x 25 views p99", s100.p99 / 1000, "ms", {
    baseline: r100.p99 / 1000,
    baselineName: "raw IN (...)",
    target: "<= 5 ms",
    pass: s100.p99 <= 5000,
  });
  report("sqlite read 100 entities x 25 views p50", s100.p50 / 1000, "ms", {
    baseline: r100.p50 / 1000,
    baselineName: "raw IN (...)",
  });
  raw.close();
  await benchFacade(store, views, r1, r100);
  for (const suffix of ["", "-wal", "-shm"]) rmSync(path + suffix, { force: true });
}

async function benchRedis(views: FeatureViewSpec[], allCols: Float64Array[][]): Promise<void> {
  const raw = new Redis(parseRedisConnectionString(REDIS_URL));
  await raw.flushdb();
  const store = await createOnlineStore({ type: "redis", connectionString: REDIS_URL, keyTtlSeconds: 0 });
  try {
    const wps = await writeView(store, views[0], allCols[0]);
    // raw baseline: pipelined HSET of the same keys and payloads (no newer-wins check), into other keys
    const pre = preEncode(views[0], allCols[0], true);
    const t0 = performance.now();
    for (const b of pre) {
      const p = raw.pipeline();
      for (let r = 0; r < b.keys.length; r++) p.hset(`rawbench:${b.keys[r]}`, views[0].name, b.payloads[r]);
      await p.exec();
    }
    const rawWps = N / ((performance.now() - t0) / 1000);
    report(`redis write ${N} x ${FEATURES} features (rows/s)`, wps, "rows/s", {
      baseline: rawWps,
      baselineName: "raw pipelined HSET, no ts check",
      target: ">= 150000",
      pass: wps >= 150_000,
    });
    for (let s = 0; s < N; s += 10_000) {
      const p = raw.pipeline();
      for (let r = s; r < Math.min(N, s + 10_000); r++) p.unlink(`rawbench:user_id=${r}`);
      await p.exec();
    }

    const t1 = performance.now();
    for (let v = 1; v < views.length; v++) await writeView(store, views[v], allCols[v]);
    console.log(
      `redis: wrote the other ${views.length - 1} views in ${((performance.now() - t1) / 1000).toFixed(1)} s; used_memory ${(/used_memory_human:(\S+)/.exec(await raw.info("memory")) ?? [])[1]}`,
    );
    await checkRead(store, views, allCols);

    const fields = views.map((v) => v.name);
    const [s1, r1] = await measurePair(
      () => store.read(PROJECT, groupsFor(views, [randomId()])),
      () =>
        raw
          .pipeline()
          .hmgetBuffer(`${PROJECT}:user_id=${randomId()}`, ...fields)
          .exec(),
      ITER_1,
    );
    report("redis read 1 entity x 25 views p99", s1.p99, "us", {
      baseline: r1.p99,
      baselineName: "raw HMGET pipeline",
      target: "<= 1000 us",
      pass: s1.p99 <= 1000,
    });
    report("redis read 1 entity x 25 views p50", s1.p50, "us", {
      baseline: r1.p50,
      baselineName: "raw HMGET pipeline",
    });

    const [s100, r100] = await measurePair(
      () => store.read(PROJECT, groupsFor(views, randomIds(100))),
      () => {
        const p = raw.pipeline();
        for (const id of randomIds(100)) p.hmgetBuffer(`${PROJECT}:user_id=${id}`, ...fields);
        return p.exec();
      },
      ITER_100,
    );
    report("redis read 100 entities x 25 views p99", s100.p99 / 1000, "ms", {
      baseline: r100.p99 / 1000,
      baselineName: "raw HMGET pipeline",
      target: "<= 8 ms",
      pass: s100.p99 <= 8000,
    });
    report("redis read 100 entities x 25 views p50", s100.p50 / 1000, "ms", {
      baseline: r100.p50 / 1000,
      baselineName: "raw HMGET pipeline",
    });
    await benchFacade(store, views, r1, r100);
  } finally {
    await raw.flushdb();
    await raw.quit();
    await store.close();
  }
}

export async function main(): Promise<void> {
  const views = Array.from({ length: VIEWS }, (_, i) => makeView(i));
  const t = performance.now();
  const allCols = views.map((_, i) => columns(i + 1));
  console.log(
    `${N} entities x ${VIEWS} views x ${FEATURES} float64 features; data generated in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  // figures on a shared machine depend on what else runs: print the load beside them
  const load = () =>
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} on ${cpus().length} cores`;
  console.log(load());
  const stores = (process.env.ONLINE_BENCH_STORES ?? "sqlite,redis").split(",");
  if (stores.includes("sqlite")) {
    await benchSqlite(views, allCols);
    console.log(load());
  }
  if (stores.includes("redis")) {
    await benchRedis(views, allCols);
    console.log(load());
  }
}
