// POST /recommend on a real `fs serve` process and `fs recommend` on the command line: the same answers as the
// library, the debug trace, bad requests, /metrics, a new apply picked up without a restart, and the feature
// log flushed on shutdown.
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { appendFileSync, existsSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FeatureStore, type RecommendResponse, type StageTrace } from "../index.js";
import { DAY, T0, tempDir } from "./repo_fixture.js";
import { get, post } from "./server_fixture.js";
import { POPULAR, userRaw, writeServingRepo, type ServingRepo } from "./serving_fixture.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const FS = join(ROOT, "bin/fs.js");

let dir: string;
let cleanup: () => void;
let repo: ServingRepo;
let store: FeatureStore;
let child: ChildProcess;
let exited: Promise<number | null>;
let url = "";

beforeAll(async () => {
  // `npm test` builds dist/ first; build here when this file runs alone on a checkout without the command
  if (!existsSync(join(ROOT, "dist/cli/commands/recommend.js"))) {
    try {
      execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: ROOT, stdio: "ignore" });
    } catch {
      // type errors elsewhere still emit JavaScript
    }
  }
  ({ dir, cleanup } = tempDir("serving-http"));
  repo = await writeServingRepo(dir, "serving_http");
  appendFileSync(join(dir, "feature_store.yaml"), "registry_ttl_sec: 1\n");
  store = await FeatureStore.open(dir);
  await store.apply();
  await store.materialize(T0 - DAY, T0 + DAY);
  child = spawn(process.execPath, [FS, "serve", "--repo", dir, "--port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fs serve did not start in 60 s; stderr: ${stderr}`)), 60_000);
    let buf = "";
    child.stdout?.on("data", (c: Buffer) => {
      buf += c.toString();
      const m = /"msg":"feature server listening"[^\n]*"url":"([^"]+)"/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => reject(new Error(`fs serve exited with ${code}; stderr: ${stderr}`)));
  });
}, 180_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await store?.close();
  repo?.twoTower.dispose();
  repo?.dlrm.dispose();
  cleanup?.();
});

describe("POST /recommend", () => {
  it("answers what the library answers; an unknown user gets the popularity list", async () => {
    const r = await post(`${url}/recommend`, {
      pipeline: "recommender",
      entities: { user_id_raw: [userRaw(0), userRaw(5)] },
      top_k: 3,
    });
    expect(r.status, r.text).toBe(200);
    const lib = await store.recommend({
      pipeline: "recommender",
      entities: { user_id_raw: [userRaw(0), userRaw(5)] },
      topK: 3,
    });
    expect(r.json).toEqual(JSON.parse(JSON.stringify(lib)));
    const results = (r.json as unknown as RecommendResponse).results;
    expect(results[0].items.length).toBe(3);
    expect(results[0].fallback).toBeNull();
    expect(results[1]).toMatchObject({ user_id_raw: userRaw(5), fallback: "popularity" });
    expect(results[1].items.map((i) => i.item_id_raw)).toEqual(POPULAR.slice(0, 3));
  });

  it("with debug, each result carries every stage's candidates, counts and timing", async () => {
    const r = await post(`${url}/recommend`, {
      pipeline: "sampled",
      entities: { user_id_raw: [userRaw(1)] },
      seed: 7,
      debug: true,
    });
    expect(r.status, r.text).toBe(200);
    const [res] = (r.json as unknown as RecommendResponse).results;
    const trace = res.debug as StageTrace[];
    expect(trace.map((t) => t.stage)).toEqual([
      "query_features",
      "query_tower",
      "retrieve",
      "item_features",
      "rank",
      "order",
    ]);
    expect(trace[2].count).toBe(30);
    expect(trace[5].count).toBe(8);
    expect(trace[5].ids).toEqual(res.items.map((i) => i.item_id_raw));
    for (const t of trace) expect(t.ms).toBeGreaterThanOrEqual(0);
    // the same seed gives the same list over HTTP as in process
    const lib = await store.recommend({ pipeline: "sampled", entities: { user_id_raw: [userRaw(1)] }, seed: 7 });
    expect(res.items).toEqual(lib.results[0].items);
  });

  it("bad requests get 4xx with an error naming what is wrong", async () => {
    const cases: Array<[unknown, number, RegExp]> = [
      [{ pipeline: "nope", entities: { user_id_raw: [1] } }, 404, /pipeline "nope" is not in the registry/],
      [{ pipeline: "recommender" }, 400, /entities/],
      [{ pipeline: "recommender", entities: { user_id_raw: [1] }, top_k: 0 }, 400, /top_k/],
      [{ pipeline: "recommender", entities: { user_id_raw: [1] }, topK: 3 }, 400, /topK/],
      [{ pipeline: "recommender", entities: { user_id: [1] } }, 400, /join key "user_id_raw" is missing/],
      [{ pipeline: "recommender", entities: { user_id_raw: [1] }, seed: "x" }, 400, /seed/],
      ["{not json", 400, /JSON/i],
    ];
    for (const [body, status, error] of cases) {
      const r = await post(`${url}/recommend`, body);
      expect(r.status, `${JSON.stringify(body)}: ${r.text}`).toBe(status);
      expect(r.json.error).toMatch(error);
    }
  });

  it("counts fallbacks and short lists in /metrics", async () => {
    const m = await get(`${url}/metrics`);
    expect(m.text).toMatch(/fstore_recommend_events_total\{pipeline="recommender",event="fallback_popularity"\} [1-9]/);
    expect(m.text).toMatch(/fstore_recommend_events_total\{pipeline="recommender",event="unknown_entity"\} [1-9]/);
  });

  it("a new fs apply is picked up without a restart", async () => {
    writeFileSync(
      join(dir, "extra.ts"),
      `import { Pipeline, QueryFeatures, QueryTower, Retrieve, Order } from "fstore";
import { user } from "./features";
export const short = new Pipeline({ name: "short", entity: user, stages: [
  new QueryFeatures({ features: "retrieval" }),
  new QueryTower({ model: "models/two_tower" }),
  new Retrieve({ vectors: "item_embeddings:embedding", topK: 10 }),
  new Order({ topK: 2 }),
]});
`,
    );
    const body = { pipeline: "short", entities: { user_id_raw: [userRaw(2)] } };
    expect((await post(`${url}/recommend`, body)).status).toBe(404);
    await store.apply();
    let r = await post(`${url}/recommend`, body);
    for (let i = 0; i < 50 && r.status !== 200; i++) {
      await new Promise((res) => setTimeout(res, 200));
      r = await post(`${url}/recommend`, body);
    }
    expect(r.status, r.text).toBe(200);
    expect((r.json as unknown as RecommendResponse).results[0].items.length).toBe(2);
  });
});

describe("fs recommend", () => {
  const run = promisify(execFile);
  it("prints the library's answer; --debug adds the trace", async () => {
    const { stdout } = await run(
      process.execPath,
      [FS, "recommend", "--repo", dir, "--pipeline", "sampled", "-e", `user_id_raw=${userRaw(3)}`, "--seed", "5"],
      { timeout: 60_000 },
    );
    const lib = await store.recommend({ pipeline: "sampled", entities: { user_id_raw: [userRaw(3)] }, seed: 5 });
    expect(JSON.parse(stdout)).toEqual(JSON.parse(JSON.stringify(lib)));
    const dbg = await run(
      process.execPath,
      [
        FS,
        "recommend",
        "--repo",
        dir,
        "--pipeline",
        "recommender",
        "-e",
        `user_id_raw=${userRaw(3)}`,
        "--debug",
        "-k",
        "2",
      ],
      { timeout: 60_000 },
    );
    const res = (JSON.parse(dbg.stdout) as RecommendResponse).results[0];
    expect(res.items.length).toBe(2);
    expect((res.debug as StageTrace[]).length).toBe(8);
  }, 120_000);

  it("names the join key a bad -e gets wrong", async () => {
    const err = await run(
      process.execPath,
      [FS, "recommend", "--repo", dir, "--pipeline", "recommender", "-e", "user_id=1"],
      {
        timeout: 60_000,
      },
    ).catch((e: { stderr: string; code: number }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toMatch(/keyed by "user_id_raw", not "user_id"/);
  }, 60_000);
});

describe("shutdown", () => {
  it("flushes the feature log of answers served just before SIGTERM", async () => {
    const served = join(dir, "data/served");
    const before = existsSync(served) ? readdirSync(served).length : 0;
    const r = await post(`${url}/recommend`, { pipeline: "sampled", entities: { user_id_raw: [userRaw(4)] } });
    expect(r.status).toBe(200);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(readdirSync(served).filter((f) => f.endsWith(".parquet")).length).toBeGreaterThan(before);
  }, 60_000);
});
