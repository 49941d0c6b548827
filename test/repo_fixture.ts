// A temporary feature repository with real parquet sources, for registry, facade and CLI tests.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Dtype, FeatureViewSpec, FieldSpec } from "../registry/types.js";
import { writeParquet } from "../stores/offline/parquet.js";

export const T0 = Date.parse("2024-01-01T00:00:00Z");
export const HOUR = 3600_000;
export const DAY = 24 * HOUR;

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `fstore-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const DEFINITIONS = `import { Entity, FeatureService, FeatureView, Field, FileSource, PushSource } from "fstore";

export const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64" });
export const item = new Entity({ name: "item", joinKeys: ["item_id"], valueType: "int64" });

export const userFeatures = new FeatureView({
  name: "user_features",
  entities: [user],
  ttl: "2d",
  schema: [new Field({ name: "age", dtype: "int64" }), new Field({ name: "city", dtype: "string" }), new Field({ name: "seen", dtype: "int64[]" })],
  source: new FileSource({ name: "users_src", path: "data/users.parquet", timestampField: "event_timestamp", createdTimestampColumn: "created" }),
});

export const itemPush = new PushSource({
  name: "item_push",
  batchSource: new FileSource({ name: "items_src", path: "data/items.parquet", timestampField: "event_timestamp" }),
});

export const itemFeatures = new FeatureView({
  name: "item_features",
  entities: [item],
  ttl: 0,
  schema: [new Field({ name: "price", dtype: "float64" })],
  source: itemPush,
});

export const ranking = new FeatureService({ name: "ranking", features: [userFeatures, itemFeatures.select(["price"])] });
`;

export function yaml(project: string, online = "online_store:\n  type: sqlite\n  path: data/online.db\n"): string {
  return `project: ${project}\nregistry: data/registry.db\nprovider: local\n${online}offline_store:\n  type: duckdb\n`;
}

/**
 * users: user 1 has rows at T0-3d (age 30), T0-1d (age 31) and two at T0 (age 32 created T0, age 33 created T0+1m);
 * user 2 one row at T0-1h; user 3 one row at T0+1d (after T0).
 */
export async function writeRepo(dir: string, project = "test_repo", online?: string): Promise<void> {
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(join(dir, "feature_store.yaml"), yaml(project, online));
  writeFileSync(join(dir, "features.ts"), DEFINITIONS);
  await writeParquet(
    join(dir, "data/users.parquet"),
    [
      { user_id: 1, event_timestamp: T0 - 3 * DAY, created: T0 - 3 * DAY, age: 30, city: "Oslo", seen: [1] },
      { user_id: 1, event_timestamp: T0 - DAY, created: T0 - DAY, age: 31, city: "Oslo", seen: [1, 2] },
      { user_id: 1, event_timestamp: T0, created: T0, age: 32, city: "Bergen", seen: [] },
      { user_id: 1, event_timestamp: T0, created: T0 + 60_000, age: 33, city: "Bergen", seen: [3] },
      { user_id: 2, event_timestamp: T0 - HOUR, created: T0 - HOUR, age: 40, city: null, seen: null },
      { user_id: 3, event_timestamp: T0 + DAY, created: T0 + DAY, age: 50, city: "Rome", seen: [9] },
    ],
    {
      user_id: "int64",
      event_timestamp: "timestamp",
      created: "timestamp",
      age: "int64",
      city: "string",
      seen: "int64[]",
    },
  );
  await writeParquet(
    join(dir, "data/items.parquet"),
    [
      { item_id: 10, event_timestamp: T0 - DAY, price: 9.5 },
      { item_id: 11, event_timestamp: T0 - 400 * DAY, price: 1.25 },
    ],
    { item_id: "int64", event_timestamp: "timestamp", price: "float64" },
  );
}

/** A registered view's spec, built directly (no repo): entity and feature columns with their dtypes. */
export function viewSpec(
  name: string,
  entityColumns: Array<[string, Dtype]>,
  features: Array<[string, Dtype]>,
): FeatureViewSpec {
  const f = (list: Array<[string, Dtype]>): FieldSpec[] => list.map(([n, dtype]) => ({ name: n, dtype }));
  return {
    name,
    entities: entityColumns.map(([n]) => n.replace(/_id$/, "")),
    entityColumns: f(entityColumns),
    features: f(features),
    ttlSeconds: 0,
    source: {
      type: "file",
      name: `${name}_src`,
      path: "/nowhere.parquet",
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

/** Counts turns of the event loop (a setImmediate that re-arms itself) until stop(). */
export function turnCounter(): { turns: () => number; stop: () => void } {
  let turns = 0;
  let running = true;
  const spin = () => {
    turns++;
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  return { turns: () => turns, stop: () => void (running = false) };
}
