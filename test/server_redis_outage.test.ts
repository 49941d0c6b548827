// A Redis that stops answering (a loopback proxy that holds every byte) or refuses connections: reads and
// /health answer 503 within the configured read timeout, and the server recovers by itself.
import { readFileSync, writeFileSync } from "node:fs";
import { type Server, type Socket, connect, createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_REDIS_READ_TIMEOUT_MS, parseRepoConfig } from "../registry/config.js";
import { type FeatureServer, startFeatureServer } from "../server/server.js";
import { FeatureStore } from "../stores/feature_store.js";
import { DAY, NOW, type TestRepo, createTestRepo, get, post } from "./server_fixture.js";

const READ_TIMEOUT_MS = 300;

/**
 * A TCP proxy to Redis with three modes: "forward"; "hold" (connections stay open, and every byte in either
 * direction is kept until forwarding resumes, as in a network partition); "refuse" (not listening).
 */
class SwitchProxy {
  private server?: Server;
  private mode: "forward" | "hold" = "forward";
  private readonly pairs = new Set<{ client: Socket; upstream: Socket; held: Array<[Socket, Buffer]> }>();
  port = 0;

  async listen(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(6379, "127.0.0.1");
      const pair = { client, upstream, held: [] as Array<[Socket, Buffer]> };
      this.pairs.add(pair);
      const pass = (to: Socket) => (d: Buffer) => {
        if (this.mode === "hold") pair.held.push([to, d]);
        else to.write(d);
      };
      client.on("data", pass(upstream));
      upstream.on("data", pass(client));
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on("close", end).on("error", end);
      upstream.on("close", end).on("error", end);
    });
    await new Promise<void>((r) => server.listen(this.port, "127.0.0.1", r));
    const a = server.address();
    this.port = typeof a === "object" && a ? a.port : 0;
    this.server = server;
  }

  hold(): void {
    this.mode = "hold";
  }

  forward(): void {
    this.mode = "forward";
    for (const p of this.pairs) for (const [to, d] of p.held.splice(0)) to.write(d);
  }

  /** Stop listening and drop every connection: connects are refused until listen() again. */
  async refuse(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

const isoS = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** Waits until `probe` gives 200, up to `ms`; returns the last status. */
async function until200(probe: () => Promise<{ status: number }>, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let status = 0;
  while (Date.now() < end) {
    status = (await probe()).status;
    if (status === 200) return status;
    await new Promise((r) => setTimeout(r, 100));
  }
  return status;
}

describe("Redis that stops answering", () => {
  let repo: TestRepo;
  let server: FeatureServer;
  const proxy = new SwitchProxy();

  beforeAll(async () => {
    repo = await createTestRepo("redis");
    await proxy.listen();
    const yamlPath = join(repo.dir, "feature_store.yaml");
    const yaml = readFileSync(yamlPath, "utf8").replace(
      '"127.0.0.1:6379,db=0"',
      `"127.0.0.1:${proxy.port},db=0"\n  read_timeout_ms: ${READ_TIMEOUT_MS}`,
    );
    writeFileSync(yamlPath, yaml);
    const store = await FeatureStore.open(repo.dir);
    await store.materialize(NOW - 30 * DAY, NOW);
    await store.close();
    server = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent" });
  });
  afterAll(async () => {
    proxy.forward();
    await server?.close();
    await proxy.refuse();
    await repo?.cleanup();
  });

  const read = () =>
    post(`${server.url}/get-online-features`, { features: ["user_features:age"], entities: { user_id: [1] } });
  const health = () => get(`${server.url}/health`);
  const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
    const t = performance.now();
    const r = await f();
    return [r, performance.now() - t];
  };

  it("answers reads and /health 503 within the read timeout while Redis holds every byte, then recovers", async () => {
    expect((await read()).status).toBe(200);
    expect((await health()).status).toBe(200);

    proxy.hold();
    const [reads, readMs] = await timed(() => Promise.all([read(), read(), read()]));
    for (const r of reads) {
      expect(r.status, r.text).toBe(503);
      expect(r.json.error).toMatch(/did not answer within 300 ms/);
    }
    expect(readMs).toBeLessThan(READ_TIMEOUT_MS + 1500);
    const [h, healthMs] = await timed(health);
    expect(h.status, h.text).toBe(503);
    expect(healthMs).toBeLessThan(READ_TIMEOUT_MS + 1500);
    // a later read starts a new connection, which is held too
    expect((await read()).status).toBe(503);

    proxy.forward();
    expect(await until200(read, 5000)).toBe(200);
    expect(await until200(health, 5000)).toBe(200);
    const r = await read();
    expect((r.json.results as Array<{ values: unknown[] }>)[1].values).toEqual([31]);

    const metrics = await get(`${server.url}/metrics`);
    expect(metrics.text).toMatch(
      /fstore_http_requests_total\{endpoint="\/get-online-features",method="POST",status="503"\} [4-9]/,
    );
    expect(metrics.text).not.toMatch(/status="500"/);
  });

  it("answers 503 (not 500) while Redis refuses connections, then recovers", async () => {
    await proxy.refuse();
    const [r, ms] = await timed(read);
    expect(r.status, r.text).toBe(503);
    expect(r.json.error).toMatch(/redis/);
    expect(ms).toBeLessThan(READ_TIMEOUT_MS + 1500);
    expect((await health()).status).toBe(503);
    // a push goes over the write connection
    const push = await post(`${server.url}/push`, {
      push_source_name: "item_push",
      df: { item_id: ["i9"], price: [1.5], views: [1], event_timestamp: [isoS(NOW)] },
    });
    expect(push.status, push.text).toBe(503);

    await proxy.listen();
    expect(await until200(read, 5000)).toBe(200);
    expect(await until200(health, 5000)).toBe(200);
  });
});

describe("online_store.read_timeout_ms", () => {
  const parse = (v: unknown) =>
    parseRepoConfig({ project: "p", online_store: { type: "redis", read_timeout_ms: v } }, "/repo", "fs.yaml");
  it("defaults to a few hundred ms and refuses anything but a whole number of ms >= 1", () => {
    expect(parse(undefined).onlineStore).toMatchObject({ readTimeoutMs: DEFAULT_REDIS_READ_TIMEOUT_MS });
    expect(parse(250).onlineStore).toMatchObject({ readTimeoutMs: 250 });
    for (const bad of [0, -5, 1.5, "300", "x"])
      expect(() => parse(bad)).toThrow(
        /fs\.yaml: online_store\.read_timeout_ms must be a whole number of milliseconds >= 1/,
      );
  });
});

describe("/health's own bound", () => {
  it("answers 503 within 2 s when a store's health check never settles, and the server starts anyway", async () => {
    const repo = await createTestRepo("sqlite");
    const store = await FeatureStore.open(repo.dir);
    let hang = true;
    const health = store.health.bind(store);
    store.health = () => (hang ? new Promise<void>(() => undefined) : health());
    const server = await startFeatureServer({ store, port: 0, logLevel: "silent" });
    try {
      const t = performance.now();
      const h = await get(`${server.url}/health`);
      expect(h.status).toBe(503);
      expect(h.json.error).toMatch(/did not answer within 2000 ms/);
      expect(performance.now() - t).toBeLessThan(4000);
      hang = false;
      expect((await get(`${server.url}/health`)).status).toBe(200);
    } finally {
      await server.close();
      await store.close();
      await repo.cleanup();
    }
  });
});
