// The vector index's life on the SQLite store: TTL, string filters, teardown and view changes, another
// process's writes and rebuilds, and repair after a process is killed between the store write and the
// index save.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FeatureStore } from "../index.js";
import { DAY, T0, tempDir } from "./repo_fixture.js";
import { DIM, bruteForce, randomVectors, vectorDefinitions, writeVectorRepo } from "./vectors_fixture.js";

const ROOT = resolve(import.meta.dirname, "..");

const searchIds = async (store: FeatureStore, q: number[], topK: number, extra: object = {}) =>
  (
    await store.retrieveOnlineDocuments({
      features: ["item_embeddings:cos", "item_features:category"],
      query: q,
      topK,
      ...extra,
    })
  ).toObject().item_id as number[];

describe("vector index lifecycle (SQLite)", () => {
  const { dir, cleanup } = tempDir("vecidx");
  const vectors = randomVectors(200, DIM, 3);
  let store: FeatureStore;

  beforeAll(async () => {
    await writeVectorRepo(dir, vectors);
    store = await FeatureStore.open(dir);
    await store.apply();
    await store.materialize(T0 - 2 * DAY, T0);
  }, 60_000);
  afterAll(async () => {
    await store.close();
    cleanup();
  });

  it("filters with an expression over the answered columns", async () => {
    const q = vectors[1];
    const res = (
      await store.retrieveOnlineDocuments({
        features: ["item_embeddings:cos", "item_features:category"],
        query: q,
        topK: 10,
        filter: "category != 0 AND distance >= 0",
      })
    ).toObject();
    const want = bruteForce(new Map(vectors.map((v, i) => [i, v] as const).filter(([i]) => i % 3 !== 0)), q, "cos", 10);
    expect(res.item_id).toEqual(want.map((w) => w.id));
    await expect(
      store.retrieveOnlineDocuments({ features: ["item_embeddings:cos"], query: q, topK: 3, filter: "price > 1" }),
    ).rejects.toThrow(/filter "price > 1": no column "price" among the answered columns \(item_id, distance, cos\)/);
    await expect(
      store.retrieveOnlineDocuments({ features: ["item_embeddings:cos"], query: q, topK: 3, filter: "cos >" }),
    ).rejects.toThrow(/filter "cos >": /);
  });

  it("saves the index beside the database, and a second process maps it and follows writes", async () => {
    await store.close(); // saves the indexes
    store = await FeatureStore.open(dir);
    const files = readdirSync(join(dir, "data/online.db.vectors"));
    expect(files.filter((f) => f.endsWith(".usearch"))).toHaveLength(3);
    const other = await FeatureStore.open(dir);
    try {
      expect(await searchIds(other, vectors[9], 1)).toEqual([9]);
      const far = Array.from({ length: DIM }, (_, i) => (i === 2 ? 40 : 0));
      await store.writeToOnlineStore("item_embeddings", [
        { item_id: 500, event_timestamp: T0, cos: far, ip: far, l2: far },
      ]);
      // the other process's index is behind the database: it replays the new row before answering
      expect(await searchIds(other, far, 1)).toEqual([500]);
    } finally {
      await other.close();
    }
  });

  it("a process whose mapped file vanished rebuilds from the table when it must replay", async () => {
    await store.close(); // saves
    store = await FeatureStore.open(dir);
    const other = await FeatureStore.open(dir);
    try {
      expect(await searchIds(other, vectors[12], 1)).toEqual([12]); // other maps the saved file
      rmSync(join(dir, "data/online.db.vectors"), { recursive: true, force: true });
      const far = Array.from({ length: DIM }, (_, i) => (i === 3 ? 40 : 0));
      await store.writeToOnlineStore("item_embeddings", [
        { item_id: 501, event_timestamp: T0, cos: far, ip: far, l2: far },
      ]);
      expect(await searchIds(other, far, 1)).toEqual([501]);
      expect(await searchIds(other, vectors[12], 1)).toEqual([12]);
    } finally {
      await other.close();
    }
  });

  it("never answers an entity the store no longer holds", async () => {
    const db = new Database(join(dir, "data/online.db"));
    // item 9 vanishes behind the index's back (e.g. a restored database)
    db.prepare(`DELETE FROM __fstore_vectors WHERE entity_key = '9'`).run();
    db.prepare(`DELETE FROM "vec_repo:item_id" WHERE entity_key = '9' AND view = 'item_embeddings'`).run();
    db.close();
    const ids = await searchIds(store, vectors[9], 5);
    expect(ids).not.toContain(9);
    expect(ids).toHaveLength(5);
  });

  it("drops the index of a field that left the view, and rebuilds one whose metric changed", async () => {
    const other = await FeatureStore.open(dir);
    try {
      await searchIds(other, vectors[0], 1); // other has its index open
      writeFileSync(
        join(dir, "features.ts"),
        vectorDefinitions()
          .replace(`vec("ip", "inner_product"), `, "")
          .replace(`vec("cos", "cosine")`, `vec("cos", "l2")`),
      );
      const plan = await store.plan();
      expect(plan.vectorIndexes).toEqual([
        "rebuild vector index item_embeddings:cos (8-d, cosine -> 8-d, l2)",
        "drop vector index item_embeddings:ip",
      ]);
      await store.apply();
      const files = readdirSync(join(dir, "data/online.db.vectors"));
      expect(files.some((f) => f.includes(".ip."))).toBe(false);
      // the other process sees the rebuilt index (metric l2 now) without a restart, once its registry reloads
      other.refreshRegistry();
      const q = vectors[20];
      const res = (
        await other.retrieveOnlineDocuments({ features: ["item_embeddings:cos"], query: q, topK: 5 })
      ).toObject();
      const truth = new Map(vectors.map((v, i) => [i, v] as const).filter(([i]) => i !== 9));
      truth.set(
        500,
        Array.from({ length: DIM }, (_, i) => (i === 2 ? 40 : 0)),
      );
      const want = bruteForce(truth, q, "l2", 5);
      expect(res.item_id).toEqual(want.map((w) => w.id));
      (res.distance as number[]).forEach((d, i) => expect(d).toBeCloseTo(want[i].d, 4));
    } finally {
      await other.close();
    }
  });

  it("teardown removes the vectors and the index files", async () => {
    await store.teardown();
    expect(existsSync(join(dir, "data/online.db.vectors")) && readdirSync(join(dir, "data/online.db.vectors"))).toEqual(
      [],
    );
    const db = new Database(join(dir, "data/online.db"));
    expect(db.prepare(`SELECT count(*) AS n FROM __fstore_vectors`).get()).toEqual({ n: 0 });
    db.close();
  });
});

describe.each([
  ["SQLite", undefined],
  [
    "Redis",
    `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=0"\n  key_prefix: fstore_vecttl_${process.pid}\n`,
  ],
])("vector TTL and an empty index (%s)", (_kind, online) => {
  it("answers an empty index with an empty result, and does not answer an expired vector", async () => {
    const { dir, cleanup } = tempDir("vecttl");
    const vectors = randomVectors(50, DIM, 5);
    await writeVectorRepo(dir, vectors, online, "1d");
    const store = await FeatureStore.open(dir);
    try {
      await store.apply();
      expect(await searchIds(store, vectors[0], 5)).toEqual([]);
      expect(await searchIds(store, vectors[0], 5, { exact: true })).toEqual([]);
      // written 1 day before T0, read now (years later): every vector is expired
      await store.materialize(T0 - 2 * DAY, T0);
      expect(await searchIds(store, vectors[0], 5)).toEqual([]);
      const now = Date.now();
      await store.writeToOnlineStore(
        "item_embeddings",
        [3, 4].map((id) => ({ item_id: id, event_timestamp: now, cos: vectors[id], ip: vectors[id], l2: vectors[id] })),
      );
      expect(await searchIds(store, vectors[3], 5)).toEqual([3, 4]);
    } finally {
      await store.teardown();
      await store.close();
      cleanup();
    }
  }, 60_000);
});

describe("a process killed after the store write, before the index save", () => {
  it("leaves a state that the next start repairs", async () => {
    const { dir, cleanup } = tempDir("veccrash");
    const vectors = randomVectors(100, DIM, 11);
    await writeVectorRepo(dir, vectors);
    let store = await FeatureStore.open(dir);
    try {
      await store.apply();
      await store.materialize(T0 - 2 * DAY, T0);
      await store.close(); // saves the index of the 100 vectors
      const script = join(dir, "writer.mts");
      const far = Array.from({ length: DIM }, (_, i) => (i === 5 ? 30 : 0));
      writeFileSync(
        script,
        `import { FeatureStore } from ${JSON.stringify(join(ROOT, "index.ts"))};
const store = await FeatureStore.open(${JSON.stringify(dir)});
await store.retrieveOnlineDocuments({ features: ["item_embeddings:cos"], query: ${JSON.stringify(vectors[0])}, topK: 1 });
const v = ${JSON.stringify(far)};
await store.writeToOnlineStore("item_embeddings", [{ item_id: 777, event_timestamp: ${T0 + 1}, cos: v, ip: v, l2: v }]);
process.stdout.write("written\\n");
setInterval(() => {}, 1000);
`,
      );
      const child = spawn(process.execPath, ["--import", "tsx", script], {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let err = "";
      child.stderr.on("data", (c: Buffer) => (err += c.toString()));
      await new Promise<void>((ok, fail) => {
        const timer = setTimeout(() => fail(new Error(`writer did not write in 60 s: ${err}`)), 60_000);
        child.stdout.on("data", (c: Buffer) => {
          if (c.toString().includes("written")) {
            clearTimeout(timer);
            ok();
          }
        });
        child.once("exit", (code) => fail(new Error(`writer exited ${code}: ${err}`)));
      });
      child.kill("SIGKILL"); // before its delayed index save
      await new Promise((r) => child.once("exit", r));
      const meta = JSON.parse(
        (await import("node:fs")).readFileSync(
          join(dir, "data/online.db.vectors/vec_repo.item_embeddings.cos.json"),
          "utf8",
        ),
      ) as { seq: number };
      expect(meta.seq).toBe(1); // the saved index does not hold item 777
      store = await FeatureStore.open(dir);
      expect(await searchIds(store, far, 1)).toEqual([777]);
    } finally {
      await store.close();
      cleanup();
    }
  }, 120_000);
});

describe("vector index on Redis, shared by processes", () => {
  it("each process builds its index from Redis and follows the change log; a new generation rebuilds it", async () => {
    const { dir, cleanup } = tempDir("vecredis");
    const prefix = `fstore_vecidx_test_${process.pid}`;
    const vectors = randomVectors(150, DIM, 13);
    await writeVectorRepo(
      dir,
      vectors,
      `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=0"\n  key_prefix: ${prefix}\n`,
    );
    const a = await FeatureStore.open(dir);
    const b = await FeatureStore.open(dir);
    try {
      await a.apply();
      await a.materialize(T0 - 2 * DAY, T0);
      // b was not running while a wrote: it builds from the vectors hash
      b.refreshRegistry();
      expect(await searchIds(b, vectors[8], 1)).toEqual([8]);
      const far = Array.from({ length: DIM }, (_, i) => (i === 6 ? 25 : 0));
      await a.writeToOnlineStore("item_embeddings", [
        { item_id: 900, event_timestamp: T0, cos: far, ip: far, l2: far },
      ]);
      await a.writeToOnlineStore("item_embeddings", [{ item_id: 8, event_timestamp: T0, cos: far, ip: far, l2: far }]);
      // b follows the log: 900 inserted, 8 moved
      expect(new Set(await searchIds(b, far, 2))).toEqual(new Set([900, 8]));
      expect(await searchIds(b, vectors[8], 3)).not.toContain(8);
      // an older write is skipped for the log too
      await a.writeToOnlineStore("item_embeddings", [
        { item_id: 900, event_timestamp: T0 - 5 * DAY, cos: vectors[0], ip: vectors[0], l2: vectors[0] },
      ]);
      expect(new Set(await searchIds(b, far, 2))).toEqual(new Set([900, 8]));
      // a metric change is a new generation: b rebuilds under the new metric
      writeFileSync(join(dir, "features.ts"), vectorDefinitions().replace(`vec("cos", "cosine")`, `vec("cos", "l2")`));
      await a.apply();
      b.refreshRegistry();
      const q = vectors[30];
      const truth = new Map(vectors.map((v, i) => [i, v] as const));
      truth.set(900, far);
      truth.set(8, far);
      const want = bruteForce(truth, q, "l2", 5);
      const res = (
        await b.retrieveOnlineDocuments({ features: ["item_embeddings:cos"], query: q, topK: 5 })
      ).toObject();
      expect(res.item_id).toEqual(want.map((w) => w.id));
      (res.distance as number[]).forEach((d, i) => expect(d).toBeCloseTo(want[i].d, 4));
      await a.teardown();
      const { Redis } = await import("ioredis");
      const r = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true });
      await r.connect();
      expect(await r.keys(`${prefix}:*`)).toEqual([]);
      await r.quit();
    } finally {
      await a.close();
      await b.close();
      cleanup();
    }
  }, 60_000);
});
