// Training jobs end to end on a real feature repository: parquet sources written by DuckDB, the registry in
// SQLite, the training set from getHistoricalFeatures, then training, evaluation and exported artifacts.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDuckDB, sqlString } from "../common/duckdb.js";
import { FeatureStore } from "../stores/feature_store.js";
import { loadModel, predict, readItemEmbeddings, type ModelMeta } from "../adapters/models/artifacts.js";
import { trainDlrmJob, trainTwoTowerJob } from "../adapters/models/jobs.js";
import { rng, type Frame } from "../adapters/models/frame.js";

const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "..");
const U = 120;
const I = 60;
const G = 6;

const DEFINITIONS = `import { Entity, FeatureService, FeatureView, Field, FileSource } from "fstore";
export const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64" });
export const item = new Entity({ name: "item", joinKeys: ["item_id"], valueType: "int64" });
export const userFeatures = new FeatureView({
  name: "user_features", entities: [user], ttl: 0,
  schema: [new Field({ name: "user_group", dtype: "int64" })],
  source: new FileSource({ name: "user_source", path: "data/users.parquet", timestampField: "event_timestamp" }),
});
export const itemFeatures = new FeatureView({
  name: "item_features", entities: [item], ttl: 0,
  schema: [new Field({ name: "item_group", dtype: "int64" })],
  source: new FileSource({ name: "item_source", path: "data/items.parquet", timestampField: "event_timestamp" }),
});
export const itemEmbeddings = new FeatureView({
  name: "item_embeddings", entities: [item], ttl: 0,
  schema: [new Field({ name: "embedding", dtype: "float32[]", vectorIndex: true, vectorLength: 64, vectorSearchMetric: "cosine" })],
  source: new FileSource({ name: "emb_source", path: "data/emb.parquet", timestampField: "event_timestamp" }),
});
export const retrieval = new FeatureService({ name: "retrieval", features: [userFeatures, itemFeatures] });
// the same items keyed by a raw id (item_id + 1000), with the model's item index as a feature
export const itemRaw = new Entity({ name: "item_raw", joinKeys: ["item_id_raw"], valueType: "int64" });
export const itemRawFeatures = new FeatureView({
  name: "item_raw_features", entities: [itemRaw], ttl: 0,
  schema: [new Field({ name: "item_id", dtype: "int64" }), new Field({ name: "item_group", dtype: "int64" })],
  source: new FileSource({ name: "item_raw_source", path: "data/items_raw.parquet", timestampField: "event_timestamp" }),
});
export const itemRawEmbeddings = new FeatureView({
  name: "item_raw_embeddings", entities: [itemRaw], ttl: 0,
  schema: [new Field({ name: "embedding", dtype: "float32[]", vectorIndex: true, vectorLength: 64, vectorSearchMetric: "cosine" })],
  source: new FileSource({ name: "emb_raw_source", path: "data/emb_raw.parquet", timestampField: "event_timestamp" }),
});
`;

const SCHEMA = {
  columns: [
    {
      name: "user_id",
      dtype: "int64",
      isList: false,
      tags: ["categorical", "user", "user_id"],
      properties: { cardinality: U },
    },
    {
      name: "user_group",
      dtype: "int64",
      isList: false,
      tags: ["categorical", "user"],
      properties: { cardinality: G },
    },
    {
      name: "item_id",
      dtype: "int64",
      isList: false,
      tags: ["categorical", "item", "item_id"],
      properties: { cardinality: I },
    },
    {
      name: "item_group",
      dtype: "int64",
      isList: false,
      tags: ["categorical", "item"],
      properties: { cardinality: G },
    },
    { name: "click", dtype: "int32", isList: false, tags: ["target", "binary_classification"], properties: {} },
  ],
};

let dir: string;
let store: FeatureStore;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fstore-train-jobs-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(
    join(dir, "feature_store.yaml"),
    "project: train_jobs\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: duckdb\n",
  );
  writeFileSync(join(dir, "defs.ts"), DEFINITIONS);
  writeFileSync(join(dir, "schema.json"), JSON.stringify(SCHEMA));
  // Users and items fall into G groups; users click items of their own group.
  const r = rng(3);
  const events: string[] = [];
  for (let k = 0; k < 3000; k++) {
    const u = Math.floor(r() * U);
    const inGroup = r() < 0.8;
    const i = inGroup ? (u % G) + G * Math.floor(r() * (I / G)) : Math.floor(r() * I);
    events.push(`(${u}, ${i}, ${i % G === u % G ? 1 : 0}, TIMESTAMP '2024-01-02' + INTERVAL ${k} MINUTE)`);
  }
  const db = await openDuckDB();
  const c = db.connection;
  const q = (p: string) => sqlString(join(dir, p));
  await c.run(
    `COPY (SELECT range AS user_id, range % ${G} AS user_group, TIMESTAMP '2024-01-01' AS event_timestamp FROM range(${U})) TO ${q("data/users.parquet")} (FORMAT parquet)`,
  );
  await c.run(
    `COPY (SELECT range AS item_id, range % ${G} AS item_group, TIMESTAMP '2024-01-01' AS event_timestamp FROM range(${I})) TO ${q("data/items.parquet")} (FORMAT parquet)`,
  );
  await c.run(
    `COPY (SELECT 0::BIGINT AS item_id, TIMESTAMP '2024-01-01' AS event_timestamp, [0.5]::FLOAT[] AS embedding WHERE false) TO ${q("data/emb.parquet")} (FORMAT parquet)`,
  );
  await c.run(
    `COPY (SELECT range + 1000 AS item_id_raw, range AS item_id, range % ${G} AS item_group, TIMESTAMP '2024-01-01' AS event_timestamp FROM range(${I})) TO ${q("data/items_raw.parquet")} (FORMAT parquet)`,
  );
  await c.run(
    `COPY (SELECT 0::BIGINT AS item_id_raw, TIMESTAMP '2024-01-01' AS event_timestamp, [0.5]::FLOAT[] AS embedding WHERE false) TO ${q("data/emb_raw.parquet")} (FORMAT parquet)`,
  );
  await c.run(
    `COPY (SELECT * FROM (VALUES ${events.join(",")}) t(user_id, item_id, click, event_timestamp)) TO ${q("events.parquet")} (FORMAT parquet)`,
  );
  db.close();
  store = await FeatureStore.open(dir);
  await store.apply();
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("fs train jobs from the feature store", () => {
  it("trains a two-tower model from a feature service, beats popularity, exports towers and all item embeddings", async () => {
    const out = join(dir, "tt");
    const res = await trainTwoTowerJob({
      store,
      schemaPath: join(dir, "schema.json"),
      entityDf: join(dir, "events.parquet"),
      features: "retrieval",
      outDir: out,
      epochs: 4,
      batchSize: 128,
      learningRate: 0.01,
      itemView: "item_features",
      embeddingsView: "item_embeddings",
      evalFraction: 0.2,
      log: () => {},
    });
    expect(res.rows.train + res.rows.eval).toBeLessThan(3000); // positives only
    expect(res.metrics["two-tower"].recall_at_10).toBeGreaterThan(res.metrics.popularity.recall_at_10 + 0.1);
    const q = await loadModel(join(out, "query_tower"));
    expect(q.meta.kind).toBe("query-tower");
    expect(q.meta.inputs.map((x) => x.name)).toEqual(["user_id", "user_group"]);
    expect(q.meta.metrics.recall_at_10).toBe(res.metrics["two-tower"].recall_at_10);
    const emb = await readItemEmbeddings(join(out, "item_embeddings.parquet"), "item_id");
    expect(emb.ids.length).toBe(I);
    expect(emb.dim).toBe(64);
    // The exported item tower reproduces the exported embeddings.
    const itemTower = await loadModel(join(out, "item_tower"));
    const items: Frame = { length: I, columns: { item_id: emb.ids, item_group: emb.ids.map((i) => i % G) } };
    const again = predict(itemTower, items);
    for (let k = 0; k < again.length; k++) expect(Math.abs(again[k] - emb.embeddings[k])).toBeLessThan(1e-5);
    expect(existsSync(join(out, "results.svg"))).toBe(true);
    // the embeddings went into the vector view: the store's index answers each item as its own nearest
    await store.materialize("2023-12-31T00:00:00", "2024-01-02T00:00:00", { views: ["item_features"] });
    for (const k of [0, 7, I - 1]) {
      const near = await store.retrieveOnlineDocuments({
        features: ["item_embeddings:embedding", "item_features:item_group"],
        query: emb.embeddings.subarray(k * 64, (k + 1) * 64),
        topK: 3,
      });
      const o = near.toObject();
      expect(o.item_id[0]).toBe(emb.ids[k]);
      expect(o.distance[0] as number).toBeCloseTo(0, 4);
      expect(o.item_group[0]).toBe(emb.ids[k] % G);
    }
    // and into the view's offline file, where batch jobs (fs recommend batch) read the catalogue
    const duck = await openDuckDB();
    try {
      const r = await duck.connection.runAndReadAll(
        `SELECT count(DISTINCT item_id) AS n FROM read_parquet(${sqlString(join(dir, "data/emb.parquet"))}) WHERE len(embedding) = 64`,
      );
      expect(Number((r.getRowObjectsJS()[0] as { n: bigint }).n)).toBe(I);
    } finally {
      duck.close();
    }
  });

  it("writes the embeddings under the store's item key when the views are keyed by a raw id, not the model's index", async () => {
    const out = join(dir, "tt_raw");
    const job = {
      store,
      schemaPath: join(dir, "schema.json"),
      entityDf: join(dir, "events.parquet"),
      features: ["user_features:user_group", "item_features:item_group"],
      outDir: out,
      epochs: 1,
      batchSize: 256,
      log: () => {},
    };
    // an item view keyed otherwise than the embeddings view cannot say which key each vector belongs to
    await expect(
      trainTwoTowerJob({ ...job, itemView: "item_features", embeddingsView: "item_raw_embeddings" }),
    ).rejects.toThrow(
      '--embeddings-view item_raw_embeddings is keyed by "item_id_raw", not by the model\'s item id "item_id": give an --item-view keyed by "item_id_raw" (item_features is keyed by "item_id")',
    );
    await trainTwoTowerJob({ ...job, itemView: "item_raw_features", embeddingsView: "item_raw_embeddings" });
    const db = await openDuckDB();
    const rows = (
      await db.connection.runAndReadAll(
        `SELECT item_id, item_id_raw, embedding FROM read_parquet(${sqlString(join(out, "item_embeddings.parquet"))}) ORDER BY item_id`,
      )
    ).getRowsJS() as Array<[number, bigint, number[]]>;
    db.close();
    expect(rows.length).toBe(I);
    for (const [id, raw] of rows) expect(Number(raw)).toBe(id + 1000);
    for (const k of [0, 7, I - 1]) {
      const o = (
        await store.retrieveOnlineDocuments({
          features: ["item_raw_embeddings:embedding"],
          query: rows[k][2],
          topK: 1,
        })
      ).toObject();
      expect(o.item_id_raw).toEqual([k + 1000]);
      expect(o.distance[0] as number).toBeCloseTo(0, 4);
    }
  });

  it("trains DLRM with catalogue negatives from feature references and writes fstore-model.json with AUC", async () => {
    const out = join(dir, "dlrm");
    const res = await trainDlrmJob({
      store,
      schemaPath: join(dir, "schema.json"),
      entityDf: join(dir, "events.parquet"),
      features: ["user_features:user_group", "item_features:item_group"],
      outDir: out,
      epochs: 3,
      batchSize: 128,
      learningRate: 0.01,
      itemView: "item_features",
      dlrm: { embeddingDim: 8, topLayers: [16, 8], negatives: 3, negativeSource: "catalogue" },
      log: () => {},
    });
    expect(res.metrics.dlrm.auc).toBeGreaterThan(0.85);
    const meta = JSON.parse(readFileSync(join(out, "fstore-model.json"), "utf8")) as ModelMeta;
    expect(meta.kind).toBe("dlrm");
    expect(meta.metrics.auc).toBe(res.metrics.dlrm.auc);
    expect(existsSync(join(out, "model.json")) && existsSync(join(out, "weights.bin"))).toBe(true);
  });

  it("names a feature the schema needs that the join did not produce", async () => {
    await expect(
      trainTwoTowerJob({
        store,
        schemaPath: join(dir, "schema.json"),
        entityDf: join(dir, "events.parquet"),
        features: ["user_features:user_group"],
        outDir: join(dir, "bad"),
        log: () => {},
      }),
    ).rejects.toThrow(/training set \(point-in-time join\): missing feature column\(s\) "item_group"/);
  });

  it("`fs train` refuses a rate end outside (0, 1]", () => {
    if (!existsSync(join(ROOT, "dist/cli/commands/train.js")))
      execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: ROOT, stdio: "ignore" });
    const args = ["train", "two-tower", "--repo", dir, "--entity-df", "x.parquet", "--feature-service", "retrieval"];
    const run = () =>
      execFileSync(
        process.execPath,
        [join(ROOT, "bin/fs.js"), ...args, "--schema", "s.json", "--output", "o", "--learning-rate-end", "2"],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
      );
    expect(run).toThrow(/--learning-rate-end must be in \(0, 1\], got 2/);
  });

  it("runs as `fs train two-tower` with a progress log and exports the artifacts", () => {
    // `npm test` builds dist/ first; build here when this file runs alone on a fresh checkout.
    if (!existsSync(join(ROOT, "dist/cli/commands/train.js")))
      execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: ROOT, stdio: "ignore" });
    const out = join(dir, "cli_tt");
    const stdout = execFileSync(
      process.execPath,
      [
        join(ROOT, "bin/fs.js"),
        "train",
        "two-tower",
        "--repo",
        dir,
        "--entity-df",
        join(dir, "events.parquet"),
        "--feature-service",
        "retrieval",
        "--schema",
        join(dir, "schema.json"),
        "--output",
        out,
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--learning-rate-end",
        "0.5",
        "--backend",
        "wasm",
        "--embeddings-view",
        "item_embeddings",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    expect(stdout).toMatch(/epoch 2\/2: loss [\d.]+ \| \d+ samples\/s/);
    // the job's rate schedule is recorded with the model
    const meta = JSON.parse(readFileSync(join(out, "query_tower/fstore-model.json"), "utf8")) as {
      training: { learningRateEnd: number };
    };
    expect(meta.training.learningRateEnd).toBe(0.5);
    expect(stdout).toMatch(/wrote \d+ item embeddings to feature view "item_embeddings" \(its vector index follows\)/);
    expect(stdout).toMatch(/two-tower: recall_at_10 [\d.]+/);
    for (const f of [
      "query_tower/model.json",
      "query_tower/weights.bin",
      "query_tower/fstore-model.json",
      "item_tower/model.json",
      "item_embeddings.parquet",
      "results.json",
    ])
      expect(existsSync(join(out, f))).toBe(true);
  });
});
