// The example repo's definitions, as notebook 000 writes them for Feast: user and item feature views over the
// ETL outputs (unique rows per user / item with event and created timestamps), keyed by the raw ids, 7-day ttl.
// The data comes from prepareDemoData() (adapters/datasets/demo.ts): `npm run demo`.
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

export const ranking = new FeatureService({
  name: "ranking",
  features: [userFeatures, itemFeatures],
  description: "everything the ranking model reads",
});
export const retrieval = new FeatureService({
  name: "retrieval",
  features: [userFeatures],
  description: "the query tower's inputs",
});
