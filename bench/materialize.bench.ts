// Materialize end to end through the FeatureStore facade: 1,000,000 entities x 10 float features from a
// parquet source (DuckDB latest-per-entity) into SQLite and into Redis. Targets: >= 300,000 rows/s into
// SQLite, >= 150,000 rows/s into Redis. Baselines in the same run: DuckDB's pull alone, and the raw client
// writing the same number of rows (better-sqlite3 prepared upserts in one transaction; ioredis pipelines).
// MATERIALIZE_BENCH_N shrinks the run.
// Then Feast's benchmark shape: 25 views x 10 features of the same entity (MATERIALIZE_BENCH_VIEWS_N
// entities, default 100,000) into SQLite, all views in one materialize (written together, a key range at a
// time) against the same views materialized one after another in the same run (each view's rows spread
// over the table the earlier views filled).
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { openDuckDB } from "../common/duckdb.js";
import { FeatureStore } from "../stores/feature_store.js";
import { peakRssMb, performance, report } from "./lib.js";

const N = Number(process.env.MATERIALIZE_BENCH_N ?? 1_000_000);
const VIEWS_N = Number(process.env.MATERIALIZE_BENCH_VIEWS_N ?? 100_000);
const VIEWS = 25;
const F = 10;
const here = dirname(fileURLToPath(import.meta.url));
const dataDir = join(here, ".data");
const source = join(dataDir, `materialize_${N}.parquet`);

async function ensureSource(): Promise<void> {
  if (existsSync(source)) return;
  mkdirSync(dataDir, { recursive: true });
  const db = await openDuckDB();
  const conn = db.connection;
  const feats = Array.from({ length: F }, (_, i) => `random() AS f${i}`).join(", ");
  // two versions per entity, so latest-per-entity has real work to do
  await conn.run(
    `COPY (SELECT (i % ${N})::BIGINT AS user_id, TIMESTAMP '2024-01-01' + to_seconds(i) AS event_timestamp, TIMESTAMP '2024-01-01' + to_seconds(i) AS created, ${feats}
      FROM range(${2 * N}) t(i)) TO '${source}' (FORMAT parquet)`,
  );
  db.close();
}

function writeRepo(dir: string, online: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "feature_store.yaml"), `project: mat_bench\nregistry: registry.db\n${online}`);
  const fields = Array.from({ length: F }, (_, i) => `new Field({ name: "f${i}", dtype: "float64" })`).join(", ");
  writeFileSync(
    join(dir, "defs.ts"),
    `import { Entity, FeatureView, Field, FileSource } from "fstore";
export const user = new Entity({ name: "user", joinKeys: ["user_id"] });
export const stats = new FeatureView({ name: "stats", entities: [user], ttl: 0, schema: [${fields}],
  source: new FileSource({ name: "src", path: ${JSON.stringify(source)}, timestampField: "event_timestamp", createdTimestampColumn: "created" }) });
`,
  );
}

async function materializeRate(kind: string, online: string): Promise<number> {
  const dir = join(dataDir, `materialize_repo_${kind}`);
  rmSync(dir, { recursive: true, force: true });
  writeRepo(dir, online);
  const store = await FeatureStore.open(dir);
  try {
    await store.apply();
    const t = performance.now();
    const res = await store.materialize("2023-12-31", "2030-01-01");
    const s = (performance.now() - t) / 1000;
    if (res.views[0].rows !== N) throw new Error(`materialized ${res.views[0].rows} rows, expected ${N}`);
    await store.teardown();
    return N / s;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function rawSqliteRate(): number {
  const path = join(dataDir, "raw_sqlite.db");
  rmSync(path, { force: true });
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec("CREATE TABLE t (k BLOB PRIMARY KEY, event_ts INTEGER, created_ts INTEGER, v BLOB) WITHOUT ROWID");
  const payload = Buffer.alloc(F * 8 + 8, 1);
  const key = Buffer.alloc(8);
  const stmt = db.prepare(
    "INSERT INTO t VALUES (?, ?, ?, ?) ON CONFLICT(k) DO UPDATE SET event_ts = excluded.event_ts, created_ts = excluded.created_ts, v = excluded.v WHERE excluded.event_ts >= event_ts",
  );
  const t = performance.now();
  const batch = db.transaction((lo: number, hi: number) => {
    for (let i = lo; i < hi; i++) {
      key.writeBigInt64BE(BigInt(i));
      stmt.run(key, i, i, payload);
    }
  });
  for (let lo = 0; lo < N; lo += 50_000) batch(lo, Math.min(N, lo + 50_000));
  const s = (performance.now() - t) / 1000;
  db.close();
  rmSync(path, { force: true });
  return N / s;
}

async function rawRedisRate(): Promise<number> {
  const redis = new Redis({ host: "127.0.0.1", port: 6379, db: 14 });
  const payload = Buffer.alloc(F * 8 + 16, 1);
  const t = performance.now();
  for (let lo = 0; lo < N; lo += 10_000) {
    const p = redis.pipeline();
    for (let i = lo; i < Math.min(N, lo + 10_000); i++) p.hset(`raw:${i}`, "stats", payload);
    await p.exec();
  }
  const s = (performance.now() - t) / 1000;
  await redis.flushdb();
  redis.disconnect();
  return N / s;
}

/** 25 parquet files of VIEWS_N entities x F features each, and a repo of 25 views over them. */
async function ensureViewsRepo(dir: string): Promise<string[]> {
  const files = Array.from({ length: VIEWS }, (_, v) => join(dataDir, `views_${VIEWS_N}_${v}.parquet`));
  if (!files.every((f) => existsSync(f))) {
    mkdirSync(dataDir, { recursive: true });
    const db = await openDuckDB();
    const conn = db.connection;
    for (const [v, file] of files.entries()) {
      const feats = Array.from({ length: F }, (_, i) => `random() AS v${v}_f${i}`).join(", ");
      await conn.run(
        `COPY (SELECT range::BIGINT AS user_id, ${feats}, TIMESTAMP '2024-01-01' + to_seconds(range % 86400) AS event_timestamp FROM range(${VIEWS_N})) TO '${file}' (FORMAT parquet)`,
      );
    }
    db.close();
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "feature_store.yaml"),
    "project: mat_views_bench\nregistry: registry.db\nonline_store:\n  type: sqlite\n  path: online.db\n",
  );
  const views = files.map((file, v) => {
    const fields = Array.from({ length: F }, (_, i) => `new Field({ name: "v${v}_f${i}", dtype: "float64" })`).join(
      ", ",
    );
    return `export const v${v} = new FeatureView({ name: "view_${v}", entities: [user], ttl: 0, schema: [${fields}],
  source: new FileSource({ name: "src_${v}", path: ${JSON.stringify(file)}, timestampField: "event_timestamp" }) });`;
  });
  writeFileSync(
    join(dir, "defs.ts"),
    `import { Entity, FeatureView, Field, FileSource } from "fstore";\nexport const user = new Entity({ name: "user", joinKeys: ["user_id"] });\n${views.join("\n")}\n`,
  );
  return files.map((_, v) => `view_${v}`);
}

/** Rows/s materializing the 25 views into a fresh SQLite store: together, or one view per materialize call. */
async function viewsRate(together: boolean): Promise<number> {
  const dir = join(dataDir, `materialize_views_${together ? "together" : "one_by_one"}`);
  const names = await ensureViewsRepo(dir);
  const store = await FeatureStore.open(dir);
  try {
    await store.apply();
    const t = performance.now();
    if (together) await store.materialize("2023-12-31", "2030-01-01");
    else for (const view of names) await store.materialize("2023-12-31", "2030-01-01", { views: [view] });
    const s = (performance.now() - t) / 1000;
    await store.teardown();
    return (VIEWS * VIEWS_N) / s;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(): Promise<void> {
  await ensureSource();
  console.log(`source: ${2 * N} rows (${N} entities x 2 versions) x ${F} float features`);
  const sqlite = await materializeRate("sqlite", "online_store:\n  type: sqlite\n  path: online.db\n");
  report("materialize -> SQLite (fstore materialize)", sqlite, "rows/s", {
    baseline: rawSqliteRate(),
    baselineName: "raw better-sqlite3 upserts",
    target: ">= 300000 rows/s",
    pass: sqlite >= 300_000,
  });
  const redis = await materializeRate(
    "redis",
    'online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=13"\n',
  );
  report("materialize -> Redis (fstore materialize)", redis, "rows/s", {
    baseline: await rawRedisRate(),
    baselineName: "raw ioredis pipelined HSET",
    target: ">= 150000 rows/s",
    pass: redis >= 150_000,
  });
  const together = await viewsRate(true);
  report(`materialize ${VIEWS} views x ${VIEWS_N} entities -> SQLite, all at once`, together, "rows/s", {
    baseline: await viewsRate(false),
    baselineName: "the views one by one",
  });
  report("peak RSS", peakRssMb(), "MB");
}
