// Shared by the vector tests: a repo with an item view of three vector fields (one per metric), random
// vectors, and brute force computed independently of the store.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeParquet } from "../stores/offline/parquet.js";
import { DAY, T0 } from "./repo_fixture.js";

export const DIM = 8;

/** A seeded generator, so a failure reproduces. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

export function vectorDefinitions(ttl: string | number = 0): string {
  return `import { Entity, FeatureView, Field, FileSource, PushSource } from "fstore";
export const item = new Entity({ name: "item", joinKeys: ["item_id"], valueType: "int64" });
const vec = (name: string, metric: "cosine" | "inner_product" | "l2") =>
  new Field({ name, dtype: "float32[]", vectorIndex: true, vectorLength: ${DIM}, vectorSearchMetric: metric });
export const itemPush = new PushSource({
  name: "emb_push",
  batchSource: new FileSource({ name: "emb_src", path: "data/emb.parquet", timestampField: "event_timestamp" }),
});
export const itemEmbeddings = new FeatureView({
  name: "item_embeddings",
  entities: [item],
  ttl: ${JSON.stringify(ttl)},
  schema: [vec("cos", "cosine"), vec("ip", "inner_product"), vec("l2", "l2")],
  source: itemPush,
});
export const itemFeatures = new FeatureView({
  name: "item_features",
  entities: [item],
  ttl: 0,
  schema: [new Field({ name: "category", dtype: "int64" }), new Field({ name: "title", dtype: "string" })],
  source: new FileSource({ name: "cat_src", path: "data/cat.parquet", timestampField: "event_timestamp" }),
});
`;
}

export async function writeVectorRepo(dir: string, vectors: number[][], online?: string, ttl: string | number = 0) {
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(
    join(dir, "feature_store.yaml"),
    `project: vec_repo\nregistry: data/registry.db\nprovider: local\n${online ?? "online_store:\n  type: sqlite\n  path: data/online.db\n"}offline_store:\n  type: duckdb\n  threads: 1\n`,
  );
  writeFileSync(join(dir, "features.ts"), vectorDefinitions(ttl));
  await writeParquet(
    join(dir, "data/emb.parquet"),
    vectors.map((v, i) => ({ item_id: i, event_timestamp: T0 - DAY, cos: v, ip: v, l2: v })),
    { item_id: "int64", event_timestamp: "timestamp", cos: "float32[]", ip: "float32[]", l2: "float32[]" },
  );
  await writeParquet(
    join(dir, "data/cat.parquet"),
    vectors.map((_, i) => ({ item_id: i, event_timestamp: T0 - DAY, category: i % 3, title: `item ${i}` })),
    { item_id: "int64", event_timestamp: "timestamp", category: "int64", title: "string" },
  );
}

export function randomVectors(n: number, dim: number, seed: number): number[][] {
  const r = rng(seed);
  // float32 values, so that the test's distances use what the store holds
  return Array.from({ length: n }, () => Array.from({ length: dim }, () => Math.fround(r() * 2 - 1)));
}

/** Brute force in float64, written independently of the store's code. */
export function bruteForce(
  vectors: Map<number, number[]>,
  q: number[],
  metric: "cos" | "ip" | "l2",
  k: number,
): Array<{ id: number; d: number }> {
  const dist = (v: number[]) => {
    const dot = v.reduce((s, x, i) => s + x * q[i], 0);
    if (metric === "ip") return 1 - dot;
    if (metric === "l2") return Math.sqrt(v.reduce((s, x, i) => s + (x - q[i]) ** 2, 0));
    const nv = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const nq = Math.sqrt(q.reduce((s, x) => s + x * x, 0));
    return 1 - dot / (nv * nq);
  };
  return [...vectors]
    .map(([id, v]) => ({ id, d: dist(v) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, k);
}
