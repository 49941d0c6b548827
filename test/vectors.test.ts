// Vector fields and retrieveOnlineDocuments on both online stores: answers equal brute force computed here
// for the three metrics, and the index follows materialize, push and write-to-online-store.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Field, FeatureStore, ValidationError } from "../index.js";
import { DAY, T0, tempDir } from "./repo_fixture.js";
import { DIM, bruteForce, randomVectors, writeVectorRepo } from "./vectors_fixture.js";

const N = 300;

describe("vector fields", () => {
  it("are checked when defined", () => {
    const bad = (o: object) => () => new Field({ name: "e", dtype: "float32[]", ...o } as never);
    expect(bad({ vectorIndex: true })).toThrow(/vectorLength must be an integer/);
    expect(bad({ vectorIndex: true, vectorLength: 0 })).toThrow(/vectorLength must be an integer from 1.*got 0/);
    expect(bad({ vectorIndex: true, vectorLength: 4, vectorSearchMetric: "dot" })).toThrow(
      /vectorSearchMetric must be one of cosine, inner_product, l2, got "dot"/,
    );
    expect(bad({ vectorLength: 4 })).toThrow(/need vectorIndex: true/);
    expect(() => new Field({ name: "e", dtype: "int64[]", vectorIndex: true, vectorLength: 4 })).toThrow(
      /Field "e": a vector index needs dtype "float32\[\]" or "float64\[\]", got "int64\[\]"/,
    );
    const ok = new Field({ name: "e", dtype: "float32[]", vectorIndex: true, vectorLength: 4 }).toSpec();
    expect(ok).toEqual({
      name: "e",
      dtype: "float32[]",
      vectorIndex: true,
      vectorLength: 4,
      vectorSearchMetric: "cosine",
    });
  });
});

const REDIS = `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=0"\n  key_prefix: fstore_vec_test_${process.pid}\n`;

describe.each([
  ["SQLite", undefined],
  ["Redis", REDIS],
])("retrieveOnlineDocuments (%s)", (_kind, online) => {
  const { dir, cleanup } = tempDir("vectors");
  const vectors = randomVectors(N, DIM, 7);
  const truth = new Map(vectors.map((v, i) => [i, v]));
  let store: FeatureStore;

  beforeAll(async () => {
    await writeVectorRepo(dir, vectors, online);
    store = await FeatureStore.open(dir);
    const plan = await store.apply();
    expect(plan.vectorIndexes).toContain("create vector index item_embeddings:cos (8-d, cosine)");
    await store.materialize(T0 - 2 * DAY, T0);
  }, 60_000);
  afterAll(async () => {
    await store.teardown();
    await store.close();
    cleanup();
  });

  const search = (metric: "cos" | "ip" | "l2", q: number[], topK: number, extra: object = {}) =>
    store.retrieveOnlineDocuments({
      features: [`item_embeddings:${metric}`, "item_features:category"],
      query: q,
      topK,
      ...extra,
    });

  for (const metric of ["cos", "ip", "l2"] as const) {
    it(`answers as brute force for ${metric}, nearest first, with features and distance`, async () => {
      const queries = randomVectors(20, DIM, 99);
      for (const q of queries) {
        const want = bruteForce(truth, q, metric, 10);
        for (const exact of [false, true]) {
          const res = (await search(metric, q, 10, { exact })).toObject();
          expect(res.item_id).toEqual(want.map((w) => w.id));
          (res.distance as number[]).forEach((d, i) => expect(d).toBeCloseTo(want[i].d, 4));
          expect(res.category).toEqual(want.map((w) => w.id % 3));
          expect(res[metric]).toHaveLength(10);
        }
      }
    });
  }

  it("answers Feast's JSON with distance among the feature names", async () => {
    const json = (await search("cos", vectors[5], 3)).toFeastJSON();
    expect(json.metadata.feature_names).toEqual(["item_id", "distance", "cos", "category"]);
    expect(json.results[0].values[0]).toBe(5);
    expect(json.results[1].values[0]).toBeCloseTo(0, 5);
  });

  it("keeps the index in step with writes: insert, update, older never replaces newer, removal", async () => {
    const far = Array.from({ length: DIM }, (_, i) => (i === 0 ? 50 : 0));
    const write = (id: number, v: number[] | null, ts: number) =>
      store.writeToOnlineStore("item_embeddings", [{ item_id: id, event_timestamp: ts, cos: v, ip: v, l2: v }]);
    // a new entity becomes searchable
    expect(await write(1000, far, T0)).toBe(1);
    expect((await search("l2", far, 1)).toObject().item_id).toEqual([1000]);
    // an older vector does not replace it
    const other = Array.from({ length: DIM }, (_, i) => (i === 1 ? 50 : 0));
    expect(await write(1000, other, T0 - DAY)).toBe(0);
    expect((await search("l2", far, 1)).toObject().item_id).toEqual([1000]);
    expect((await search("l2", other, 1)).toObject().item_id).not.toEqual([1000]);
    // a newer one moves it
    expect(await write(1000, other, T0 + 1)).toBe(1);
    expect((await search("l2", other, 1)).toObject().item_id).toEqual([1000]);
    expect((await search("l2", far, 1)).toObject().item_id).not.toEqual([1000]);
    // push goes through the same path
    await store.push("emb_push", [{ item_id: 1001, event_timestamp: T0 + 2, cos: far, ip: far, l2: far }]);
    expect((await search("l2", far, 1)).toObject().item_id).toEqual([1001]);
    // a null vector leaves the index
    expect(await write(1001, null, T0 + 3)).toBe(1);
    expect((await search("l2", far, 1)).toObject().item_id).not.toEqual([1001]);
    expect((await search("l2", far, 1, { exact: true })).toObject().item_id).not.toEqual([1001]);
  });

  it("refuses a batch with a bad vector, naming view, field and entity, and writes none of it", async () => {
    const good = vectors[0].map((x) => x + 100);
    const rows = (bad: unknown) => [
      { item_id: 2000, event_timestamp: T0, cos: good, ip: good, l2: good },
      { item_id: 2001, event_timestamp: T0, cos: good, ip: bad, l2: good },
    ];
    await expect(store.writeToOnlineStore("item_embeddings", rows([1, 2]))).rejects.toThrow(
      /feature view "item_embeddings", field "ip", entity item_id=2001: the vector has 2 numbers, expected 8/,
    );
    const nan = [...good];
    nan[3] = NaN;
    await expect(store.writeToOnlineStore("item_embeddings", rows(nan))).rejects.toThrow(ValidationError);
    await expect(store.writeToOnlineStore("item_embeddings", rows(nan))).rejects.toThrow(/element 3 is NaN/);
    const read = await store.getOnlineFeatures({ features: ["item_embeddings:cos"], entityRows: [{ item_id: 2000 }] });
    expect(read.toObject().cos).toEqual([null]);
    expect((await search("l2", good, 1)).toObject().item_id).not.toEqual([2000]);
  });

  it("honours exclude and a filter exactly and still answers topK", async () => {
    const q = vectors[10];
    const plain = (await search("cos", q, 20)).toObject().item_id as number[];
    const exclude = plain.slice(0, 15);
    const res = (await search("cos", q, 10, { exclude })).toObject().item_id as number[];
    expect(res).toHaveLength(10);
    for (const id of res) expect(exclude).not.toContain(id);
    expect(res.slice(0, 5)).toEqual(plain.slice(15, 20));
    const odd = (await search("cos", q, 10, { filter: (r: Record<string, unknown>) => r.category === 1 })).toObject();
    expect(odd.item_id).toHaveLength(10);
    expect(new Set(odd.category)).toEqual(new Set([1]));
    const want = bruteForce(new Map([...truth].filter(([id]) => id % 3 === 1)), q, "cos", 10).map((w) => w.id);
    expect(odd.item_id).toEqual(want);
    // more than remain: all that remain
    const few = (await search("cos", q, 1000, { filter: (r: Record<string, unknown>) => r.category === 2 })).toObject();
    expect(few.item_id).toHaveLength(vectors.filter((_, i) => i % 3 === 2).length);
  });

  it("refuses bad queries with one line naming what is wrong", async () => {
    await expect(search("cos", [1, 2], 3)).rejects.toThrow(
      /query \(for item_embeddings:cos\): has 2 numbers, expected 8/,
    );
    const inf = [...vectors[0]];
    inf[2] = Infinity;
    await expect(search("cos", inf, 3)).rejects.toThrow(/element 2 is Infinity, expected a finite number/);
    await expect(search("cos", vectors[0], 0)).rejects.toThrow(/top_k: expected an integer from 1 to 1000, got 0/);
    await expect(search("cos", vectors[0], 1001)).rejects.toThrow(/top_k/);
    await expect(search("cos", vectors[0], 3, { distanceMetric: "l2" })).rejects.toThrow(
      /built for cosine; ask for cosine, or for l2 with exact: true/,
    );
    await expect(
      store.retrieveOnlineDocuments({ features: ["item_features:category"], query: vectors[0], topK: 3 }),
    ).rejects.toThrow(/none of item_features:category has a vector index/);
    await expect(
      store.retrieveOnlineDocuments({ features: ["item_embeddings:nope"], query: vectors[0], topK: 3 }),
    ).rejects.toThrow(ValidationError);
    // exact with another metric is brute force under that metric
    const l2 = (await search("cos", vectors[4], 5, { exact: true, distanceMetric: "l2" })).toObject().item_id;
    expect(l2).toEqual(
      bruteForce(
        new Map([...truth, [1000, Array.from({ length: DIM }, (_, i) => (i === 1 ? 50 : 0))]]),
        vectors[4],
        "l2",
        5,
      ).map((w) => w.id),
    );
  });
});
