// A temporary feature repository for the feature server tests: definitions importing "fstore", parquet
// sources written by DuckDB, SQLite or Redis online store (unique key prefix, deleted after).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { openDuckDB } from "../common/duckdb.js";
import { FeatureStore } from "../stores/feature_store.js";

export type OnlineKind = "sqlite" | "redis";

export const HOUR = 3600_000;
export const DAY = 24 * HOUR;

/** Fixed reference time: data sits relative to it so statuses (PRESENT / OUTSIDE_MAX_AGE) are certain. */
export const NOW = Math.floor(Date.now() / 1000) * 1000;

export const DEFINITIONS = `import { Entity, FeatureService, FeatureView, Field, FileSource, PushSource } from "fstore";

export const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64" });
export const item = new Entity({ name: "item", joinKeys: ["item_id"], valueType: "string" });

export const userFeatures = new FeatureView({
  name: "user_features",
  entities: [user],
  ttl: "7d",
  schema: [
    new Field({ name: "age", dtype: "int64" }),
    new Field({ name: "score", dtype: "float64" }),
    new Field({ name: "city", dtype: "string" }),
    new Field({ name: "recent", dtype: "int64[]" }),
  ],
  source: new FileSource({ name: "user_source", path: "data/user_features.parquet", timestampField: "event_timestamp", createdTimestampColumn: "created" }),
  online: true,
});

export const itemPush = new PushSource({
  name: "item_push",
  batchSource: new FileSource({ name: "item_source", path: "data/item_stats.parquet", timestampField: "event_timestamp" }),
});

export const itemStats = new FeatureView({
  name: "item_stats",
  entities: [item],
  ttl: 0,
  schema: [new Field({ name: "price", dtype: "float64" }), new Field({ name: "views", dtype: "int64" })],
  source: itemPush,
  online: true,
});

export const ranking = new FeatureService({ name: "ranking", features: [userFeatures.select(["age", "score"]), itemStats.select(["price"])] });
`;

/** An extra view appended by the registry-change test (applied from another FeatureStore instance). */
export const EXTRA_VIEW = `
export const userCity = new FeatureView({
  name: "user_city",
  entities: [user],
  ttl: 0,
  schema: [new Field({ name: "city", dtype: "string" })],
  source: new FileSource({ name: "user_city_source", path: "data/user_features.parquet", timestampField: "event_timestamp" }),
  online: true,
});
`;

export interface TestRepo {
  dir: string;
  project: string;
  online: OnlineKind;
  redisPrefix?: string;
  cleanup(): Promise<void>;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

async function writeSources(dir: string): Promise<void> {
  const db = await openDuckDB();
  const c = db.connection;
  try {
    const ts = (ms: number) => `TIMESTAMP '${iso(ms).replace("T", " ").replace("Z", "")}'`;
    // user 1: fresh; user 2: older than the 7d ttl (OUTSIDE_MAX_AGE); user 3: absent (NOT_FOUND).
    // user 1 has two rows: the later one must win.
    await c.run(`COPY (SELECT * FROM (VALUES
        (1::BIGINT, 30::BIGINT, 0.5::DOUBLE, 'paris', [1, 2]::BIGINT[], ${ts(NOW - 2 * DAY)}, ${ts(NOW - 2 * DAY)}),
        (1::BIGINT, 31::BIGINT, 0.75::DOUBLE, 'lyon', [3, 4, 5]::BIGINT[], ${ts(NOW - HOUR)}, ${ts(NOW - HOUR)}),
        (2::BIGINT, 45::BIGINT, 0.25::DOUBLE, 'nice', []::BIGINT[], ${ts(NOW - 10 * DAY)}, ${ts(NOW - 10 * DAY)})
      ) t(user_id, age, score, city, recent, event_timestamp, created)) TO '${join(dir, "data/user_features.parquet")}' (FORMAT parquet)`);
    await c.run(`COPY (SELECT * FROM (VALUES
        ('i1', 9.5::DOUBLE, 100::BIGINT, ${ts(NOW - HOUR)})
      ) t(item_id, price, views, event_timestamp)) TO '${join(dir, "data/item_stats.parquet")}' (FORMAT parquet)`);
  } finally {
    db.close();
  }
}

/** Create the repo, apply it (not materialized: the tests materialize over HTTP). */
export async function createTestRepo(online: OnlineKind, opts: { registryTtlSec?: number } = {}): Promise<TestRepo> {
  const dir = mkdtempSync(join(tmpdir(), "fstore-server-"));
  mkdirSync(join(dir, "data"));
  const tag = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const project = `srv_${tag}`;
  const redisPrefix = online === "redis" ? `fstore_srv_test_${tag}` : undefined;
  const onlineYaml =
    online === "sqlite"
      ? "online_store:\n  type: sqlite\n  path: data/online_store.db\n"
      : `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=0"\n  key_prefix: ${redisPrefix}\n`;
  writeFileSync(
    join(dir, "feature_store.yaml"),
    `project: ${project}\nregistry: data/registry.db\nprovider: local\n${onlineYaml}offline_store:\n  type: duckdb\nregistry_ttl_sec: ${opts.registryTtlSec ?? 1}\n`,
  );
  writeFileSync(join(dir, "definitions.ts"), DEFINITIONS);
  await writeSources(dir);
  const store = await FeatureStore.open(dir);
  try {
    await store.apply();
  } finally {
    await store.close();
  }
  return {
    dir,
    project,
    online,
    redisPrefix,
    async cleanup() {
      if (redisPrefix) {
        const r = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true });
        await r.connect();
        let cursor = "0";
        do {
          const [next, keys] = await r.scan(cursor, "MATCH", `${redisPrefix}*`, "COUNT", 1000);
          if (keys.length) await r.del(...keys);
          cursor = next;
        } while (cursor !== "0");
        await r.quit();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Apply the repo with one more view, from a FeatureStore instance other than the server's. */
export async function applyExtraView(repo: TestRepo): Promise<void> {
  writeFileSync(join(repo.dir, "definitions.ts"), DEFINITIONS + EXTRA_VIEW);
  const store = await FeatureStore.open(repo.dir);
  try {
    await store.apply();
  } finally {
    await store.close();
  }
}

export interface HttpResult {
  status: number;
  json: Record<string, unknown>;
  text: string;
  headers: Headers;
}

async function readResult(res: Response): Promise<HttpResult> {
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON (metrics)
  }
  return { status: res.status, json, text, headers: res.headers };
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return readResult(
    await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return readResult(await fetch(url, { headers }));
}
