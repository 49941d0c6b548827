// A batch run in a process of its own, for the interrupted-run test (killed mid-run): args repo, key prefix, block.
import "../adapters/serving/index.js";
import { recommendBatch } from "../adapters/serving/batch_recommend.js";
import { FeatureStore } from "../stores/feature_store.js";

const [repo, keyPrefix, block] = process.argv.slice(2);
const store = await FeatureStore.open(repo);
await recommendBatch(store, {
  pipeline: "recommender",
  entities: "all",
  to: "redis",
  keyPrefix,
  blockSize: Number(block),
});
await store.close();
