// Push in append mode: each pushed event is appended to its key's stored lists (a live session's items so far),
// on SQLite and on Redis for real; the latest maxLength kept, older events never undo newer ones, concurrent
// appends in one process all land, and bad uses are one-line errors.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFeatureServer } from "../server/server.js";
import { FeatureStore } from "../stores/feature_store.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { T0, tempDir } from "./repo_fixture.js";

const DEFS = `import { Entity, FeatureView, Field, FileSource, PushSource } from "fstore";
export const session = new Entity({ name: "session", joinKeys: ["user_session"], valueType: "string" });
export const sessionPush = new PushSource({
  name: "session_events",
  batchSource: new FileSource({ name: "session_src", path: "data/sessions.parquet", timestampField: "event_timestamp" }),
});
export const sessionItems = new FeatureView({
  name: "session_items",
  entities: [session],
  ttl: 0,
  schema: [new Field({ name: "product_id", dtype: "int64[]" }), new Field({ name: "event_time", dtype: "unix_timestamp[]" })],
  source: sessionPush,
});
export const other = new FeatureView({
  name: "session_scalar",
  entities: [session],
  ttl: 0,
  schema: [new Field({ name: "clicks", dtype: "int64" })],
  source: new PushSource({ name: "scalar_push", batchSource: new FileSource({ name: "scalar_src", path: "data/sessions.parquet", timestampField: "event_timestamp" }) }),
});
`;

const STORES: Array<[string, string]> = [
  ["sqlite", "online_store:\n  type: sqlite\n  path: data/online.db\n"],
  [
    "redis",
    `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379"\n  key_prefix: "fstore-append-${process.pid}:"\n`,
  ],
];

describe.each(STORES)("push mode append (%s)", (_name, online) => {
  const { dir, cleanup } = tempDir("append");
  let store: FeatureStore;
  beforeAll(async () => {
    mkdirSync(join(dir, "data"), { recursive: true });
    writeFileSync(join(dir, "feature_store.yaml"), `project: append_test\nregistry: data/registry.db\n${online}`);
    writeFileSync(join(dir, "features.ts"), DEFS);
    await writeParquet(
      join(dir, "data/sessions.parquet"),
      [{ user_session: "s0", event_timestamp: T0, product_id: [1], event_time: [T0], clicks: 1 }],
      {
        user_session: "string",
        event_timestamp: "timestamp",
        product_id: "int64[]",
        event_time: "unix_timestamp[]",
        clicks: "int64",
      },
    );
    store = await FeatureStore.open(dir);
    await store.apply();
  }, 60_000);
  afterAll(async () => {
    await store.teardown();
    await store.close();
    cleanup();
  });

  const read = async (s: string) =>
    (
      await store.getOnlineFeatures({
        features: ["session_items:product_id", "session_items:event_time"],
        entityRows: [{ user_session: s }],
      })
    ).toObject();
  const ev = (s: string, item: number, t: number) => ({
    user_session: s,
    product_id: item,
    event_time: new Date(t),
    event_timestamp: new Date(t),
  });

  it("appends events in event-time order to the stored lists and keeps the newest event time", async () => {
    await store.push("session_events", [ev("a", 10, T0 + 1000), ev("b", 7, T0)], { mode: "append" });
    await store.push("session_events", [ev("a", 12, T0 + 3000), ev("a", 11, T0 + 2000)], { mode: "append" });
    const got = await read("a");
    expect(got.product_id).toEqual([[10, 11, 12]]);
    expect((await read("b")).product_id).toEqual([[7]]);
    // an event older than the stored row is still appended, and does not move the row back in time
    await store.push("session_events", [ev("a", 9, T0)], { mode: "append" });
    expect((await read("a")).product_id).toEqual([[10, 11, 12, 9]]);
    const res = await store.getOnlineFeatures({
      features: ["session_items:product_id"],
      entityRows: [{ user_session: "a" }],
    });
    expect(res.toFeastJSON().results[1].event_timestamps[0]).toBe(
      new Date(T0 + 3000).toISOString().replace(".000", ""),
    );
  });

  it("keeps the latest maxLength values", async () => {
    for (let i = 0; i < 5; i++)
      await store.push("session_events", [ev("c", 100 + i, T0 + i)], { mode: "append", maxLength: 3 });
    expect((await read("c")).product_id).toEqual([[102, 103, 104]]);
  });

  it("concurrent appends in one process all land", async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.push("session_events", [ev("d", i, T0 + i)], { mode: "append" })),
    );
    expect((await read("d")).product_id).toEqual([Array.from({ length: 20 }, (_, i) => i)]);
  });

  it('POST /push with "mode": "append" takes one event\'s scalars per row', async () => {
    const server = await startFeatureServer({ store, port: 0, authToken: "", logLevel: "error" });
    try {
      const post = (body: unknown) =>
        fetch(`http://127.0.0.1:${server.port}/push`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const df = {
        user_session: ["h", "h"],
        product_id: [5, 6],
        event_time: ["2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z"],
        event_timestamp: ["2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z"],
      };
      const r = await post({ push_source_name: "session_events", df, mode: "append", max_length: 10 });
      expect(r.status, await r.clone().text()).toBe(200);
      expect((await read("h")).product_id).toEqual([[5, 6]]);
      const bad = await post({ push_source_name: "session_events", df, mode: "merge" });
      expect(bad.status).toBe(400);
    } finally {
      await server.close();
    }
  });

  it("bad uses are one-line errors and write nothing", async () => {
    await expect(
      store.push("session_events", [ev("e", 1, T0)], { mode: "append", to: "online_and_offline" }),
    ).rejects.toThrow(/mode "append" writes the online store only/);
    await expect(
      store.push("scalar_push", [{ user_session: "e", clicks: 3, event_timestamp: new Date(T0) }], { mode: "append" }),
    ).rejects.toThrow(/append needs every feature of view "session_scalar" to be a list, but "clicks" is int64/);
    await expect(store.push("session_events", [ev("e", 1, T0)], { mode: "append", maxLength: 0 })).rejects.toThrow(
      /maxLength must be a positive integer/,
    );
    await expect(store.push("session_events", [ev("e", 1, T0)], { mode: "merge" as never })).rejects.toThrow(
      /"mode" must be replace or append/,
    );
    expect((await read("e")).product_id).toEqual([null]);
  });
});
