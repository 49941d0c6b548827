// A feature repository for batch recommendations, built by hand and materialized: users (categorified id, group,
// seen items), items (categorified id, category), item embeddings from a two-tower model's item tower, and saved
// query-tower and DLRM folders (small untrained models with seeded weights: batch is compared with the same
// pipeline run per user, so the weights need not be good). The last user is in no view (the popularity fallback).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initBackend } from "../adapters/models/backend.js";
import { saveDlrm, saveTower } from "../adapters/models/artifacts.js";
import { DlrmModel } from "../adapters/models/dlrm.js";
import type { Frame } from "../adapters/models/frame.js";
import { parseSchema, selectInputs } from "../adapters/models/schema.js";
import { TwoTowerModel } from "../adapters/models/two_tower.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { T0, yaml } from "./repo_fixture.js";

export const CATS = 5;
export const userRaw = (u: number) => 100 + u;
export const itemRaw = (i: number) => 1000 + i;
export const catOf = (i: number) => i % CATS;
/** user u has seen items 3u .. 3u + 5 (mod the catalogue), raw ids */
export const seenOf = (u: number, items: number) => Array.from({ length: 6 }, (_, k) => itemRaw((3 * u + k) % items));

const PIPELINES = `import { Pipeline, QueryFeatures, QueryTower, Retrieve, FilterSeen, Filter, ItemFeatures, Rank, Order } from "fstore";
import { user } from "./features";

export const recommender = new Pipeline({ name: "recommender", entity: user, stages: [
  new QueryFeatures({ features: "retrieval" }),
  new QueryTower({ model: "models/two_tower" }),
  new Retrieve({ vectors: "item_embeddings:embedding", topK: 20 }),
  new FilterSeen({ feature: "user_history:seen_items" }),
  new ItemFeatures({ features: "ranking_items" }),
  new Filter("item_cat != 3"),
  new Rank({ model: "models/dlrm" }),
  new Order({ topK: 5, strategy: "greedy" }),
]});

export const bench = new Pipeline({ name: "bench", entity: user, stages: [
  new QueryFeatures({ features: "retrieval" }),
  new QueryTower({ model: "models/two_tower" }),
  new Retrieve({ vectors: "item_embeddings:embedding", topK: 100 }),
  new FilterSeen({ feature: "user_history:seen_items" }),
  new ItemFeatures({ features: "ranking_items" }),
  new Rank({ model: "models/dlrm" }),
  new Order({ topK: 10, strategy: "greedy" }),
]});

export const plain = new Pipeline({ name: "plain", entity: user, stages: [
  new QueryFeatures({ features: "retrieval" }),
  new QueryTower({ model: "models/two_tower" }),
  new Retrieve({ vectors: "item_embeddings:embedding", topK: 8 }),
]});
`;

const FEATURES = `import { Entity, FeatureService, FeatureView, Field, FileSource } from "fstore";

export const user = new Entity({ name: "user", joinKeys: ["user_id_raw"], valueType: "int64" });
export const item = new Entity({ name: "item", joinKeys: ["item_id_raw"], valueType: "int64" });
const src = (name: string) => new FileSource({ name, path: \`data/\${name}.parquet\`, timestampField: "event_timestamp" });

export const userFeatures = new FeatureView({ name: "user_features", entities: [user], source: src("users"),
  schema: [new Field({ name: "user_id", dtype: "int32" }), new Field({ name: "user_group", dtype: "int32" })] });
export const userHistory = new FeatureView({ name: "user_history", entities: [user], source: src("history"),
  schema: [new Field({ name: "seen_items", dtype: "int64[]" })] });
export const itemFeatures = new FeatureView({ name: "item_features", entities: [item], source: src("items"),
  schema: [new Field({ name: "item_id", dtype: "int32" }), new Field({ name: "item_cat", dtype: "int32" })] });
export const itemEmbeddings = new FeatureView({ name: "item_embeddings", entities: [item], source: src("embeddings"),
  schema: [new Field({ name: "embedding", dtype: "float32[]" })] });

export const retrieval = new FeatureService({ name: "retrieval", features: [userFeatures] });
export const rankingItems = new FeatureService({ name: "ranking_items", features: [itemFeatures] });
`;

export interface BatchRepo {
  users: number;
  items: { ids: number[]; embeddings: Float32Array; dim: number };
  /** raw ids of the users the store knows (the last of `users` is unknown) */
  known: number[];
  popular: number[];
}

export interface BatchRepoOptions {
  /** the embedding's length (the towers' last layer); default 8 */
  dim?: number;
  /** default "cpu" (the tests); the bench takes "wasm" */
  backend?: "cpu" | "wasm";
}

/** Write the repo into `dir`; the caller applies and materializes it. */
export async function writeBatchRepo(
  dir: string,
  project: string,
  users: number,
  items: number,
  o: BatchRepoOptions = {},
): Promise<BatchRepo> {
  await initBackend(o.backend ?? "cpu", () => {});
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(join(dir, "feature_store.yaml"), yaml(project));
  writeFileSync(join(dir, "features.ts"), FEATURES);
  writeFileSync(join(dir, "pipelines.ts"), PIPELINES);
  const schema = [
    { name: "user_id", dtype: "int32", tags: ["categorical", "user", "user_id"], properties: { cardinality: users } },
    { name: "user_group", dtype: "int32", tags: ["categorical", "user"], properties: { cardinality: 3 } },
    { name: "item_id", dtype: "int32", tags: ["categorical", "item", "item_id"], properties: { cardinality: items } },
    { name: "item_cat", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: CATS } },
    { name: "click", dtype: "int32", tags: ["target", "binary_classification"], properties: {} },
  ];
  const spec = selectInputs(parseSchema(schema));
  const twoTower = new TwoTowerModel(spec, { layers: [o.dim ?? 8], seed: 3 });
  const dlrm = new DlrmModel(spec, { embeddingDim: 4, topLayers: [8], seed: 4 });
  const popular = Array.from({ length: items }, (_, i) => itemRaw(i));
  const popularity = { idColumn: "item_id_raw", ids: popular, counts: popular.map((_, i) => items - i) };
  await saveTower(twoTower, "query", join(dir, "models/two_tower/query_tower"), { popularity });
  await saveDlrm(dlrm, join(dir, "models/dlrm"), { popularity });
  const itemFrame: Frame = {
    length: items,
    columns: {
      item_id: Int32Array.from({ length: items }, (_, i) => i),
      item_cat: Int32Array.from({ length: items }, (_, i) => catOf(i)),
    },
  };
  const embeddings = twoTower.encode("candidate", itemFrame);
  const dim = twoTower.dim;
  twoTower.dispose();
  dlrm.dispose();
  const ts = new Date(T0);
  const ids = Array.from({ length: items }, (_, i) => itemRaw(i));
  await writeParquet(
    join(dir, "data/embeddings.parquet"),
    ids.map((id, i) => ({
      item_id_raw: id,
      event_timestamp: ts,
      embedding: embeddings.subarray(i * dim, (i + 1) * dim),
    })),
    { item_id_raw: "int64", event_timestamp: "timestamp", embedding: "float32[]" },
  );
  await writeParquet(
    join(dir, "data/items.parquet"),
    ids.map((id, i) => ({ item_id_raw: id, event_timestamp: ts, item_id: i, item_cat: catOf(i) })),
    { item_id_raw: "int64", event_timestamp: "timestamp", item_id: "int32", item_cat: "int32" },
  );
  const knownIdx = Array.from({ length: users - 1 }, (_, u) => u);
  await writeParquet(
    join(dir, "data/users.parquet"),
    knownIdx.map((u) => ({ user_id_raw: userRaw(u), event_timestamp: ts, user_id: u, user_group: u % 3 })),
    { user_id_raw: "int64", event_timestamp: "timestamp", user_id: "int32", user_group: "int32" },
  );
  await writeParquet(
    join(dir, "data/history.parquet"),
    knownIdx.map((u) => ({ user_id_raw: userRaw(u), event_timestamp: ts, seen_items: seenOf(u, items) })),
    { user_id_raw: "int64", event_timestamp: "timestamp", seen_items: "int64[]" },
  );
  return { users, items: { ids, embeddings, dim }, known: knownIdx.map(userRaw), popular };
}
