// The example repo's definitions, as notebook 000 writes them for Feast: user and item feature views over the
// ETL outputs (unique rows per user / item with event and created timestamps), keyed by the raw ids, 7-day ttl.
// The data comes from prepareDemoData() (adapters/datasets/demo.ts): `npm run demo`. The serving pipeline that
// reads these views is written beside them as recommender.ts once its models are trained (scripts/demo.ts).
import { Entity, FeatureService, FeatureView, Field, FileSource } from "fstore";

export const user = new Entity({
  name: "user",
  joinKeys: ["user_id_raw"],
  valueType: "int64",
  description: "a shopper, by raw user id",
});
export const item = new Entity({
  name: "item",
  joinKeys: ["item_id_raw"],
  valueType: "int64",
  description: "a product, by raw item id",
});

const int32 = (name: string, description?: string) => new Field({ name, dtype: "int32", description });

const userSource = new FileSource({
  name: "user_source",
  path: "data/user_features.parquet",
  timestampField: "event_timestamp",
  createdTimestampColumn: "created",
});

const itemSource = new FileSource({
  name: "item_source",
  path: "data/item_features.parquet",
  timestampField: "event_timestamp",
  createdTimestampColumn: "created",
});

export const userFeatures = new FeatureView({
  name: "user_features",
  entities: [user],
  ttl: "7d",
  schema: [
    int32("user_id", "categorified user id (model input)"),
    ...[
      "user_shops",
      "user_profile",
      "user_group",
      "user_gender",
      "user_age",
      "user_consumption_1",
      "user_consumption_2",
      "user_is_occupied",
      "user_geography",
      "user_intentions",
      "user_brands",
      "user_categories",
    ].map((n) => int32(n)),
  ],
  source: userSource,
  online: true,
  tags: { team: "recs" },
});

export const itemFeatures = new FeatureView({
  name: "item_features",
  entities: [item],
  ttl: "7d",
  schema: [
    int32("item_id", "categorified item id (model input)"),
    ...["item_category", "item_shop", "item_intention", "item_brand"].map((n) => int32(n)),
  ],
  source: itemSource,
  online: true,
  tags: { team: "recs" },
});

export const userHistory = new FeatureView({
  name: "user_history",
  entities: [user],
  ttl: "7d",
  schema: [new Field({ name: "seen_items", dtype: "int64[]", description: "raw ids of the items the user clicked" })],
  source: new FileSource({
    name: "user_history_source",
    path: "data/user_history.parquet",
    timestampField: "event_timestamp",
    createdTimestampColumn: "created",
  }),
  online: true,
  tags: { team: "recs" },
});

// `fs train two-tower --embeddings-view item_embeddings` writes the vectors online and appends them to the offline
// file, where `fs recommend batch` reads the catalogue.
export const itemEmbeddings = new FeatureView({
  name: "item_embeddings",
  entities: [item],
  ttl: 0,
  schema: [
    new Field({
      name: "embedding",
      dtype: "float32[]",
      vectorIndex: true,
      vectorLength: 64,
      vectorSearchMetric: "inner_product",
      description: "the two-tower item tower's output; the query tower's dot product scores it",
    }),
  ],
  source: new FileSource({
    name: "item_embeddings_source",
    path: "data/item_embeddings.parquet",
    timestampField: "event_timestamp",
    createdTimestampColumn: "created",
  }),
  online: true,
  tags: { team: "recs" },
});

export const ranking = new FeatureService({
  name: "ranking",
  features: [userFeatures, itemFeatures],
  description: "everything the ranking model reads",
});
export const rankingItems = new FeatureService({
  name: "ranking_items",
  features: [itemFeatures],
  description: "the item side of the ranking model, read per candidate",
});
export const retrieval = new FeatureService({
  name: "retrieval",
  features: [userFeatures],
  description: "the query tower's inputs",
});
