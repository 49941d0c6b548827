// What a hostile or careless client sends: requests over the row limits, huge values that must not be
// echoed back whole, JSON nested deeper than any stack, bodies that are not JSON, and clients that leave.
import { connect } from "node:net";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FeatureServer, startFeatureServer } from "../server/server.js";
import { FeatureStore } from "../stores/feature_store.js";
import { DAY, NOW, type TestRepo, createTestRepo, get, post } from "./server_fixture.js";

let repo: TestRepo;
let server: FeatureServer;
const logLines: string[] = [];

beforeAll(async () => {
  repo = await createTestRepo("sqlite");
  const store = await FeatureStore.open(repo.dir);
  await store.materialize(NOW - 30 * DAY, NOW);
  await store.close();
  const logStream = new PassThrough();
  let buf = "";
  logStream.on("data", (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      logLines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  server = await startFeatureServer({ repoPath: repo.dir, port: 0, logStream, logLevel: "debug" });
});
afterAll(async () => {
  await server?.close();
  await repo?.cleanup();
});

const gof = (body: unknown, url = server.url) => post(`${url}/get-online-features`, body);
const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const nested = (depth: number, leaf: string) => "[".repeat(depth) + leaf + "]".repeat(depth);

describe("request limits", () => {
  let small: FeatureServer;
  beforeAll(async () => {
    small = await startFeatureServer({
      repoPath: repo.dir,
      port: 0,
      logLevel: "silent",
      maxEntityRows: 1000,
      maxFeatureValues: 1500,
    });
  });
  afterAll(async () => {
    await small?.close();
  });

  it("answers 413 naming the limit past the entity rows or the feature values of a request", async () => {
    expect((await gof({ features: ["user_features:age"], entities: { user_id: ids(1000) } }, small.url)).status).toBe(
      200,
    );
    const rows = await gof({ features: ["user_features:age"], entities: { user_id: ids(1001) } }, small.url);
    expect(rows.status).toBe(413);
    expect(rows.json.error).toMatch(/1001 entity rows is over the limit of 1000 per request \(maxEntityRows/);
    const values = await gof(
      { features: ["user_features:age", "user_features:score"], entities: { user_id: ids(1000) } },
      small.url,
    );
    expect(values.status).toBe(413);
    expect(values.json.error).toMatch(/1000 entity rows x 2 features = 2000 feature values is over the limit of 1500/);
    // a feature service counts its features: ranking asks 3
    const service = await gof(
      { feature_service: "ranking", entities: { user_id: ids(600), item_id: ids(600).map(String) } },
      small.url,
    );
    expect(service.status).toBe(413);
    expect(service.json.error).toMatch(/600 entity rows x 3 features = 1800 feature values/);
  });

  it("bounds the rows of a push or a write the same way", async () => {
    const df = (n: number) => ({
      item_id: ids(n).map(String),
      price: ids(n).map(() => 1.5),
      views: ids(n),
      event_timestamp: ids(n).map(() => new Date(NOW).toISOString()),
    });
    const ok = await post(`${small.url}/push`, { push_source_name: "item_push", df: df(1000) });
    expect(ok.status, ok.text).toBe(200);
    const push = await post(`${small.url}/push`, { push_source_name: "item_push", df: df(1001) });
    expect(push.status).toBe(413);
    expect(push.json.error).toMatch(
      /df: 1001 rows is over the limit of 1000 per request \(maxEntityRows.*split the push/,
    );
    const write = await post(`${small.url}/write-to-online-store`, { feature_view_name: "item_stats", df: df(1001) });
    expect(write.status).toBe(413);
    expect(write.json.error).toMatch(/split the write/);
  });

  it("refuses a million entity ids quickly, and /health answers meanwhile", async () => {
    const big = gof({ features: ["user_features:age"], entities: { user_id: ids(1_000_000) } });
    await new Promise((r) => setTimeout(r, 20));
    const t = performance.now();
    const health = await get(`${server.url}/health`);
    const healthMs = performance.now() - t;
    const r = await big;
    expect(r.status).toBe(413);
    expect(r.json.error).toMatch(/1000000 entity rows is over the limit of 10000/);
    expect(health.status).toBe(200);
    expect(healthMs).toBeLessThan(2500);
  });

  it("refuses limits that are not whole numbers >= 1", async () => {
    await expect(startFeatureServer({ repoPath: repo.dir, port: 0, maxEntityRows: 0 })).rejects.toThrow(
      /maxEntityRows must be a whole number >= 1/,
    );
  });
});

describe("echoes of request text are bounded", () => {
  it("quotes at most a short prefix of a huge value in the error and the log line", async () => {
    const before = logLines.length;
    const cases = [
      { features: ["user_features:" + "a".repeat(15_000_000)], entities: { user_id: [1] } },
      { features: ["x".repeat(10_000_000)], entities: { user_id: [1] } },
      { features: ["user_features:age"], entities: { user_id: ["1".repeat(5_000_000)] } },
      { feature_service: "s".repeat(5_000_000), entities: { user_id: [1] } },
      { features: ["user_features:age"], entities: { ["k".repeat(5_000_000)]: [1, 2], user_id: [1] } },
    ];
    for (const body of cases) {
      const r = await gof(body);
      expect([400, 404]).toContain(r.status);
      expect(r.text.length).toBeLessThan(1500);
    }
    const text = await post(`${server.url}/push`, JSON.stringify("y".repeat(1_000_000)));
    expect(text.status).toBe(400);
    expect(text.json.error).toMatch(/expected a JSON object, got "y{80}"… \(1000000 chars\)/);
    const path = await get(`${server.url}/${"p".repeat(10_000)}`);
    expect(path.status).toBe(404);
    expect(path.text.length).toBeLessThan(1500);
    await new Promise((r) => setImmediate(r));
    const lines = logLines.slice(before);
    expect(lines.length).toBeGreaterThanOrEqual(cases.length + 2);
    for (const l of lines) expect(l.length).toBeLessThan(2500);
  });
});

describe("JSON nested at any depth", () => {
  it.each([5_000, 100_000])("answers 400 for values nested %i deep", async (depth) => {
    const bodies = [
      `{"features":["user_features:age"],"entities":{"user_id":${nested(depth, "1")}}}`,
      `{"features":${nested(depth, '"user_features:age"')},"entities":{"user_id":[1]}}`,
      `{"features":["user_features:age"],"entities":${nested(depth, "1")}}`,
      nested(depth, "1"),
    ];
    for (const body of bodies) {
      const r = await gof(body);
      expect(r.status, r.text.slice(0, 300)).toBe(400);
      expect(r.text.length).toBeLessThan(1500);
    }
    const push = await post(
      `${server.url}/push`,
      `{"push_source_name":"item_push","df":{"item_id":${nested(depth, '"i1"')},"price":[1],"views":[1],"event_timestamp":["2024-01-01T00:00:00Z"]}}`,
    );
    expect(push.status, push.text.slice(0, 300)).toBe(400);
    // the server still answers
    expect((await gof({ features: ["user_features:age"], entities: { user_id: [1] } })).status).toBe(200);
  });
});

describe("client aborts", () => {
  it("counts a client that leaves mid-body under 499, logged at info without a stack", async () => {
    const before = logLines.length;
    const { port } = new URL(server.url);
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = connect(Number(port), "127.0.0.1", () => {
          s.write(
            "POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" +
              '{"features": ["user_features:age"], "entities": {"user_id": [1,',
          );
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 50);
        });
        s.on("error", reject);
      });
    }
    await new Promise((r) => setTimeout(r, 100));
    const metrics = (await get(`${server.url}/metrics`)).text;
    expect(metrics).toMatch(
      /fstore_http_requests_total\{endpoint="\/get-online-features",method="POST",status="499"\} 3/,
    );
    expect(metrics).not.toMatch(/status="500"/);
    const lines = logLines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    const aborted = lines.filter((l) => l.status === 499);
    expect(aborted).toHaveLength(3);
    for (const l of aborted) {
      expect(["debug", "info"]).toContain(l.level);
      expect(l.stack).toBeUndefined();
      expect(l.error).toMatch(/client closed the connection/);
    }
    expect(lines.filter((l) => l.level === "error")).toEqual([]);
  });
});

describe("pipelined requests", () => {
  it("answers every request sent on one connection before the previous answer (none counted as aborted)", async () => {
    const { port } = new URL(server.url);
    const body = JSON.stringify({ features: ["user_features:age"], entities: { user_id: [1] } });
    const one = `POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const text = await new Promise<string>((resolve, reject) => {
      let got = "";
      const s = connect(Number(port), "127.0.0.1", () => s.write(one + one + one));
      s.on("data", (d: Buffer) => {
        got += d.toString();
        if ((got.match(/HTTP\/1\.1 /g) ?? []).length === 3 && got.endsWith("}")) {
          s.destroy();
          resolve(got);
        }
      });
      s.on("error", reject);
      setTimeout(() => {
        s.destroy();
        resolve(got);
      }, 3000);
    });
    expect(text.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
  });
});

describe("content types", () => {
  const body = JSON.stringify({ features: ["user_features:age"], entities: { user_id: [1] } });
  const send = (headers: Record<string, string>) =>
    fetch(`${server.url}/get-online-features`, { method: "POST", headers, body }).then(async (r) => ({
      status: r.status,
      json: (await r.json()) as { error?: string },
    }));

  it.each([
    ["text/plain", {}],
    ["application/xml", {}],
    ["application/x-www-form-urlencoded", {}],
    ["multipart/form-data; boundary=x", {}],
    ["application/json; charset=latin1", {}],
    ["application/jsonx", {}],
  ])("refuses content-type %s with 415", async (type) => {
    const r = await send({ "content-type": type });
    expect(r.status).toBe(415);
    expect(r.json.error).toMatch(/content-type: expected application\/json \(charset utf-8\), got/);
  });

  it("refuses a body without a content-type, or with a content encoding it does not decode", async () => {
    const none = await post(`${server.url}/push`, Buffer.from(body), { "content-type": "" });
    expect(none.status).toBe(415);
    for (const encoding of ["gzip", "br", "deflate, gzip"]) {
      const r = await send({ "content-type": "application/json", "content-encoding": encoding });
      expect(r.status).toBe(415);
      expect(r.json.error).toMatch(/content-encoding: ".*" is not supported: send the body uncompressed/);
    }
  });

  it("takes application/json with a utf-8 charset, in any case, and identity encoding", async () => {
    for (const type of ["application/json", "application/json; charset=utf-8", "Application/JSON;Charset=UTF-8"])
      expect((await send({ "content-type": type })).status).toBe(200);
    expect((await send({ "content-type": "application/json", "content-encoding": "identity" })).status).toBe(200);
    // GET routes take no body and check nothing
    expect((await get(`${server.url}/health`, { "content-type": "text/plain" })).status).toBe(200);
  });
});
