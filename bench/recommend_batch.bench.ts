// Batch recommendations' speed (`npm run bench -- recommend_batch`): users/s of `recommendBatch` over 100k items x
// 64-d (exact full-catalogue retrieval of 100, DLRM ranking of the unseen 100, greedy top 10, lists written to
// SQLite and to Redis), beside the bare blocked matrix product + top-k (`blockedTopK`) on the same catalogue in
// the same run. Target: the whole batch at >= 50% of the bare rate.
import { loadavg } from "node:os";
import { Redis } from "ioredis";
import "../adapters/serving/index.js";
import { recommendBatch } from "../adapters/serving/batch_recommend.js";
import { blockedTopK } from "../adapters/serving/exact_retrieval.js";
import { FeatureStore } from "../stores/feature_store.js";
import { writeBatchRepo } from "../test/batch_fixture.js";
import { DAY, T0, tempDir } from "../test/repo_fixture.js";
import { report } from "./lib.js";

const ITEMS = 100_000;
const DIM = 64;
const USERS = 3_000;
const BARE_USERS = 1_024;

export async function main(): Promise<void> {
  const { dir, cleanup } = tempDir("bench-batch");
  try {
    const t0 = performance.now();
    const repo = await writeBatchRepo(dir, "bench_batch", USERS + 1, ITEMS, { dim: DIM, backend: "wasm" });
    const store = await FeatureStore.open(dir);
    await store.apply();
    await store.materialize(T0 - DAY, T0 + DAY);
    console.log(
      `repo: ${USERS} users, ${ITEMS} items x ${DIM}-d, built in ${((performance.now() - t0) / 1000).toFixed(1)}s (load ${loadavg()[0].toFixed(2)})`,
    );

    // the bare kernel: random unit queries against the same catalogue, top 100 per row
    let x = 12345;
    const rand = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const queries = Float32Array.from({ length: BARE_USERS * DIM }, rand);
    blockedTopK(queries.subarray(0, 64 * DIM), 64, repo.items, 100); // warm-up
    const tb = performance.now();
    for (let s = 0; s < BARE_USERS; s += 512)
      blockedTopK(queries.subarray(s * DIM, (s + 512) * DIM), 512, repo.items, 100);
    const bare = BARE_USERS / ((performance.now() - tb) / 1000);
    report(`bare blocked matmul + top-100, ${ITEMS} x ${DIM}`, bare, "users/s");

    const pipeline = "bench";
    const users = Array.from({ length: USERS }, (_, u) => 100 + u);
    for (const to of ["sqlite", "redis"] as const) {
      const prefix = `fstore_bench_batch_${process.pid}:`;
      const r = await recommendBatch(store, { pipeline, entities: users, to, keyPrefix: prefix });
      const rate = r.users / (r.seconds - r.setupSeconds);
      report(`batch ${pipeline} -> ${to} (retrieve 100, DLRM 100, top 10, writes)`, rate, "users/s", {
        baseline: bare,
        baselineName: "bare",
        target: ">= 0.5x bare",
        pass: rate >= 0.5 * bare,
      });
      console.log(`  setup (catalogue from the offline store, target opened) ${r.setupSeconds.toFixed(2)}s`);
      if (to === "redis") {
        const redis = new Redis({ host: "127.0.0.1", port: 6379 });
        const keys = await redis.keys(`${prefix}*`);
        for (let s = 0; s < keys.length; s += 1000) await redis.unlink(...keys.slice(s, s + 1000));
        redis.disconnect();
      }
    }
    await store.close();
  } finally {
    cleanup();
  }
}
