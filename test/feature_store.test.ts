// The FeatureStore facade end to end on real parquet, DuckDB, and each online store (SQLite, Redis).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { FeatureStore } from "../stores/feature_store.js";
import { DAY, HOUR, T0, tempDir, writeRepo } from "./repo_fixture.js";

const RUN = `${process.pid}_${Date.now() % 100000}`;
const STORES: Array<[string, (project: string) => string | undefined]> = [
  ["sqlite", () => undefined],
  [
    "redis",
    (project) =>
      `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=0"\n  key_prefix: fstore_fs_test_${project}\n`,
  ],
];

/** What each store must answer identically. */
const answers = new Map<string, unknown>();

describe.each(STORES)("FeatureStore on %s", (kind, onlineYaml) => {
  const project = `fs_${kind}_${RUN}`;
  let dir: string;
  let cleanup: () => void;
  let store: FeatureStore;

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir(`facade-${kind}`));
    await writeRepo(dir, project, onlineYaml(project));
    store = await FeatureStore.open(dir);
    await store.apply();
  });
  afterAll(async () => {
    await store.teardown();
    await store.close();
    cleanup();
  });

  const read = async (features: string[] | string, entities: Record<string, unknown[]>, fullFeatureNames = false) =>
    (await store.getOnlineFeatures({ features, entities, fullFeatureNames })).toFeastJSON();

  it("materializes the latest row per entity inside [start, end], ties to the latest created", async () => {
    const report = await store.materialize(new Date(T0 - 2 * DAY), new Date(T0));
    expect(report.views.map((v) => [v.view, v.rows]).sort()).toEqual([
      ["item_features", 1],
      ["user_features", 2],
    ]);
    const res = await read(["user_features:age", "user_features:city", "user_features:seen"], { user_id: [1, 2, 3] });
    expect(res.metadata.feature_names).toEqual(["user_id", "age", "city", "seen"]);
    expect(res.results[0].values).toEqual([1, 2, 3]);
    expect(res.results[1].values).toEqual([33, 40, null]);
    expect(res.results[2].values).toEqual(["Bergen", null, null]);
    expect(res.results[3].values).toEqual([[3], null, null]);
    // T0 is long ago and the view's ttl is 2 days: values are kept, marked outside max age
    expect(res.results[1].statuses).toEqual(["OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE", "NOT_FOUND"]);
    expect(res.results[1].event_timestamps).toEqual([
      "2024-01-01T00:00:00Z",
      "2023-12-31T23:00:00Z",
      "1970-01-01T00:00:00Z",
    ]);
    answers.set(`${kind}:materialize`, res);
    const items = await read(["item_features:price"], { item_id: [10, 11] });
    // ttl 0: no age limit; item 11's only row is older than the window
    expect(items.results[1]).toEqual({
      values: [9.5, null],
      statuses: ["PRESENT", "NOT_FOUND"],
      event_timestamps: ["2023-12-31T00:00:00Z", "1970-01-01T00:00:00Z"],
    });
  });

  it("never replaces a newer value with an older one", async () => {
    await store.materialize(new Date(T0 - 2 * DAY), new Date(T0 - DAY)); // older window: age 31
    await store.writeToOnlineStore("user_features", [
      { user_id: 1, event_timestamp: new Date(T0 - 5 * DAY), age: 99, city: "Old", seen: [] },
    ]);
    let res = await read(["user_features:age"], { user_id: [1] });
    expect(res.results[1].values).toEqual([33]);
    const fresh = new Date(Math.floor(Date.now() / 1000) * 1000);
    await store.writeToOnlineStore("user_features", {
      user_id: [1],
      event_timestamp: [fresh.toISOString()],
      age: [34],
      city: ["Bergen"],
      seen: [[4]],
    });
    res = await read(["user_features:age"], { user_id: ["1"] });
    expect(res.results[1]).toEqual({
      values: [34],
      statuses: ["PRESENT"],
      event_timestamps: [fresh.toISOString().replace(".000Z", "Z")],
    });
  });

  it("continues incrementally from the end of the last interval", async () => {
    const before = store.contents().materializations.filter((m) => m.view === "user_features").length;
    const report = await store.materializeIncremental(new Date(T0 + 2 * DAY), { views: ["user_features"] });
    expect(report.views).toHaveLength(1);
    // as Feast: from the latest end of any interval (T0, not the later run's T0 - 1d); both ends inclusive,
    // so user 1 (T0) and user 3 (T0 + 1d) are in the new window
    expect(report.views[0].start).toBe(T0);
    expect(report.views[0].rows).toBe(2);
    const res = await read(["user_features:age"], { user_id: [3] });
    expect(res.results[1].values).toEqual([50]);
    expect(store.contents().materializations.filter((m) => m.view === "user_features")).toHaveLength(before + 1);
  });

  it("starts a first incremental run at end - ttl (ttl 0: 52 weeks)", async () => {
    const { dir: d2, cleanup: c2 } = tempDir(`incr-${kind}`);
    const p2 = `${project}_b`;
    await writeRepo(d2, p2, onlineYaml(p2));
    const s2 = await FeatureStore.open(d2);
    try {
      await s2.apply();
      const end = T0 + 12 * HOUR;
      const report = await s2.materializeIncremental(new Date(end));
      const byView = new Map(report.views.map((v) => [v.view, v]));
      expect(byView.get("user_features")?.start).toBe(end - 2 * DAY);
      expect(byView.get("item_features")?.start).toBe(end - 52 * 7 * DAY);
      expect(byView.get("user_features")?.rows).toBe(2); // users 1 and 2
      await s2.teardown();
    } finally {
      await s2.close();
      c2();
    }
  });

  it("reads a feature service with full feature names", async () => {
    const res = await read("ranking", { user_id: [1], item_id: [10] }, true);
    expect(res.metadata.feature_names).toEqual([
      "user_id",
      "item_id",
      "user_features__age",
      "user_features__city",
      "user_features__seen",
      "item_features__price",
    ]);
    expect(res.results[5].values).toEqual([9.5]);
    await expect(read(["user_features:age"], { item_id: [1] })).rejects.toThrow(/join key "user_id" is missing/);
    await expect(read(["user_features:nope"], { user_id: [1] })).rejects.toThrow(
      /feature view "user_features" has no feature "nope"/,
    );
    await expect(read(["nope:age"], { user_id: [1] })).rejects.toThrow(/feature view "nope" .* is not in the registry/);
  });

  it("reads views of two join-key sets in one call, and shares the response's views across equal requests", async () => {
    const features = ["item_features:price", "user_features:age", "user_features:city"];
    const first = await store.getOnlineFeatures({ features, entities: { item_id: [10, 99], user_id: [2, 1] } });
    expect(first.toObject()).toEqual({
      item_id: [10, 99],
      user_id: [2, 1],
      price: [9.5, null],
      age: [40, 34],
      city: [null, "Bergen"],
    });
    // an encoder keys what it derives from the names on `views` (OnlineResponse documents it)
    const again = await store.getOnlineFeatures({ features: [...features], entityRows: [{ item_id: 10, user_id: 1 }] });
    expect(again.views).toBe(first.views);
    expect(again.toRows()).toEqual([{ item_id: 10, user_id: 1, price: 9.5, age: 34, city: "Bergen" }]);
  });

  it("pushes online and offline, and rejects rows that do not match the schema", async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    await expect(
      store.push("item_push", [{ item_id: 12, event_timestamp: now, price: "cheap" }], { to: "online_and_offline" }),
    ).rejects.toThrow(/row 0, feature "price" of "item_features": expected a number \(float64\), got "cheap"/);
    await expect(
      store.push("item_push", [{ item_id: 12, event_timestamp: now, price: 1, colour: "red" }]),
    ).rejects.toThrow(/column "colour" is not/);
    await expect(store.push("nope", [])).rejects.toThrow(/push source "nope"/);
    const written = await store.push("item_push", [{ item_id: 12, event_timestamp: now, price: 3.5 }], {
      to: "online_and_offline",
    });
    expect(written).toBe(1);
    const online = await read(["item_features:price"], { item_id: [12] });
    expect(online.results[1].values).toEqual([3.5]);
    const job = await store.getHistoricalFeatures({
      entityDf: [
        { item_id: 12, event_timestamp: new Date(now.getTime() + 1000) },
        { item_id: 10, event_timestamp: new Date(T0) },
      ],
      features: ["item_features:price"],
    });
    const rows = await job.toRows();
    await job.close();
    expect(rows.map((r) => r.price)).toEqual([3.5, 9.5]);
  });

  it("builds a point-in-time training set from a feature service", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: [
        { user_id: 1, item_id: 10, event_timestamp: new Date(T0 - 12 * HOUR) },
        { user_id: 1, item_id: 10, event_timestamp: new Date(T0) },
        { user_id: 2, item_id: 99, event_timestamp: new Date(T0 - 2 * HOUR) },
      ],
      features: "ranking",
      fullFeatureNames: true,
    });
    const rows = await job.toRows();
    await job.close();
    expect(rows.map((r) => [r.user_features__age, r.user_features__city, r.item_features__price])).toEqual([
      [31, "Oslo", 9.5],
      [33, "Bergen", 9.5],
      [null, null, null],
    ]);
    const out = join(dir, "train.parquet");
    const job2 = await store.getHistoricalFeatures({
      entityDf: [{ user_id: 1, event_timestamp: new Date(T0) }],
      features: ["user_features:age"],
    });
    await job2.toParquet(out);
    await job2.close();
    const back = await store.getHistoricalFeatures({ entityDf: out, features: ["user_features:city"] });
    expect((await back.toRows()).map((r) => [r.age, r.city])).toEqual([[33, "Bergen"]]);
    await back.close();
  });
});

describe("the online stores agree", () => {
  it("answers the same after the same materialization", () => {
    expect(answers.get("sqlite:materialize")).toBeDefined();
    expect(answers.get("redis:materialize")).toEqual(answers.get("sqlite:materialize"));
  });
});
