// Recommendation quality on MovieLens ml-latest-small (issue 17, "Quality"): temporal leave-last-out (each user's
// latest rating is the target, the rest trains), ranked over the full catalogue, Recall@10 and NDCG@10 of
//   popularity (training counts), two-tower with exact retrieval (blockedTopK, as `fs recommend batch`),
//   two-tower with the ANN (the feature store's vector view and retrieveOnlineDocuments),
//   and the pipeline: retrieve 200 (exact or ANN) -> DLRM -> greedy top 10,
// each with and without the seen filter (the user's training items never recommended).
// Also, for the record: DLRM trained against hard negatives (the two-tower's top 50 for each training row).
// Run: `npx tsx scripts/recommend_quality.ts` (FSTORE_DATA_DIR holds ml-latest-small/); env TT_EPOCHS, TT_SEEDS
// (the two-tower's exact retrieval again on these seeds, default 1,2,3), DLRM_EPOCHS, HARD_NEGATIVES=0 (skip the
// hard-negative DLRM), BASELINES_ONLY=1 (popularity and co-occurrence only), OUT (a folder for results.json).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import "../adapters/serving/index.js";
import { dataSetDir } from "../adapters/datasets/index.js";
import { initBackend } from "../adapters/models/backend.js";
import { TWO_TOWER_JOB_DEFAULTS } from "../adapters/models/defaults.js";
import { DlrmModel } from "../adapters/models/dlrm.js";
import { takeRows, type Frame } from "../adapters/models/frame.js";
import { listMetrics, itemCounts } from "../adapters/models/metrics.js";
import { leaveLastOut, loadMovieLens } from "../adapters/models/movielens.js";
import { selectInputs } from "../adapters/models/schema.js";
import { fit } from "../adapters/models/train.js";
import { TwoTowerModel } from "../adapters/models/two_tower.js";
import { blockedTopK, type TopK } from "../adapters/serving/exact_retrieval.js";
import { FstoreError } from "../common/errors.js";
import { FeatureStore } from "../stores/feature_store.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { tempDir } from "../test/repo_fixture.js";

const K = 10;
const RETRIEVE = 200;
const log = (s: string) => process.stderr.write(`${s}\n`);

type Lists = Int32Array[];

function evaluate(lists: Lists, target: Int32Array): { recall: number; ndcg: number } {
  let recall = 0;
  let ndcg = 0;
  lists.forEach((l, r) => {
    const m = listMetrics(l, new Set([target[r]]), K);
    recall += m.recall;
    ndcg += m.ndcg;
  });
  return { recall: recall / lists.length, ndcg: ndcg / lists.length };
}

function listsOf(top: TopK, n: number): Lists {
  return Array.from({ length: n }, (_, r) => top.index.slice(top.offsets[r], top.offsets[r + 1]));
}

/**
 * A vector view of the item embeddings in a temporary repo, searched through retrieveOnlineDocuments. With
 * `l2`, the maximum inner product search becomes a nearest-neighbour one (each item gets one more value,
 * sqrt(max|x|^2 - |x|^2), each query a 0), which HNSW indexes well: inner products of unnormalised vectors are not
 * a distance, and a graph built on them connects poorly.
 */
async function annSearch(raw: Float32Array, rawDim: number, nItems: number, l2 = false) {
  const dim = l2 ? rawDim + 1 : rawDim;
  let embeddings = raw;
  if (l2) {
    embeddings = new Float32Array(nItems * dim);
    const norms = Array.from({ length: nItems }, (_, i) => {
      let s = 0;
      for (let t = 0; t < rawDim; t++) s += raw[i * rawDim + t] ** 2;
      return s;
    });
    const max = Math.max(...norms);
    for (let i = 0; i < nItems; i++) {
      embeddings.set(raw.subarray(i * rawDim, (i + 1) * rawDim), i * dim);
      embeddings[i * dim + rawDim] = Math.sqrt(Math.max(0, max - norms[i]));
    }
  }
  const { dir, cleanup } = tempDir("quality-ann");
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(
    join(dir, "feature_store.yaml"),
    "project: quality\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: duckdb\n",
  );
  writeFileSync(
    join(dir, "features.ts"),
    `import { Entity, FeatureView, Field, FileSource } from "fstore";
export const item = new Entity({ name: "item", joinKeys: ["item_id"], valueType: "int64" });
export const itemEmbeddings = new FeatureView({ name: "item_embeddings", entities: [item], ttl: 0,
  schema: [new Field({ name: "embedding", dtype: "float32[]", vectorIndex: true, vectorLength: ${dim}, vectorSearchMetric: "${l2 ? "l2" : "inner_product"}" })],
  source: new FileSource({ name: "emb", path: "data/emb.parquet", timestampField: "event_timestamp" }) });
`,
  );
  const ts = new Date("2024-01-01T00:00:00Z");
  await writeParquet(
    join(dir, "data/emb.parquet"),
    Array.from({ length: nItems }, (_, i) => ({
      item_id: i,
      event_timestamp: ts,
      embedding: embeddings.subarray(i * dim, (i + 1) * dim),
    })),
    { item_id: "int64", event_timestamp: "timestamp", embedding: "float32[]" },
  );
  const store = await FeatureStore.open(dir);
  await store.apply();
  await store.materialize("2023-01-01", "2025-01-01");
  return {
    async search(query: Float32Array, topK: number, exclude?: Set<number>): Promise<Int32Array> {
      const q = l2 ? Float32Array.from([...query, 0]) : query;
      const res = await store.retrieveOnlineDocuments({
        features: ["item_embeddings:embedding"],
        query: q,
        topK,
        exclude: exclude ? [...exclude] : undefined,
      });
      return Int32Array.from(res.toObject().item_id as unknown[], (v) => Number(v));
    },
    async close() {
      await store.close();
      cleanup();
    },
  };
}

function cooccurrence(
  users: Int32Array,
  items: Int32Array,
  n: number,
  rowOfUser: Map<number, number>,
  seen: Array<Set<number>>,
  w: number,
): Lists {
  const follows = new Map<number, Map<number, number>>();
  const history: number[][] = Array.from({ length: n }, () => []);
  for (let k = 0; k < users.length; k++) {
    history[rowOfUser.get(users[k]) as number].push(items[k]);
    for (let j = 1; j <= w && k + j < users.length && users[k + j] === users[k]; j++) {
      const m = follows.get(items[k]) ?? new Map<number, number>();
      follows.set(items[k], m);
      m.set(items[k + j], (m.get(items[k + j]) ?? 0) + 1 / j);
    }
  }
  return history.map((h, r) => {
    const score = new Map<number, number>();
    for (let j = 1; j <= w && j <= h.length; j++)
      for (const [i, c] of follows.get(h[h.length - j]) ?? [])
        if (!seen[r].has(i)) score.set(i, (score.get(i) ?? 0) + c / j);
    const top = [...score].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, K);
    return Int32Array.from(top, (x) => x[0]);
  });
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const backend = await initBackend("auto", log);
  const ml = await loadMovieLens(dataSetDir("ml-latest-small"));
  const split = leaveLastOut(ml.interactions);
  const train = takeRows(ml.interactions, split.train);
  const test = takeRows(ml.interactions, split.test);
  const n = test.length;
  const nItems = ml.nItems;
  const target = test.columns.item_id as Int32Array;
  const testUser = test.columns.user_id as Int32Array;
  const rowOfUser = new Map<number, number>();
  testUser.forEach((u, r) => rowOfUser.set(u, r));
  const seen: Array<Set<number>> = Array.from({ length: n }, () => new Set());
  const tu = train.columns.user_id as Int32Array;
  const ti = train.columns.item_id as Int32Array;
  for (let k = 0; k < train.length; k++) seen[rowOfUser.get(tu[k]) as number].add(ti[k]);
  const targetSeen = target.filter((t, r) => seen[r].has(t)).length;
  log(`ml-latest-small: ${ml.interactions.length} ratings, ${n} users, ${nItems} items (backend ${backend})`);
  const rows: Array<{ model: string; seenFilter: boolean; recall: number; ndcg: number }> = [];
  const add = (model: string, seenFilter: boolean, lists: Lists) => {
    const m = evaluate(lists, target);
    rows.push({ model, seenFilter, ...m });
    log(
      `${model} (seen filter ${seenFilter ? "on" : "off"}): Recall@${K} ${m.recall.toFixed(4)} NDCG@${K} ${m.ndcg.toFixed(4)}`,
    );
    return m;
  };

  // popularity: training counts over the whole catalogue
  const counts = itemCounts(ti, nItems);
  const byCount = Int32Array.from({ length: nItems }, (_, i) => i).sort((a, b) => counts[b] - counts[a] || a - b);
  for (const filter of [false, true])
    add(
      "popularity",
      filter,
      Array.from({ length: n }, (_, r) => (filter ? byCount.filter((i) => !seen[r].has(i)) : byCount).slice(0, K)),
    );

  // For reference, a model-free sequential baseline: items that followed the user's last 10 items within 10
  // steps in other users' training histories, weighted 1/gap and 1/recency.
  add("co-occurrence (last 10 items)", true, cooccurrence(tu, ti, n, rowOfUser, seen, 10));
  if (process.env.BASELINES_ONLY === "1") return;

  // two-tower (the library and job defaults: cosine towers at temperature 0.05, logQ correction, lr 0.005 falling to
  // 0.3 of it, batch 256, 5 epochs) on user id, genres, year and the history, recency-pooled on the item id's table
  // (the loader's schema). last_item is left out: the pooled history weighs it most already, and without it the
  // validation split (each user's second-to-last rating) went from 0.119 to 0.125 (temperature 0.1, 4 epochs, mean
  // of 3 seeds).
  const ttSpec = selectInputs(ml.schema, { maxEmbeddingDim: 64, exclude: ["last_item"] });
  // the exact retrieval's inputs; the first seed's training queries too (the hard negatives below read them)
  const trainTwoTower = (seed: number, withTrainQueries: boolean) => {
    const tt = new TwoTowerModel(ttSpec, { seed });
    fit(tt, train, {
      epochs: Number(process.env.TT_EPOCHS ?? TWO_TOWER_JOB_DEFAULTS.epochs),
      batchSize: TWO_TOWER_JOB_DEFAULTS.batchSize,
      learningRateEnd: TWO_TOWER_JOB_DEFAULTS.learningRateEnd,
      seed,
      log: (l) => log(`two-tower (seed ${seed}) ${l}`),
    });
    const out = {
      Q: tt.encode("query", test),
      trainQueries: withTrainQueries ? tt.encode("query", train) : new Float32Array(0),
      E: tt.encode("candidate", ml.items),
      dim: tt.dim,
    };
    tt.dispose();
    return out;
  };
  const { Q, trainQueries, E, dim } = trainTwoTower(42, true);
  const itemIds = Array.from({ length: nItems }, (_, i) => i);
  const exactTopOf = (q: Float32Array, e: Float32Array, k: number, filter: boolean) =>
    listsOf(
      blockedTopK(q, n, { ids: itemIds, embeddings: e, dim }, k, undefined, filter ? (r) => seen[r] : undefined),
      n,
    );
  const exact = { false: exactTopOf(Q, E, RETRIEVE, false), true: exactTopOf(Q, E, RETRIEVE, true) };
  const bySeed: Record<string, number[]> = { false: [], true: [] };
  for (const filter of [false, true])
    bySeed[`${filter}`].push(
      add(
        "two-tower exact",
        filter,
        exact[`${filter}`].map((l) => l.slice(0, K)),
      ).recall,
    );
  // One run moves Recall@10 by about 0.01 (6 of 610 users) with the seed: the same training on other seeds too.
  const extraSeeds = (process.env.TT_SEEDS ?? "1,2,3").split(",").filter(Boolean).map(Number);
  for (const seed of extraSeeds) {
    const r = trainTwoTower(seed, false);
    for (const filter of [false, true])
      bySeed[`${filter}`].push(add(`two-tower exact (seed ${seed})`, filter, exactTopOf(r.Q, r.E, K, filter)).recall);
  }
  const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const filter of [false, true]) {
    const xs = bySeed[`${filter}`];
    const mean = meanOf(xs);
    log(
      `two-tower exact over seeds 42,${extraSeeds.join(",")} (seen filter ${filter ? "on" : "off"}): Recall@${K} mean ${mean.toFixed(4)}, min ${Math.min(...xs).toFixed(4)}, max ${Math.max(...xs).toFixed(4)}`,
    );
  }

  const annOf = async (l2: boolean) => {
    const ann = await annSearch(E, dim, nItems, l2);
    const lists = { false: [] as Lists, true: [] as Lists };
    try {
      for (const filter of [false, true])
        for (let r = 0; r < n; r++)
          lists[`${filter}`].push(
            await ann.search(Q.subarray(r * dim, (r + 1) * dim), RETRIEVE, filter ? seen[r] : undefined),
          );
    } finally {
      await ann.close();
    }
    const name = l2 ? "two-tower ANN (MIPS as L2)" : "two-tower ANN";
    for (const filter of [false, true])
      add(
        name,
        filter,
        lists[`${filter}`].map((l) => l.slice(0, K)),
      );
    let overlap = 0;
    for (let r = 0; r < n; r++) {
      const a = new Set(lists.false[r]);
      overlap += exact.false[r].filter((i) => a.has(i)).length / Math.max(1, exact.false[r].length);
    }
    log(`${name}: recall@${RETRIEVE} against exact retrieval ${(overlap / n).toFixed(4)}`);
    return lists;
  };
  const annLists = await annOf(false);
  const annL2 = await annOf(true);

  // DLRM on the same features, positives against 4 sampled catalogue negatives each
  const dSpec = selectInputs(ml.schema, { embeddingDim: 32 });
  let dlrm = new DlrmModel(dSpec, { negatives: 4, negativeSource: "catalogue", seed: 42 });
  dlrm.setCatalogue(ml.items);
  fit(dlrm, train, {
    epochs: Number(process.env.DLRM_EPOCHS ?? 3),
    batchSize: 1024,
    seed: 42,
    log: (l) => log(`dlrm ${l}`),
  });
  const rerank = (cands: Lists): Lists => {
    const offsets = new Int32Array(n + 1);
    cands.forEach((c, r) => (offsets[r + 1] = offsets[r] + c.length));
    const userRows = new Int32Array(offsets[n]);
    const itemRows = new Int32Array(offsets[n]);
    cands.forEach((c, r) => {
      userRows.fill(r, offsets[r], offsets[r + 1]);
      itemRows.set(c, offsets[r]);
    });
    // the test row's user side (user id, history before the target), each candidate's item side
    const frame: Frame = {
      length: offsets[n],
      columns: { ...takeRows(test, userRows).columns, ...takeRows(ml.items, itemRows).columns },
    };
    const s = dlrm.score(frame);
    return cands.map((c, r) => {
      const pos = Array.from(c, (_, j) => j).sort((a, b) => s[offsets[r] + b] - s[offsets[r] + a] || a - b);
      return Int32Array.from(pos.slice(0, K), (j) => c[j]);
    });
  };
  for (const filter of [false, true])
    add(`pipeline exact ${RETRIEVE} -> DLRM -> top ${K}`, filter, rerank(exact[`${filter}`]));
  for (const filter of [false, true])
    add(`pipeline ANN ${RETRIEVE} -> DLRM -> top ${K}`, filter, rerank(annLists[`${filter}`]));
  for (const filter of [false, true])
    add(`pipeline ANN (MIPS as L2) ${RETRIEVE} -> DLRM`, filter, rerank(annL2[`${filter}`]));
  dlrm.dispose();

  // The same DLRM trained against hard negatives: for each training row, items of the two-tower's exact top 50
  // for that row's query (what retrieval would propose), so the ranker learns to order retrieval's candidates.
  if (process.env.HARD_NEGATIVES !== "0") {
    const trainTop = blockedTopK(trainQueries, train.length, { ids: itemIds, embeddings: E, dim }, 50);
    const hardTrain: Frame = {
      length: train.length,
      columns: { ...train.columns, retrieved: { offsets: trainTop.offsets, values: trainTop.index } },
    };
    dlrm = new DlrmModel(dSpec, { negatives: 4, negativeSource: "column", negativeColumn: "retrieved", seed: 42 });
    dlrm.setCatalogue(ml.items);
    fit(dlrm, hardTrain, {
      epochs: Number(process.env.DLRM_EPOCHS ?? 3),
      batchSize: 1024,
      seed: 42,
      log: (l) => log(`dlrm (hard negatives) ${l}`),
    });
    for (const filter of [false, true])
      add(`pipeline exact ${RETRIEVE} -> DLRM (hard negatives)`, filter, rerank(exact[`${filter}`]));
    dlrm.dispose();
  }

  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `\nml-latest-small, temporal leave-last-out, ${n} users, full catalogue of ${nItems} items (${targetSeen} targets were seen in training: the seen filter makes those misses); ${seconds.toFixed(0)}s`,
  );
  console.log(
    `${"model".padEnd(40)} ${"seen filter".padEnd(12)} ${`Recall@${K}`.padStart(10)} ${`NDCG@${K}`.padStart(10)}`,
  );
  for (const r of rows)
    console.log(
      `${r.model.padEnd(40)} ${(r.seenFilter ? "on" : "off").padEnd(12)} ${r.recall.toFixed(4).padStart(10)} ${r.ndcg.toFixed(4).padStart(10)}`,
    );
  const get = (m: string, f: boolean) =>
    rows.find((r) => r.model.startsWith(m) && r.seenFilter === f) as (typeof rows)[0];
  for (const f of [false, true]) {
    const pa = get("pipeline ANN ", f);
    const pl = get("pipeline ANN (MIPS", f);
    const pe = get("pipeline exact", f);
    const pop = get("popularity", f);
    const te = get("two-tower exact", f);
    const ta = rows.find((r) => r.model === "two-tower ANN" && r.seenFilter === f) as (typeof rows)[0];
    console.log(
      `seen filter ${f ? "on" : "off"}: ANN pipeline / exact pipeline Recall ${(pa.recall / pe.recall).toFixed(3)} (target >= 0.98), with MIPS as L2 ${(pl.recall / pe.recall).toFixed(3)}, retrieval alone ${(ta.recall / te.recall).toFixed(3)}; / popularity (target >= 2.5x): ANN retrieval ${(ta.recall / pop.recall).toFixed(2)}x, ANN -> DLRM ${(pa.recall / pop.recall).toFixed(2)}x, exact retrieval on the mean of seeds 42,${extraSeeds.join(",")} ${(meanOf(bySeed[`${f}`]) / pop.recall).toFixed(2)}x; DLRM re-ranking / retrieval alone ${(pe.recall / te.recall).toFixed(2)}x`,
    );
  }
  if (process.env.OUT) {
    mkdirSync(process.env.OUT, { recursive: true });
    writeFileSync(
      join(process.env.OUT, "recommend_quality.json"),
      JSON.stringify(
        { dataset: "ml-latest-small", users: n, items: nItems, k: K, retrieve: RETRIEVE, rows, seconds },
        null,
        2,
      ),
    );
  }
}

try {
  await main();
} catch (e) {
  // fstore's own errors (the data set missing from FSTORE_DATA_DIR) are one line, not a stack
  if (!(e instanceof FstoreError)) throw e;
  console.error(`scripts/recommend_quality.ts: ${e.message}`);
  process.exit(1);
}
