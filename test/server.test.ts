// The feature server over a real repo: every endpoint on SQLite and on Redis, through HTTP on a free
// loopback port, read back with the typed client.
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FeatureServer, startFeatureServer } from "../server/server.js";
import {
  FeatureServerClient,
  FeatureServerError,
  responseToObject,
  type OnlineFeaturesResponse,
} from "../server/client.js";
import { DAY, HOUR, NOW, type OnlineKind, type TestRepo, createTestRepo, get, post } from "./server_fixture.js";

const EPOCH = "1970-01-01T00:00:00Z";
const isoS = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

describe.each<OnlineKind>(["sqlite", "redis"])("feature server on %s", (kind) => {
  let repo: TestRepo;
  let server: FeatureServer;
  let client: FeatureServerClient;
  const logLines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    repo = await createTestRepo(kind);
    const logStream = new PassThrough();
    let buf = "";
    logStream.on("data", (c: Buffer) => {
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        logLines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
    });
    server = await startFeatureServer({ repoPath: repo.dir, port: 0, logStream, logLevel: "info" });
    client = new FeatureServerClient({ url: server.url });
  });

  afterAll(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it("GET /health answers 200 and listens on loopback", async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await get(`${server.url}/health`);
    expect(r.status).toBe(200);
    expect(r.json.status).toBe("ok");
    expect(await client.health()).toBe(true);
  });

  it("POST /materialize loads the latest rows into the online store", async () => {
    const r = await post(`${server.url}/materialize`, {
      start_ts: isoS(NOW - 30 * DAY),
      end_ts: isoS(NOW),
      feature_views: ["user_features"],
    });
    expect(r.status, r.text).toBe(200);
    const views = r.json.views as Array<{ view: string; rows: number }>;
    expect(views.map((v) => v.view)).toEqual(["user_features"]);
    expect(views[0].rows).toBe(2);
  });

  it("POST /get-online-features answers Feast's shape with statuses and timestamps", async () => {
    const r = await post(`${server.url}/get-online-features`, {
      features: ["user_features:age", "user_features:city", "user_features:recent", "user_features:score"],
      entities: { user_id: [1, 2, 3, 1] },
    });
    expect(r.status, r.text).toBe(200);
    const body = r.json as unknown as OnlineFeaturesResponse;
    expect(body.metadata.feature_names).toEqual(["user_id", "age", "city", "recent", "score"]);
    const col = (name: string) => body.results[body.metadata.feature_names.indexOf(name)];
    expect(col("user_id").values).toEqual([1, 2, 3, 1]);
    expect(col("user_id").event_timestamps).toEqual([EPOCH, EPOCH, EPOCH, EPOCH]);
    expect(col("age").values).toEqual([31, 45, null, 31]);
    expect(col("city").values).toEqual(["lyon", "nice", null, "lyon"]);
    expect(col("recent").values).toEqual([[3, 4, 5], [], null, [3, 4, 5]]);
    expect(col("score").values).toEqual([0.75, 0.25, null, 0.75]);
    expect(col("age").statuses).toEqual(["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND", "PRESENT"]);
    expect(col("age").event_timestamps).toEqual([isoS(NOW - HOUR), isoS(NOW - 10 * DAY), EPOCH, isoS(NOW - HOUR)]);
  });

  it("full_feature_names names columns view__feature", async () => {
    const r = await client.getOnlineFeatures({
      features: ["user_features:age"],
      entities: { user_id: [1] },
      fullFeatureNames: true,
    });
    expect(r.metadata.feature_names).toEqual(["user_id", "user_features__age"]);
    expect(responseToObject(r)).toEqual({ user_id: [1], user_features__age: [31] });
  });

  it("POST /materialize-incremental loads the push view from its batch source", async () => {
    const r = await post(`${server.url}/materialize-incremental`, { end_ts: isoS(NOW) });
    expect(r.status, r.text).toBe(200);
    const views = (r.json.views as Array<{ view: string }>).map((v) => v.view).sort();
    expect(views).toEqual(["item_stats", "user_features"]);
    const o = await client.getOnlineFeaturesAsObject({
      features: ["item_stats:price", "item_stats:views"],
      entities: { item_id: ["i1", "nope"] },
    });
    expect(o).toEqual({ item_id: ["i1", "nope"], price: [9.5, null], views: [100, null] });
  });

  it("a feature_service request reads the service's features", async () => {
    const r = await post(`${server.url}/get-online-features`, {
      feature_service: "ranking",
      entities: { user_id: [1], item_id: ["i1"] },
    });
    expect(r.status, r.text).toBe(200);
    const o = responseToObject(r.json as unknown as OnlineFeaturesResponse);
    expect(o).toEqual({ user_id: [1], item_id: ["i1"], age: [31], score: [0.75], price: [9.5] });
  });

  it("POST /push writes fresh values online; an older push does not replace them", async () => {
    const w = await client.push({
      pushSourceName: "item_push",
      df: {
        item_id: ["i1", "i2"],
        price: [12.5, 3],
        views: [101, 7],
        event_timestamp: [isoS(NOW - 60_000), isoS(NOW - 60_000)],
      },
    });
    expect(w).toMatchObject({ status: "ok", rows: 2 });
    const stale = await client.push({
      pushSourceName: "item_push",
      df: { item_id: ["i1"], price: [1], views: [1], event_timestamp: [isoS(NOW - DAY)] },
    });
    expect(stale.rows).toBe(1);
    const o = await client.getOnlineFeaturesAsObject({
      features: ["item_stats:price", "item_stats:views"],
      entities: { item_id: ["i1", "i2"] },
    });
    expect(o.price).toEqual([12.5, 3]);
    expect(o.views).toEqual([101, 7]);
  });

  it("POST /write-to-online-store writes a view's rows", async () => {
    const r = await post(`${server.url}/write-to-online-store`, {
      feature_view_name: "user_features",
      df: {
        user_id: [3],
        age: [22],
        score: [0.1],
        city: ["metz"],
        recent: [[9]],
        event_timestamp: [isoS(NOW - 60_000)],
        created: [null],
      },
    });
    expect(r.status, r.text).toBe(200);
    const o = await client.getOnlineFeaturesAsObject({
      features: ["user_features:age", "user_features:city", "user_features:recent"],
      entities: { user_id: [3] },
    });
    expect(o).toEqual({ user_id: [3], age: [22], city: ["metz"], recent: [[9]] });
  });

  it("GET /metrics exposes request counts, latency histograms and online read latency", async () => {
    const r = await get(`${server.url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.text).toContain("# TYPE fstore_http_requests_total counter");
    expect(r.text).toMatch(
      /fstore_http_requests_total\{endpoint="\/get-online-features",method="POST",status="200"\} [1-9]\d*/,
    );
    expect(r.text).toMatch(
      /fstore_http_request_duration_seconds_bucket\{endpoint="\/push",status="200",le="\+Inf"\} 2/,
    );
    expect(r.text).toMatch(/fstore_online_read_duration_seconds_count [1-9]\d*/);
    expect(r.text).toContain("fstore_http_requests_in_flight 1");
  });

  it("logs one JSON line per request with method, path, status and duration", () => {
    const requests = logLines.filter((l) => l.msg === "request");
    const pushes = requests.filter((l) => l.path === "/push");
    expect(pushes.length).toBe(2);
    for (const l of requests) {
      expect(l.level).toBe("info");
      expect(typeof l.time).toBe("string");
      expect(typeof l.duration_ms).toBe("number");
      expect(l.method).toMatch(/^(GET|POST)$/);
      expect(typeof l.status).toBe("number");
    }
  });

  it("the client throws FeatureServerError with the status and the server's message", async () => {
    const e = await client
      .getOnlineFeatures({ features: ["user_features:nope"], entities: { user_id: [1] } })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FeatureServerError);
    expect((e as FeatureServerError).status).toBe(404);
    expect((e as Error).message).toContain('no feature "nope"');
  });
});
