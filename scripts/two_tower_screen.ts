// Screens two-tower settings on MovieLens ml-latest-small: Recall@10 over the full catalogue with the user's
// training items excluded, after every epoch. VALIDATION=1 leaves each user's last rating out altogether and makes
// the second-to-last the target (the split the defaults were chosen on); otherwise the target is the last rating,
// as in scripts/recommend_quality.ts. Popularity on the same split is printed first, for the ratio.
// Run: `FSTORE_DATA_DIR=../shared/data npx tsx scripts/two_tower_screen.ts [--validation] [--seeds 1,2,3]
//   [--epochs 5] [--batch-size 256] [--learning-rate 0.005] [--learning-rate-end 0.3] [--temperature 0.05]
//   [--dot] [--exclude last_item] [--history 20] [--mean-pooling] [--own-history-table]`
// (unset flags take the library's defaults; the history options change the loader's recent_items column).
import { parseArgs } from "node:util";
import { dataSetDir } from "../adapters/datasets/index.js";
import { initBackend } from "../adapters/models/backend.js";
import { TWO_TOWER_DEFAULTS, TWO_TOWER_JOB_DEFAULTS } from "../adapters/models/defaults.js";
import { takeRows } from "../adapters/models/frame.js";
import { itemCounts, listMetrics } from "../adapters/models/metrics.js";
import { leaveLastOut, loadMovieLens } from "../adapters/models/movielens.js";
import { selectInputs, type SchemaColumn } from "../adapters/models/schema.js";
import { fit } from "../adapters/models/train.js";
import { TwoTowerModel } from "../adapters/models/two_tower.js";
import { blockedTopK } from "../adapters/serving/exact_retrieval.js";

const K = 10;
const { values: flags } = parseArgs({
  options: {
    validation: { type: "boolean", default: false },
    seeds: { type: "string", default: "1,2,3" },
    epochs: { type: "string", default: String(TWO_TOWER_JOB_DEFAULTS.epochs) },
    "batch-size": { type: "string", default: String(TWO_TOWER_JOB_DEFAULTS.batchSize) },
    "learning-rate": { type: "string", default: String(TWO_TOWER_DEFAULTS.learningRate) },
    "learning-rate-end": { type: "string", default: String(TWO_TOWER_JOB_DEFAULTS.learningRateEnd) },
    temperature: { type: "string", default: String(TWO_TOWER_DEFAULTS.temperature) },
    dot: { type: "boolean", default: false },
    exclude: { type: "string", default: "last_item" },
    history: { type: "string", default: "20" },
    "mean-pooling": { type: "boolean", default: false },
    "own-history-table": { type: "boolean", default: false },
  },
});
const num = (name: keyof typeof flags) => {
  const x = Number(flags[name]);
  if (!Number.isFinite(x) || x <= 0) throw new Error(`--${name} must be a positive number, got ${String(flags[name])}`);
  return x;
};

async function main(): Promise<void> {
  await initBackend("auto", () => {});
  const ml = await loadMovieLens(dataSetDir("ml-latest-small"), { historyLength: num("history") });
  const schema: SchemaColumn[] = ml.schema.map((c) => {
    if (c.name !== "recent_items") return c;
    const properties = { ...c.properties };
    if (flags["mean-pooling"]) delete properties.pooling;
    if (flags["own-history-table"]) delete properties.domain;
    return { ...c, properties };
  });
  const all = flags.validation ? takeRows(ml.interactions, leaveLastOut(ml.interactions).train) : ml.interactions;
  const split = leaveLastOut(all);
  const train = takeRows(all, split.train);
  const test = takeRows(all, split.test);
  const n = test.length;
  const target = test.columns.item_id as Int32Array;
  const rowOfUser = new Map<number, number>();
  (test.columns.user_id as Int32Array).forEach((u, r) => rowOfUser.set(u, r));
  const seen: Array<Set<number>> = Array.from({ length: n }, () => new Set());
  const tu = train.columns.user_id as Int32Array;
  const ti = train.columns.item_id as Int32Array;
  for (let k = 0; k < train.length; k++) seen[rowOfUser.get(tu[k]) as number].add(ti[k]);
  const recallOf = (lists: Int32Array[]) =>
    lists.reduce((a, l, r) => a + listMetrics(l, new Set([target[r]]), K).recall, 0) / n;

  const counts = itemCounts(ti, ml.nItems);
  const byCount = Int32Array.from({ length: ml.nItems }, (_, i) => i).sort((a, b) => counts[b] - counts[a] || a - b);
  const popularity = recallOf(seen.map((s) => byCount.filter((i) => !s.has(i)).slice(0, K)));
  const splitName = flags.validation ? "validation (second-to-last rating)" : "test (last rating)";
  console.log(`${splitName}: ${n} users, popularity Recall@${K} ${popularity.toFixed(4)}`);

  const spec = selectInputs(schema, { maxEmbeddingDim: 64, exclude: flags.exclude.split(",").filter(Boolean) });
  const itemIds = Array.from({ length: ml.nItems }, (_, i) => i);
  const finals: number[] = [];
  for (const seed of flags.seeds.split(",").map(Number)) {
    const tt = new TwoTowerModel(spec, {
      seed,
      learningRate: num("learning-rate"),
      temperature: num("temperature"),
      l2Normalize: !flags.dot,
    });
    const t0 = performance.now();
    let last = 0;
    fit(tt, train, {
      epochs: num("epochs"),
      batchSize: num("batch-size"),
      learningRateEnd: num("learning-rate-end"),
      seed,
      afterEpoch: (epoch) => {
        const items = { ids: itemIds, embeddings: tt.encode("candidate", ml.items), dim: tt.dim };
        const top = blockedTopK(tt.encode("query", test), n, items, K, undefined, (r) => seen[r]);
        last = recallOf(Array.from({ length: n }, (_, r) => top.index.slice(top.offsets[r], top.offsets[r + 1])));
        const s = ((performance.now() - t0) / 1000).toFixed(0);
        console.log(
          `seed ${seed} epoch ${epoch}: Recall@${K} ${last.toFixed(4)} (${(last / popularity).toFixed(2)}x popularity, ${s} s)`,
        );
      },
    });
    tt.dispose();
    finals.push(last);
  }
  const mean = finals.reduce((a, b) => a + b, 0) / finals.length;
  console.log(
    `last epoch over seeds ${flags.seeds}: Recall@${K} mean ${mean.toFixed(4)} (${(mean / popularity).toFixed(2)}x popularity), min ${Math.min(...finals).toFixed(4)}, max ${Math.max(...finals).toFixed(4)}`,
  );
}

await main();
