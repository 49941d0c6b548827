// A feature repository with everything a serving pipeline needs, built by hand: users (categorified id, group,
// seen items), items (categorified id, category), item embeddings from a two-tower model's item tower, and saved
// query-tower and DLRM folders (small untrained models with seeded weights: the tests compare the pipeline with
// the same models scoring alone, so the weights need not be good), all materialized into SQLite.
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

export const USERS = 6;
export const ITEMS = 40;
export const CATS = 5;
/** raw ids (the join keys) are the categorified index plus an offset, so the two are never confused */
export const userRaw = (u: number) => 100 + u;
export const itemRaw = (i: number) => 1000 + i;
/** items the item view lacks (they have embeddings only): the missing-features cases */
export const NO_FEATURES = [7, 8];
export const catOf = (i: number) => i % CATS;
/** user u has seen items u, u+1, u+2 (raw ids) */
export const seenOf = (u: number) => [itemRaw(u), itemRaw(u + 1), itemRaw(u + 2)];
/** popularity saved with the models: item i interacted with ITEMS - i times */
export const POPULAR = Array.from({ length: ITEMS }, (_, i) => itemRaw(i));

export const SCHEMA = [
  { name: "user_id", dtype: "int32", tags: ["categorical", "user", "user_id"], properties: { cardinality: USERS } },
  { name: "user_group", dtype: "int32", tags: ["categorical", "user"], properties: { cardinality: 3 } },
  { name: "item_id", dtype: "int32", tags: ["categorical", "item", "item_id"], properties: { cardinality: ITEMS } },
  { name: "item_cat", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: CATS } },
  { name: "click", dtype: "int32", tags: ["target", "binary_classification"], properties: {} },
];

export const PIPELINES = `import { Pipeline, QueryFeatures, QueryTower, Retrieve, FilterSeen, Filter, ItemFeatures, Rank, Order } from "fstore";
import { user } from "./features";

export const recommender = new Pipeline({ name: "recommender", entity: user, stages: [
  new QueryFeatures({ features: "retrieval" }),
  new QueryTower({ model: "models/two_tower" }),
  new Retrieve({ vectors: "item_embeddings:embedding", topK: 20 }),
  new FilterSeen({ feature: "user_history:seen_items" }),
  new Filter("item_cat != 3"),
  new ItemFeatures({ features: "ranking_items" }),
  new Rank({ model: "models/dlrm" }),
  new Order({ topK: 5, strategy: "greedy" }),
]});

export const dropping = new Pipeline({ name: "dropping", entity: user, fallback: "none", stages: [
  new QueryFeatures({ features: "retrieval" }),
  new QueryTower({ model: "models/two_tower" }),
  new Retrieve({ vectors: "item_embeddings:embedding", topK: 100 }),
  new ItemFeatures({ features: "ranking_items", missing: "drop" }),
  new Rank({ model: "models/dlrm" }),
  new Order({ topK: 100 }),
]});

export const sampled = new Pipeline({ name: "sampled", entity: user, logging: { destination: "data/served", sampleRate: 1 }, stages: [
  new QueryFeatures({ features: "retrieval" }),
  new QueryTower({ model: "models/two_tower" }),
  new Retrieve({ vectors: "item_embeddings:embedding", topK: 30 }),
  new ItemFeatures({ features: "ranking_items" }),
  new Rank({ model: "models/dlrm" }),
  new Order({ topK: 8, strategy: "softmax", temperature: 0.05, diversity: { feature: "item_cat", maxPerValue: 2 } }),
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
  schema: [new Field({ name: "embedding", dtype: "float32[]", vectorIndex: true, vectorLength: 8, vectorSearchMetric: "inner_product" })] });

export const retrieval = new FeatureService({ name: "retrieval", features: [userFeatures] });
export const rankingItems = new FeatureService({ name: "ranking_items", features: [itemFeatures] });
`;

export interface ServingRepo {
  /** the item embeddings the vector view holds: raw ids and row-major [ITEMS, dim] */
  items: { ids: number[]; embeddings: Float32Array; dim: number };
  /** the models, for scoring alone */
  twoTower: TwoTowerModel;
  dlrm: DlrmModel;
}

/** Write the repo into `dir` (feature_store.yaml, features.ts, pipelines.ts, data/, models/). */
export async function writeServingRepo(dir: string, project: string): Promise<ServingRepo> {
  await initBackend("cpu", () => {});
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(join(dir, "feature_store.yaml"), yaml(project));
  writeFileSync(join(dir, "features.ts"), FEATURES);
  writeFileSync(join(dir, "pipelines.ts"), PIPELINES);
  const spec = selectInputs(parseSchema(SCHEMA));
  const twoTower = new TwoTowerModel(spec, { layers: [8], seed: 3 });
  const dlrm = new DlrmModel(spec, { embeddingDim: 4, topLayers: [8], seed: 4 });
  const popularity = { idColumn: "item_id_raw", ids: POPULAR, counts: POPULAR.map((_, i) => ITEMS - i) };
  await saveTower(twoTower, "query", join(dir, "models/two_tower/query_tower"), { popularity });
  await saveDlrm(dlrm, join(dir, "models/dlrm"), { popularity });

  const itemFrame: Frame = {
    length: ITEMS,
    columns: {
      item_id: Int32Array.from({ length: ITEMS }, (_, i) => i),
      item_cat: Int32Array.from({ length: ITEMS }, (_, i) => catOf(i)),
    },
  };
  const embeddings = twoTower.encode("candidate", itemFrame);
  const dim = twoTower.dim;
  const ts = new Date(T0);
  const ids = Array.from({ length: ITEMS }, (_, i) => itemRaw(i));
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
    ids
      .map((id, i) => ({ item_id_raw: id, event_timestamp: ts, item_id: i, item_cat: catOf(i) }))
      .filter((_, i) => !NO_FEATURES.includes(i)),
    { item_id_raw: "int64", event_timestamp: "timestamp", item_id: "int32", item_cat: "int32" },
  );
  // user USERS - 1 is in no view: the store does not know it
  const known = Array.from({ length: USERS - 1 }, (_, u) => u);
  await writeParquet(
    join(dir, "data/users.parquet"),
    known.map((u) => ({ user_id_raw: userRaw(u), event_timestamp: ts, user_id: u, user_group: u % 3 })),
    { user_id_raw: "int64", event_timestamp: "timestamp", user_id: "int32", user_group: "int32" },
  );
  await writeParquet(
    join(dir, "data/history.parquet"),
    known.map((u) => ({ user_id_raw: userRaw(u), event_timestamp: ts, seen_items: seenOf(u) })),
    { user_id_raw: "int64", event_timestamp: "timestamp", seen_items: "int64[]" },
  );
  return { items: { ids, embeddings, dim }, twoTower, dlrm };
}
