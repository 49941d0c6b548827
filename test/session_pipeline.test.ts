// A session pipeline (SessionModel -> Order) through store.recommend and POST /recommend: a live session's raw
// events from the request, or read by the session id from a view fed by push in append mode; answers equal the
// saved model's own answer for the same events; an unknown or empty session gets the popularity list.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateRees46, rees46SessionWorkflow } from "../adapters/datasets/index.js";
import { trainSessionJob } from "../adapters/models/session/job.js";
import { NextItemModel } from "../adapters/models/session/serve.js";
import { FeatureStore } from "../index.js";
import { startFeatureServer } from "../server/server.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { tempDir } from "./repo_fixture.js";

const DEFS = `import { Entity, FeatureView, Field, FileSource, PushSource, Pipeline, SessionModel, Order } from "fstore";
export const session = new Entity({ name: "session", joinKeys: ["user_session"], valueType: "string" });
const events = new PushSource({
  name: "session_events",
  batchSource: new FileSource({ name: "session_src", path: "data/session_items.parquet", timestampField: "event_timestamp" }),
});
export const sessionItems = new FeatureView({
  name: "session_items",
  entities: [session],
  ttl: "1d",
  schema: [new Field({ name: "product_id", dtype: "int64[]" }), new Field({ name: "event_time", dtype: "unix_timestamp[]" })],
  source: events,
});
export const nextItem = new Pipeline({
  name: "next_item",
  entity: session,
  stages: [
    new SessionModel({ model: "models/knn", workflow: "data/workflow", view: "session_items", candidates: 50 }),
    new Order({ topK: 10 }),
  ],
});
`;

const { dir, cleanup } = tempDir("session-pipeline");
let store: FeatureStore;
let model: NextItemModel;
const NOW = Date.now();

beforeAll(async () => {
  mkdirSync(join(dir, "data"), { recursive: true });
  const events = join(dir, "data/events.parquet");
  await generateRees46(events, { sessions: 600, items: 60, days: 2, seed: 3 });
  const wf = rees46SessionWorkflow();
  await wf.fit(events);
  await wf.transform(events, join(dir, "data/sessions"), { partitionBy: "day_index" });
  wf.save(join(dir, "data/workflow"));
  const res = await trainSessionJob({
    data: join(dir, "data/sessions"),
    outDir: join(dir, "trained"),
    models: ["knn"],
    trainLastDay: true,
  });
  mkdirSync(join(dir, "models"), { recursive: true });
  const { cpSync } = await import("node:fs");
  cpSync(res.models.knn, join(dir, "models/knn"), { recursive: true });
  await writeParquet(
    join(dir, "data/session_items.parquet"),
    [{ user_session: "old", event_timestamp: 0, product_id: [1000001], event_time: [0] }],
    { user_session: "string", event_timestamp: "timestamp", product_id: "int64[]", event_time: "unix_timestamp[]" },
  );
  writeFileSync(
    join(dir, "feature_store.yaml"),
    "project: sessions\nregistry: data/registry.db\nonline_store:\n  type: sqlite\n  path: data/online.db\n",
  );
  writeFileSync(join(dir, "features.ts"), DEFS);
  store = await FeatureStore.open(dir);
  await store.apply();
  model = await NextItemModel.open({ model: join(dir, "models/knn"), workflow: join(dir, "data/workflow") });
}, 180_000);
afterAll(async () => {
  await store?.close();
  cleanup();
});

const SESSION = {
  product_id: [1000013, 1000012, 1000010],
  event_time: ["2019-10-02T10:00:00Z", "2019-10-02T10:01:00Z", "2019-10-02T10:02:00Z"],
};

describe("a session pipeline", () => {
  it("answers a request's session as the model does, excluding the session's items", async () => {
    const out = await store.recommend({ pipeline: "next_item", session: SESSION, debug: true });
    expect(out.results).toHaveLength(1);
    const r = out.results[0];
    const want = model.recommend({ session: SESSION, topK: 10 });
    expect(r.items.map((i) => i.product_id)).toEqual(want.items);
    expect(r.fallback).toBeNull();
    for (const id of SESSION.product_id) expect(r.items.map((i) => i.product_id)).not.toContain(id);
    expect(r.debug?.map((d) => d.kind)).toEqual(["session_model", "order"]);
  });

  it("reads a session by its id from the view that push in append mode feeds", async () => {
    for (let i = 0; i < 3; i++)
      await store.push(
        "session_events",
        [
          {
            user_session: "live-1",
            product_id: SESSION.product_id[i],
            event_time: new Date(NOW + i * 1000),
            event_timestamp: new Date(NOW + i * 1000),
          },
        ],
        { mode: "append" },
      );
    const byId = await store.recommend({ pipeline: "next_item", entities: { user_session: ["live-1", "nobody"] } });
    expect(byId.results[0].items.map((i) => i.product_id)).toEqual(
      model.recommend({ session: { product_id: SESSION.product_id }, topK: 10 }).items,
    );
    expect(byId.results[0].user_session).toBe("live-1");
    // a session the store does not hold: the popularity list, said so
    expect(byId.results[1].fallback).toBe("popularity");
    expect(byId.results[1].items).toHaveLength(10);
  });

  it("an empty session gets the popularity answer; a bad one a one-line error", async () => {
    const empty = await store.recommend({ pipeline: "next_item", session: { product_id: [] } });
    expect(empty.results[0].fallback).toBe("popularity");
    await expect(
      store.recommend({ pipeline: "next_item", session: { product_id: [1, 2], event_time: ["2019-10-02"] } }),
    ).rejects.toThrow(/session\.event_time has 1 values/);
  });

  it("POST /recommend takes the session in the body", async () => {
    const server = await startFeatureServer({ store, port: 0, authToken: "", logLevel: "error" });
    try {
      const post = (body: unknown) =>
        fetch(`http://127.0.0.1:${server.port}/recommend`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const r = await post({ pipeline: "next_item", session: SESSION, top_k: 5 });
      expect(r.status, await r.clone().text()).toBe(200);
      const body = (await r.json()) as { results: Array<{ items: Array<{ product_id: number }> }> };
      expect(body.results[0].items.map((i) => i.product_id)).toEqual(
        model.recommend({ session: SESSION, topK: 5 }).items,
      );
      const bad = await post({ pipeline: "next_item", session: { product_id: [null] } });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: string }).error).toMatch(/session\.product_id\[0\] must be an item id/);
    } finally {
      await server.close();
    }
  });
});
