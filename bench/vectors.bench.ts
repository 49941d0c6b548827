// Vector search through the feature store: VECTORS_BENCH_N items (default 100,000) x 64-d random Gaussian
// vectors, cosine, on the SQLite online store, each figure beside a baseline measured in the same run:
// - recall@10 of retrieveOnlineDocuments against exact search (usearch's exactSearch) at the default
//   settings (target >= 0.97), and at other expansion_search values (the one reaching 0.99);
// - single-query p99 of retrieveOnlineDocuments (top 100, features of 2 views) against exact brute force
//   through the same call (target <= 1/20) and against bare usearch search + the online read done by hand
//   (target <= 2x);
// - index build rate (rebuild from the store) against bare usearch adding the same vectors on the same
//   threads (target >= 80%); materialize with the index against materialize without it + the bare build
//   (target <= 1.2x).
// Then the Redis store (VECTORS_BENCH_REDIS=0 skips it): a process's index built from Redis at start, and
// search p99 against the same search + read by hand.
// VECTORS_BENCH_N=1000000 runs the 1M case (build time, memory, p99), to show how cost grows.
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import usearch from "usearch";
import { FeatureStore } from "../stores/feature_store.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { DEFAULT_HNSW, newIndex } from "../stores/vectors/hnsw.js";
import { measure, measurePair, peakRssMb, performance, report } from "./lib.js";

const N = Number(process.env.VECTORS_BENCH_N ?? 100_000);
const D = 64;
const QUERIES = 200;
const here = dirname(fileURLToPath(import.meta.url));
const dataDir = join(here, ".data", `vectors_${N}`);
const T = Date.parse("2024-01-01T00:00:00Z");

function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

async function writeData(vectors: Float32Array): Promise<void> {
  const emb = join(dataDir, "emb.parquet");
  const feat = join(dataDir, "feat.parquet");
  if (existsSync(emb) && existsSync(feat)) return;
  mkdirSync(dataDir, { recursive: true });
  const rows = function* () {
    for (let i = 0; i < N; i++)
      yield { item_id: i, event_timestamp: T, embedding: Array.from(vectors.subarray(i * D, (i + 1) * D)) };
  };
  await writeParquet(emb, [...rows()], { item_id: "int64", event_timestamp: "timestamp", embedding: "float32[]" });
  const feats = Array.from({ length: N }, (_, i) => ({
    item_id: i,
    event_timestamp: T,
    category: i % 50,
    price: i / 7,
  }));
  await writeParquet(feat, feats, {
    item_id: "int64",
    event_timestamp: "timestamp",
    category: "int64",
    price: "float64",
  });
}

const SQLITE = "online_store:\n  type: sqlite\n  path: online.db\n";

function writeRepo(dir: string, indexed: boolean, online = SQLITE): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "feature_store.yaml"),
    `project: vec_bench\nregistry: registry.db\n${online}offline_store:\n  type: duckdb\n`,
  );
  const opts = indexed ? `, vectorIndex: true, vectorLength: ${D}, vectorSearchMetric: "cosine"` : "";
  writeFileSync(
    join(dir, "defs.ts"),
    `import { Entity, FeatureView, Field, FileSource } from "fstore";
export const item = new Entity({ name: "item", joinKeys: ["item_id"] });
export const emb = new FeatureView({ name: "item_embeddings", entities: [item], ttl: 0,
  schema: [new Field({ name: "embedding", dtype: "float32[]"${opts} })],
  source: new FileSource({ name: "emb", path: ${JSON.stringify(join(dataDir, "emb.parquet"))}, timestampField: "event_timestamp" }) });
export const feat = new FeatureView({ name: "item_features", entities: [item], ttl: 0,
  schema: [new Field({ name: "category", dtype: "int64" }), new Field({ name: "price", dtype: "float64" })],
  source: new FileSource({ name: "feat", path: ${JSON.stringify(join(dataDir, "feat.parquet"))}, timestampField: "event_timestamp" }) });
`,
  );
}

async function materializeSeconds(dir: string): Promise<number> {
  const store = await FeatureStore.open(dir);
  await store.apply();
  const t = performance.now();
  await store.materialize(T - 1000, T + 1000, { views: ["item_embeddings"] });
  await store.close(); // the index is saved by close
  const s = (performance.now() - t) / 1000;
  const again = await FeatureStore.open(dir);
  await again.materialize(T - 1000, T + 1000, { views: ["item_features"] });
  await again.close();
  return s;
}

export async function main(): Promise<void> {
  console.log(`${N} items x ${D}-d, cosine, SQLite online store, HNSW defaults ${JSON.stringify(DEFAULT_HNSW)}`);
  const vectors = gaussian(N * D, 42);
  const queries = gaussian(QUERIES * D, 7);
  await writeData(vectors);
  const keys = new BigUint64Array(N);
  for (let i = 0; i < N; i++) keys[i] = BigInt(i);

  // ---------------------------------------------------------------- build
  const plainDir = join(dataDir, "repo_plain");
  const indexedDir = join(dataDir, "repo_indexed");
  writeRepo(plainDir, false);
  writeRepo(indexedDir, true);
  const matPlain = await materializeSeconds(plainDir);
  let t = performance.now();
  const bare = newIndex(D, "cosine");
  bare.add(keys, vectors, DEFAULT_HNSW.threads);
  const bareBuild = (performance.now() - t) / 1000;
  const matIndexed = await materializeSeconds(indexedDir);
  report("materialize 1 vector view, with the index (s)", matIndexed, "s", {
    baseline: matPlain + bareBuild,
    baselineName: `materialize without index ${matPlain.toFixed(1)} s + bare usearch build`,
    target: "<= 1.2x",
    pass: matIndexed <= 1.2 * (matPlain + bareBuild),
  });
  // the store's own build: its index rebuilt from the stored vectors (index files removed); above 200k items
  // (a third build of the same graph) the materialize figure above stands for it unless VECTORS_BENCH_REBUILD=1
  const rebuildToo = (process.env.VECTORS_BENCH_REBUILD ?? (N > 200_000 ? "0" : "1")) === "1";
  if (rebuildToo) rmSync(join(indexedDir, "online.db.vectors"), { recursive: true, force: true });
  const store = await FeatureStore.open(indexedDir);
  const features = ["item_embeddings:embedding", "item_features:category", "item_features:price"];
  const q0 = queries.subarray(0, D);
  t = performance.now();
  await store.retrieveOnlineDocuments({ features, query: q0, topK: 1 });
  const rebuild = (performance.now() - t) / 1000;
  if (rebuildToo) {
    report("index build rate, rebuilt from the store (vectors/s)", N / rebuild, "vectors/s", {
      baseline: N / bareBuild,
      baselineName: "bare usearch add, same threads",
      target: ">= 0.8x",
      pass: N / rebuild >= 0.8 * (N / bareBuild),
    });
    console.log(`  (absolute: store rebuild ${rebuild.toFixed(1)} s, bare build ${bareBuild.toFixed(1)} s)`);
  } else {
    const storeBuild = matIndexed - matPlain;
    console.log(
      `  store build inside materialize ${storeBuild.toFixed(1)} s (${Math.round(N / storeBuild)} vectors/s) against bare usearch ${bareBuild.toFixed(1)} s (${Math.round(N / bareBuild)} vectors/s); first search on the saved index ${rebuild.toFixed(2)} s; peak RSS ${peakRssMb()} MB`,
    );
  }

  // ---------------------------------------------------------------- recall
  const exact = usearch.exactSearch(vectors, queries, D, 10, usearch.MetricKind.Cos, 0) as unknown as {
    keys: BigUint64Array;
  };
  let hit = 0;
  for (let qi = 0; qi < QUERIES; qi++) {
    const res = await store.retrieveOnlineDocuments({
      features: ["item_embeddings:embedding"],
      query: queries.subarray(qi * D, (qi + 1) * D),
      topK: 10,
    });
    const truth = new Set(Array.from(exact.keys.subarray(qi * 10, qi * 10 + 10), Number));
    for (const id of res.toObject().item_id) if (truth.has(id as number)) hit++;
  }
  const recall = hit / (QUERIES * 10);
  report("recall@10, retrieveOnlineDocuments, default settings", recall, "", {
    target: ">= 0.97",
    pass: recall >= 0.97,
  });
  // other expansion_search values on the same graph (usearch honours the setting of the index that maps it)
  const saved = join(dataDir, "bare.usearch");
  bare.save(saved);
  for (const ef of [64, 128, 256, 512, 1024, 2048]) {
    const idx = newIndex(D, "cosine", { ...DEFAULT_HNSW, expansionSearch: ef });
    idx.view(saved);
    let h = 0;
    const lat: number[] = [];
    for (let qi = 0; qi < QUERIES; qi++) {
      const s = performance.now();
      const m = idx.search(queries.subarray(qi * D, (qi + 1) * D), 10, 1);
      lat.push((performance.now() - s) * 1000);
      const truth = new Set(exact.keys.subarray(qi * 10, qi * 10 + 10));
      for (const k of m.keys) if (truth.has(k)) h++;
    }
    lat.sort((a, b) => a - b);
    console.log(
      `  bare usearch expansion_search ${String(ef).padStart(4)}: recall@10 ${(h / (QUERIES * 10)).toFixed(4)}, p50 ${lat[QUERIES >> 1].toFixed(0)} µs`,
    );
  }
  console.log("  (reference: the seeds' Faiss IVF32,Flat nprobe=8 scans 8/32 of the vectors)");

  // ---------------------------------------------------------------- latency
  let qi = 0;
  const nextQuery = () => queries.subarray((qi = (qi + 1) % QUERIES) * D, (qi + 1) * D);
  const byHand = newIndex(D, "cosine");
  byHand.view(saved);
  // in turns, so that both see the same machine
  const [ann, handRead] = await measurePair(
    () => store.retrieveOnlineDocuments({ features, query: nextQuery(), topK: 100 }),
    async () => {
      const m = byHand.search(nextQuery(), 100, 1);
      return store.getOnlineFeatures({ features, entities: { item_id: Array.from(m.keys, Number) } });
    },
    500,
    50,
  );
  const brute = await measure(
    () => store.retrieveOnlineDocuments({ features, query: nextQuery(), topK: 100, exact: true }),
    30,
    3,
  );
  report("retrieveOnlineDocuments top 100, 2 views, p99 (µs)", ann.p99, "µs", {
    baseline: brute.p99,
    baselineName: "exact brute force p99",
    target: "<= 0.05x",
    pass: ann.p99 <= brute.p99 / 20,
  });
  report("retrieveOnlineDocuments top 100, 2 views, p99 (µs) ", ann.p99, "µs", {
    baseline: handRead.p99,
    baselineName: "bare usearch search + getOnlineFeatures by hand",
    target: "<= 2x",
    pass: ann.p99 <= 2 * handRead.p99,
  });
  console.log(
    `  (p50: search ${ann.p50.toFixed(0)} µs, by hand ${handRead.p50.toFixed(0)} µs, brute force ${brute.p50.toFixed(0)} µs)`,
  );
  report("peak RSS (MB)", peakRssMb(), "MB");
  await store.close();
  if (process.env.VECTORS_BENCH_REDIS !== "0") await redisCase(queries, saved, bareBuild);
}

/** The Redis store: a process's index built from Redis at start, and search p99 against the same by hand. */
async function redisCase(queries: Float32Array, saved: string, bareBuild: number): Promise<void> {
  console.log("Redis online store (VECTORS_BENCH_REDIS=0 skips)");
  const dir = join(dataDir, "repo_redis");
  writeRepo(
    dir,
    true,
    `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379"\n  key_prefix: vec_bench_${process.pid}\n`,
  );
  const writer = await FeatureStore.open(dir);
  await writer.apply();
  let t = performance.now();
  await writer.materialize(T - 1000, T + 1000);
  console.log(
    `  materialize 2 views (vectors hash + change log written with the rows): ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  const store = await FeatureStore.open(dir);
  const features = ["item_embeddings:embedding", "item_features:category", "item_features:price"];
  t = performance.now();
  await store.retrieveOnlineDocuments({ features, query: queries.subarray(0, D), topK: 1 });
  const start = (performance.now() - t) / 1000;
  report("index built from Redis at process start (vectors/s)", N / start, "vectors/s", {
    baseline: N / bareBuild,
    baselineName: "bare usearch add (SQLite case above)",
  });
  const byHand = newIndex(D, "cosine");
  byHand.view(saved);
  let qi = 0;
  const nextQuery = () => queries.subarray((qi = (qi + 1) % QUERIES) * D, (qi + 1) * D);
  const [ann, hand] = await measurePair(
    () => store.retrieveOnlineDocuments({ features, query: nextQuery(), topK: 100 }),
    async () => {
      const m = byHand.search(nextQuery(), 100, 1);
      return store.getOnlineFeatures({ features, entities: { item_id: Array.from(m.keys, Number) } });
    },
    500,
    50,
  );
  report("redis retrieveOnlineDocuments top 100, 2 views, p99 (µs)", ann.p99, "µs", {
    baseline: hand.p99,
    baselineName: "bare usearch search + getOnlineFeatures by hand",
    target: "<= 2x",
    pass: ann.p99 <= 2 * hand.p99,
  });
  console.log(`  (p50: search ${ann.p50.toFixed(0)} µs, by hand ${hand.p50.toFixed(0)} µs)`);
  await writer.teardown();
  await writer.close();
  await store.close();
}
