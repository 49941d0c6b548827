// `fs init`: a small working feature repository with generated parquet data, so that
// `fs apply && fs materialize-incremental now && fs get-online-features ...` works right away.

import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ValidationError } from "../common/errors.js";

const DEFINITIONS = `import { Entity, FeatureService, FeatureView, Field, FileSource, PushSource } from "fstore";

// A shopper; its join key is the column user_id in every source and request.
export const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64", description: "a shopper" });
export const item = new Entity({ name: "item", joinKeys: ["item_id"], valueType: "int64", description: "a product" });

const userStatsSource = new FileSource({
  name: "user_stats_source",
  path: "data/user_stats.parquet",
  timestampField: "event_timestamp",
  createdTimestampColumn: "created",
});

export const userStats = new FeatureView({
  name: "user_stats",
  entities: [user],
  ttl: "7d",
  schema: [
    new Field({ name: "clicks_7d", dtype: "int64" }),
    new Field({ name: "avg_order_value", dtype: "float64" }),
    new Field({ name: "favorite_category", dtype: "string" }),
    new Field({ name: "recent_items", dtype: "int64[]" }),
  ],
  source: userStatsSource,
  online: true,
  tags: { team: "recs" },
  description: "rolling shopper statistics, refreshed hourly",
});

// Fresh values arrive through the push source (fs serve: POST /push); offline they land in the same file.
export const itemPush = new PushSource({
  name: "item_stats_push",
  batchSource: new FileSource({ name: "item_stats_source", path: "data/item_stats.parquet", timestampField: "event_timestamp", createdTimestampColumn: "created" }),
});

export const itemStats = new FeatureView({
  name: "item_stats",
  entities: [item],
  ttl: "1d",
  schema: [new Field({ name: "price", dtype: "float64" }), new Field({ name: "category", dtype: "string" }), new Field({ name: "ctr", dtype: "float32" })],
  source: itemPush,
  online: true,
});

export const recommenderV1 = new FeatureService({
  name: "recommender_v1",
  features: [userStats, itemStats.select(["price", "ctr"])],
});
`;

function yaml(project: string): string {
  return `project: ${project}
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online_store.db
# online_store:
#   type: redis
#   connection_string: "127.0.0.1:6379,db=0"
offline_store:
  type: duckdb
entity_key_serialization_version: 3
`;
}

/** A deterministic generator, so a new repo always has the same data shape. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CATEGORIES = ["books", "garden", "music", "outdoor", "toys", "kitchen"];

/** Hourly rows over the last days, ending at the last full hour before `now`. */
export async function writeSampleData(dataDir: string, now = Date.now(), users = 20, items = 50): Promise<void> {
  // loaded here, not at the top: cli/commands.ts imports every command when `fs` starts, and only init needs it
  const { writeParquet } = await import("../stores/offline/parquet.js");
  const rand = rng(42);
  const hour = 3600_000;
  const last = Math.floor(now / hour) * hour;
  const userRows: Array<Record<string, unknown>> = [];
  for (let u = 1; u <= users; u++) {
    for (let h = 0; h < 72; h += 6) {
      const ts = last - h * hour;
      userRows.push({
        user_id: u,
        event_timestamp: ts,
        created: ts + 60_000,
        clicks_7d: Math.floor(rand() * 100),
        avg_order_value: Math.round(rand() * 20000) / 100,
        favorite_category: CATEGORIES[Math.floor(rand() * CATEGORIES.length)],
        recent_items: Array.from({ length: 3 }, () => 1 + Math.floor(rand() * items)),
      });
    }
  }
  await writeParquet(join(dataDir, "user_stats.parquet"), userRows, {
    user_id: "int64",
    event_timestamp: "timestamp",
    created: "timestamp",
    clicks_7d: "int64",
    avg_order_value: "float64",
    favorite_category: "string",
    recent_items: "int64[]",
  });
  const itemRows: Array<Record<string, unknown>> = [];
  for (let i = 1; i <= items; i++) {
    const ts = last - Math.floor(rand() * 12) * hour;
    itemRows.push({
      item_id: i,
      event_timestamp: ts,
      created: ts,
      price: Math.round(rand() * 10000) / 100,
      category: CATEGORIES[i % CATEGORIES.length],
      ctr: Math.round(rand() * 1000) / 10000,
    });
  }
  await writeParquet(join(dataDir, "item_stats.parquet"), itemRows, {
    item_id: "int64",
    event_timestamp: "timestamp",
    created: "timestamp",
    price: "float64",
    category: "string",
    ctr: "float32",
  });
}

/** Create `dir` (which must be missing or empty) as a feature repo named `project`. */
export async function initRepo(dir: string, project: string): Promise<string> {
  const repo = resolve(dir);
  if (!/^[A-Za-z0-9_]+$/.test(project))
    throw new ValidationError(`project name "${project}" must hold only letters, digits and _`);
  if (existsSync(repo) && readdirSync(repo).length > 0)
    throw new ValidationError(`${repo} exists and is not empty; give a new folder name`);
  mkdirSync(join(repo, "data"), { recursive: true });
  writeFileSync(join(repo, "feature_store.yaml"), yaml(project));
  writeFileSync(join(repo, "features.ts"), DEFINITIONS);
  writeFileSync(join(repo, ".gitignore"), "data/*.db\ndata/*.db-*\n");
  await writeSampleData(join(repo, "data"));
  return repo;
}
