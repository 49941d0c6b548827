// Recall@10 of the store's HNSW index against exact search on 20k random 64-d vectors, on both stores.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FeatureStore } from "../index.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { T0, tempDir } from "./repo_fixture.js";
import { rng } from "./vectors_fixture.js";

const N = 20_000;
const D = 64;
const QUERIES = 50;

function gaussian(n: number, seed: number): Float32Array {
  const u = rng(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u()));
}

describe.each([
  ["SQLite", "online_store:\n  type: sqlite\n  path: data/online.db\n"],
  [
    "Redis",
    `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=0"\n  key_prefix: fstore_vecrecall_${process.pid}\n`,
  ],
])("recall of the vector index (%s)", (_kind, online) => {
  it("finds >= 97% of the exact top 10 on 20k random 64-d vectors", async () => {
    const { dir, cleanup } = tempDir("vecrecall");
    mkdirSync(join(dir, "data"), { recursive: true });
    writeFileSync(
      join(dir, "feature_store.yaml"),
      `project: vec_recall\nregistry: data/registry.db\n${online}offline_store:\n  type: duckdb\n  threads: 1\n`,
    );
    writeFileSync(
      join(dir, "defs.ts"),
      `import { Entity, FeatureView, Field, FileSource } from "fstore";
export const item = new Entity({ name: "item", joinKeys: ["item_id"], valueType: "int64" });
export const emb = new FeatureView({ name: "emb", entities: [item], ttl: 0,
  schema: [new Field({ name: "v", dtype: "float32[]", vectorIndex: true, vectorLength: ${D} })],
  source: new FileSource({ name: "emb_src", path: "data/emb.parquet", timestampField: "event_timestamp" }) });
`,
    );
    await writeParquet(join(dir, "data/emb.parquet"), [], {
      item_id: "int64",
      event_timestamp: "timestamp",
      v: "float32[]",
    });
    const store = await FeatureStore.open(dir);
    try {
      await store.apply();
      const data = gaussian(N * D, 1);
      for (let s = 0; s < N; s += 5000) {
        const ids = Array.from({ length: 5000 }, (_, i) => s + i);
        await store.writeToOnlineStore("emb", {
          item_id: ids,
          event_timestamp: ids.map(() => T0),
          v: ids.map((i) => data.subarray(i * D, (i + 1) * D)),
        });
      }
      const queries = gaussian(QUERIES * D, 2);
      let hit = 0;
      for (let q = 0; q < QUERIES; q++) {
        const query = queries.subarray(q * D, (q + 1) * D);
        const ann = (await store.retrieveOnlineDocuments({ features: ["emb:v"], query, topK: 10 })).toObject();
        const exact = (
          await store.retrieveOnlineDocuments({ features: ["emb:v"], query, topK: 10, exact: true })
        ).toObject();
        const truth = new Set(exact.item_id);
        for (const id of ann.item_id) if (truth.has(id)) hit++;
      }
      expect(hit / (QUERIES * 10)).toBeGreaterThanOrEqual(0.97);
    } finally {
      await store.teardown();
      await store.close();
      cleanup();
    }
  }, 300_000);
});
