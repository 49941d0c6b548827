// Bad requests get a 4xx naming the field and the server keeps serving; bearer auth; registry refresh on
// the TTL; graceful close with a request in flight.
import { request } from "node:http";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FeatureServer, startFeatureServer } from "../server/server.js";
import { FeatureStore } from "../stores/feature_store.js";
import { NOW, type TestRepo, applyExtraView, createTestRepo, get, post } from "./server_fixture.js";

const isoS = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

let repo: TestRepo;
beforeAll(async () => {
  repo = await createTestRepo("sqlite", { registryTtlSec: 1 });
  const store = await FeatureStore.open(repo.dir);
  await store.materialize(NOW - 30 * 86400_000, NOW);
  await store.close();
});
afterAll(async () => {
  await repo?.cleanup();
});

describe("bad input", () => {
  let server: FeatureServer;
  let url: string;
  beforeAll(async () => {
    server = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent", maxBodyBytes: 4096 });
    url = server.url;
  });
  afterAll(async () => {
    await server?.close();
  });

  const gof = (body: unknown) => post(`${url}/get-online-features`, body);

  const cases: Array<[string, () => Promise<{ status: number; json: Record<string, unknown> }>, number, RegExp]> = [
    [
      "malformed JSON",
      () => post(`${url}/get-online-features`, '{"features": ["user_features:age"'),
      400,
      /malformed JSON/,
    ],
    ["a JSON array body", () => post(`${url}/get-online-features`, "[1]"), 400, /expected a JSON object/],
    ["an empty body", () => post(`${url}/get-online-features`, ""), 400, /empty body/],
    [
      "an unknown feature",
      () => gof({ features: ["user_features:agee"], entities: { user_id: [1] } }),
      404,
      /features\[0\].*no feature "agee".*has: age/,
    ],
    [
      "an unknown view",
      () => gof({ features: ["user_features:age", "nope:x"], entities: { user_id: [1] } }),
      404,
      /features\[1\].*no feature view "nope"/,
    ],
    [
      "a malformed reference",
      () => gof({ features: ["age"], entities: { user_id: [1] } }),
      400,
      /features\[0\].*does not match/,
    ],
    [
      "an unknown feature service",
      () => gof({ feature_service: "nope", entities: { user_id: [1] } }),
      404,
      /feature_service: no feature service "nope"/,
    ],
    [
      "neither features nor feature_service",
      () => gof({ entities: { user_id: [1] } }),
      400,
      /feature_service is required/,
    ],
    [
      "both features and feature_service",
      () => gof({ features: ["user_features:age"], feature_service: "ranking", entities: { user_id: [1] } }),
      400,
      /either "features" or "feature_service"/,
    ],
    [
      "a missing entity key",
      () => gof({ features: ["user_features:age"], entities: { item_id: ["i1"] } }),
      400,
      /entities\.user_id is required/,
    ],
    [
      "a missing entity key of a service",
      () => gof({ feature_service: "ranking", entities: { user_id: [1] } }),
      400,
      /entities\.item_id is required/,
    ],
    [
      "entity lists of unequal length",
      () => gof({ feature_service: "ranking", entities: { user_id: [1, 2], item_id: ["i1"] } }),
      400,
      /entities\.item_id.*1 values but "user_id" has 2/,
    ],
    [
      "a string for an int64 key",
      () => gof({ features: ["user_features:age"], entities: { user_id: [1, "2"] } }),
      400,
      /entities\.user_id\[1\]: expected integer, got "2"/,
    ],
    [
      "a number for a string key",
      () => gof({ features: ["item_stats:price"], entities: { item_id: [5] } }),
      400,
      /entities\.item_id\[0\]: expected string, got 5/,
    ],
    [
      "an entity column that is not a list",
      () => gof({ features: ["user_features:age"], entities: { user_id: 1 } }),
      400,
      /entities\.user_id: expected array/,
    ],
    [
      "an empty entity list",
      () => gof({ features: ["user_features:age"], entities: { user_id: [] } }),
      400,
      /entities\.user_id/,
    ],
    [
      "full_feature_names not a boolean",
      () => gof({ features: ["user_features:age"], entities: { user_id: [1] }, full_feature_names: "yes" }),
      400,
      /full_feature_names: expected boolean/,
    ],
    [
      "a push of a wrong value type",
      () =>
        post(`${url}/push`, {
          push_source_name: "item_push",
          df: { item_id: ["i1"], price: ["cheap"], views: [1], event_timestamp: [isoS(NOW)] },
        }),
      400,
      /df\.price\[0\]: expected number or null, got "cheap"/,
    ],
    [
      "a push without the timestamp",
      () => post(`${url}/push`, { push_source_name: "item_push", df: { item_id: ["i1"], price: [1], views: [1] } }),
      400,
      /df\.event_timestamp is required/,
    ],
    [
      "a push with a bad timestamp",
      () =>
        post(`${url}/push`, {
          push_source_name: "item_push",
          df: { item_id: ["i1"], price: [1], views: [1], event_timestamp: ["yesterday"] },
        }),
      400,
      /df\.event_timestamp\[0\]: "yesterday" is not a timestamp/,
    ],
    [
      "a push with an unknown column",
      () =>
        post(`${url}/push`, {
          push_source_name: "item_push",
          df: { item_id: ["i1"], price: [1], views: [1], event_timestamp: [isoS(NOW)], colour: ["red"] },
        }),
      400,
      /df\.colour is not expected/,
    ],
    [
      "a push of unequal columns",
      () =>
        post(`${url}/push`, {
          push_source_name: "item_push",
          df: { item_id: ["i1", "i2"], price: [1], views: [1, 2], event_timestamp: [isoS(NOW), isoS(NOW)] },
        }),
      400,
      /df\.price.*1 values but "item_id" has 2/,
    ],
    [
      "a push to an unknown source",
      () => post(`${url}/push`, { push_source_name: "nope", df: { a: [1] } }),
      404,
      /push_source_name: no push source "nope".*item_push/,
    ],
    [
      "a bad push target",
      () => post(`${url}/push`, { push_source_name: "item_push", df: { a: [1] }, to: "disk" }),
      400,
      /to: "disk" is not one of/,
    ],
    [
      "a write to an unknown view",
      () => post(`${url}/write-to-online-store`, { feature_view_name: "nope", df: { a: [1] } }),
      404,
      /feature_view_name: no feature view "nope"/,
    ],
    [
      "materialize without end_ts",
      () => post(`${url}/materialize`, { start_ts: isoS(NOW) }),
      400,
      /end_ts is required/,
    ],
    [
      "materialize with a bad timestamp",
      () => post(`${url}/materialize`, { start_ts: "last week", end_ts: isoS(NOW) }),
      400,
      /start_ts: "last week" is not a timestamp/,
    ],
    [
      "materialize of an unknown view",
      () => post(`${url}/materialize-incremental`, { end_ts: isoS(NOW), feature_views: ["user_features", "nope"] }),
      404,
      /feature_views\[1\].*no such feature view/,
    ],
    [
      "materialize with start after end",
      () => post(`${url}/materialize`, { start_ts: isoS(NOW), end_ts: isoS(NOW - 86400_000) }),
      400,
      /start .* is after end/,
    ],
    [
      "an oversized body (declared length)",
      () => gof({ features: ["user_features:age"], entities: { user_id: Array.from({ length: 2000 }, (_, i) => i) } }),
      413,
      /over the limit of 4096 bytes/,
    ],
    [
      "an unknown endpoint",
      () => post(`${url}/get-offline-features`, {}),
      404,
      /no endpoint POST \/get-offline-features/,
    ],
    ["a GET on a POST endpoint", () => get(`${url}/push`), 405, /\/push takes POST, got GET/],
  ];

  it.each(cases)("%s answers %i naming the field", async (_name, send, status, message) => {
    const r = await send();
    expect(r.status).toBe(status);
    expect(typeof r.json.error).toBe("string");
    expect(r.json.error as string).toMatch(message);
  });

  it("an oversized chunked body (no content-length) answers 413", async () => {
    const big = JSON.stringify({
      features: ["user_features:age"],
      entities: { user_id: Array.from({ length: 3000 }, (_, i) => i) },
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${url}/get-online-features`,
        { method: "POST", headers: { "content-type": "application/json" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.write(big.slice(0, 3000));
      setTimeout(() => req.end(big.slice(3000)), 20);
    });
    expect(status).toBe(413);
  });

  it("keeps serving after every bad request", async () => {
    const r = await gof({ features: ["user_features:age"], entities: { user_id: [1] } });
    expect(r.status).toBe(200);
    expect((r.json.results as Array<{ values: unknown[] }>)[1].values).toEqual([31]);
    const m = await get(`${url}/metrics`);
    expect(m.text).toMatch(
      /fstore_http_requests_total\{endpoint="\/get-online-features",method="POST",status="400"\} [1-9]/,
    );
    expect(m.text).toMatch(
      /fstore_http_requests_total\{endpoint="\/get-online-features",method="POST",status="404"\} [1-9]/,
    );
  });
});

describe("bearer auth", () => {
  let server: FeatureServer;
  beforeAll(async () => {
    server = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent", authToken: "s3cret-token" });
  });
  afterAll(async () => {
    await server?.close();
  });
  const body = { features: ["user_features:age"], entities: { user_id: [1] } };

  it("answers 401 without the token, or with a wrong one", async () => {
    for (const headers of [
      {} as Record<string, string>,
      { authorization: "Bearer wrong" },
      { authorization: "s3cret-token" },
      { authorization: "Bearer s3cret-token2" },
    ]) {
      const r = await post(`${server.url}/get-online-features`, body, headers);
      expect(r.status).toBe(401);
      expect(r.json.error).toMatch(/bearer token/);
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    for (const path of ["/metrics"]) expect((await get(`${server.url}${path}`)).status).toBe(401);
    expect((await post(`${server.url}/push`, {})).status).toBe(401);
    expect((await post(`${server.url}/materialize`, {})).status).toBe(401);
  });

  it("serves with the token; /health needs none", async () => {
    const r = await post(`${server.url}/get-online-features`, body, { authorization: "Bearer s3cret-token" });
    expect(r.status).toBe(200);
    expect((await get(`${server.url}/metrics`, { authorization: "Bearer s3cret-token" })).status).toBe(200);
    expect((await get(`${server.url}/health`)).status).toBe(200);
  });

  it("takes the token from FSTORE_AUTH_TOKEN; without one, no auth", async () => {
    process.env.FSTORE_AUTH_TOKEN = "from-env";
    const s = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent" });
    delete process.env.FSTORE_AUTH_TOKEN;
    const open = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent" });
    try {
      expect((await post(`${s.url}/get-online-features`, body)).status).toBe(401);
      expect((await post(`${s.url}/get-online-features`, body, { authorization: "Bearer from-env" })).status).toBe(200);
      expect((await post(`${open.url}/get-online-features`, body)).status).toBe(200);
    } finally {
      await s.close();
      await open.close();
    }
  });
});

describe("server faults", () => {
  it("a fault of the server answers 500, logs the error with its stack, and the server keeps serving", async () => {
    const store = await FeatureStore.open(repo.dir);
    const logs: Array<Record<string, unknown>> = [];
    const logStream = new PassThrough();
    logStream.on("data", (c: Buffer) => {
      for (const line of c.toString().split("\n").filter(Boolean))
        logs.push(JSON.parse(line) as Record<string, unknown>);
    });
    const server = await startFeatureServer({ store, port: 0, logStream, logLevel: "info" });
    try {
      // the registry's SQLite file goes away under the server
      store.registry.close();
      const h = await get(`${server.url}/health`);
      expect(h.status).toBe(503);
      expect(h.json.error).toMatch(/unhealthy: .*database connection is not open/);
      const m = await post(`${server.url}/materialize-incremental`, { end_ts: isoS(NOW) });
      expect(m.status).toBe(500);
      expect(m.json.error).toMatch(/^internal error: .*database connection is not open/);
      const line = logs.find((l) => l.level === "error" && l.path === "/materialize-incremental");
      expect(line).toMatchObject({ msg: "request failed", status: 500, method: "POST" });
      expect(String(line?.stack)).toMatch(/at /);
      // reads need no registry read: still served from the cached registry
      const r = await post(`${server.url}/get-online-features`, {
        features: ["user_features:age"],
        entities: { user_id: [1] },
      });
      expect(r.status).toBe(200);
    } finally {
      await server.close();
      await store.close();
    }
  });
});

describe("registry refresh and shutdown", () => {
  it("an apply from another FeatureStore becomes visible after the registry TTL, without a restart", async () => {
    const server = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent" });
    try {
      const body = { features: ["user_city:city"], entities: { user_id: [1] } };
      expect((await post(`${server.url}/get-online-features`, body)).status).toBe(404);
      await applyExtraView(repo);
      // still the cached registry right after the apply: requests never read the registry themselves
      expect((await post(`${server.url}/get-online-features`, body)).status).toBe(404);
      let status = 404;
      const deadline = Date.now() + 5000;
      while (status !== 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await post(`${server.url}/get-online-features`, body)).status;
      }
      expect(status).toBe(200);
      const m = await get(`${server.url}/metrics`);
      expect(m.text).toMatch(/fstore_registry_reloads_total\{outcome="changed"\} 1/);
    } finally {
      await server.close();
    }
  });

  it("close() lets an in-flight request finish, then refuses connections", async () => {
    const server = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent" });
    const body = JSON.stringify({ features: ["user_features:age"], entities: { user_id: [1] } });
    // a request whose body arrives slowly: in flight when close() starts
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        `${server.url}/get-online-features`,
        { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.write(body.slice(0, 10));
      setTimeout(() => req.end(body.slice(10)), 300);
    });
    await new Promise((r) => setTimeout(r, 100));
    const closed = server.close();
    const r = await answer;
    await closed;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).results[1].values).toEqual([31]);
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });
});
