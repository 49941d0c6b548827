// Batch recommendations: the blocked exact top-k against a sort, batch lists against the same pipeline run per
// user (exact retrieval written here, seen items excluded before the cut), SQLite, Redis and parquet for real,
// GET /recommendations/{id}, and a run killed mid-way that leaves whole lists and is completed by a rerun.
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "../adapters/serving/index.js";
import { recommendBatch } from "../adapters/serving/batch_recommend.js";
import type { CandidateSource } from "../adapters/serving/context.js";
import { blockedTopK, type ItemMatrix } from "../adapters/serving/exact_retrieval.js";
import { exactCandidates } from "../adapters/serving/model_stages.js";
import { recommenderFor } from "../adapters/serving/recommender.js";
import { openDuckDB, sqlString } from "../common/duckdb.js";
import { ValidationError } from "../common/errors.js";
import { startFeatureServer } from "../server/server.js";
import { FeatureStore } from "../stores/feature_store.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { type BatchRepo, seenOf, userRaw, writeBatchRepo } from "./batch_fixture.js";
import { DAY, T0, tempDir } from "./repo_fixture.js";

const USERS = 1500;
const ITEMS = 300;
const PREFIX = `fstore_test_batch_${process.pid}:`;

/** Every item scored for each active row (doubles, dimension order), seen items dropped, sorted, cut. */
function naiveExact(items: ItemMatrix, seen: (user: unknown) => Set<number>): CandidateSource {
  return (req, _stage, topK, ctx) => {
    const itemKey = ctx.typed.itemKey as string;
    const key = ctx.typed.entityKey;
    const ids: unknown[] = [];
    const scores: number[] = [];
    const offsets = new Int32Array(req.n + 1);
    for (let r = 0; r < req.n; r++) {
      if (req.active[r]) {
        const q = (req.embedding as Float32Array).subarray(r * req.dim, (r + 1) * req.dim);
        const s = Array.from({ length: items.ids.length }, (_, j) => {
          let d = 0;
          for (let k = 0; k < items.dim; k++) d += items.embeddings[j * items.dim + k] * q[k];
          return d;
        });
        const skip = seen(req.columns[key][r]);
        const order = s
          .map((_, j) => j)
          .filter((j) => !skip.has(Number(items.ids[j])))
          .sort((a, b) => s[b] - s[a] || a - b)
          .slice(0, topK);
        for (const j of order) {
          ids.push(items.ids[j]);
          scores.push(s[j]);
        }
      }
      offsets[r + 1] = ids.length;
    }
    return Promise.resolve({ offsets, columns: { [itemKey]: ids }, score: Float64Array.from(scores) });
  };
}

describe("blockedTopK", () => {
  it("equals a full sort per row, with ties to the lower item, exclusions and inactive rows", () => {
    const dim = 5;
    const m = 4103; // two tiles, then 7 items: one 4-item step and 3 left over
    let x = 7;
    const rand = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    // values on a coarse grid so that equal scores occur
    const embeddings = Float32Array.from({ length: m * dim }, () => Math.round(rand() * 4) / 4);
    const items = { ids: Array.from({ length: m }, (_, j) => j), embeddings, dim };
    const n = 6;
    const queries = Float32Array.from({ length: n * dim }, () => Math.round(rand() * 2) / 2);
    const active = Uint8Array.from([1, 1, 0, 1, 1, 1]);
    const excl = new Set([0, 1, 2, 3, 17, 4099, 4102]);
    for (const k of [1, 7, 100, m + 5]) {
      const top = blockedTopK(queries, n, items, k, active, (r) => (r === 1 ? excl : null));
      for (let r = 0; r < n; r++) {
        const s = Array.from({ length: m }, (_, j) => {
          let d = 0;
          for (let t = 0; t < dim; t++) d += embeddings[j * dim + t] * queries[r * dim + t];
          return d;
        });
        const want = active[r]
          ? s
              .map((_, j) => j)
              .filter((j) => r !== 1 || !excl.has(j))
              .sort((a, b) => s[b] - s[a] || a - b)
              .slice(0, k)
          : [];
        expect(Array.from(top.index.subarray(top.offsets[r], top.offsets[r + 1]))).toEqual(want);
        expect(Array.from(top.score.subarray(top.offsets[r], top.offsets[r + 1]))).toEqual(want.map((j) => s[j]));
      }
    }
  });
});

describe("batch recommendations", { timeout: 180_000 }, () => {
  let dir: string;
  let cleanup: () => void;
  let repo: BatchRepo;
  let store: FeatureStore;
  let redis: Redis;
  const unknown = userRaw(USERS - 1);
  const seen = (u: unknown) => new Set(Number(u) >= 100 ? seenOf(Number(u) - 100, ITEMS) : []);

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir("batch"));
    repo = await writeBatchRepo(dir, "batch_t", USERS, ITEMS);
    store = await FeatureStore.open(dir);
    await store.apply();
    await store.materialize(T0 - DAY, T0 + DAY);
    redis = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true });
    await redis.connect();
  }, 120_000);

  afterAll(async () => {
    const keys = (await redis?.keys(`${PREFIX}*`)) ?? [];
    if (keys.length) await redis.unlink(...keys);
    redis?.disconnect();
    await store?.close();
    cleanup();
  });

  async function perUser(pipeline: string, user: number, retrieve: CandidateSource) {
    const res = await recommenderFor(store).recommend({ pipeline, entityRows: [{ user_id_raw: user }] }, { retrieve });
    return res.results[0];
  }

  it("equals the per-user pipeline with exact retrieval, seen items excluded before the top k (SQLite)", async () => {
    const users = [...repo.known.filter((_, i) => i % 10 === 0), unknown];
    const report = await recommendBatch(store, {
      pipeline: "recommender",
      entities: users,
      to: "sqlite",
      blockSize: 7,
    });
    expect(report.users).toBe(users.length);
    expect(report.items).toBe(ITEMS);
    expect(report.fallbacks).toBe(1);
    expect(report.events.seen_dropped ?? 0).toBe(0); // retrieval already skipped them
    const exact = naiveExact(repo.items, seen);
    for (const u of users) {
      const got = await store.getPrecomputedRecommendations(u);
      const want = await perUser("recommender", u, exact);
      expect(got).toMatchObject({
        user_id_raw: u,
        items: want.items,
        fallback: want.fallback,
        pipeline: "recommender",
      });
      if (u === unknown) expect(got?.fallback).toBe("popularity");
      else {
        expect(want.items).toHaveLength(5);
        for (const it of want.items) expect(seen(u).has(it.item_id_raw as number)).toBe(false);
      }
    }
    expect(await store.getPrecomputedRecommendations(userRaw(1))).toBeNull(); // not in this run's users
  });

  it("without FilterSeen equals serving's exactCandidates; --entities all; parquet output", async () => {
    const out = `${dir}/out/plain.parquet`;
    const report = await recommendBatch(store, { pipeline: "plain", entities: "all", to: "parquet", output: out });
    expect(report.users).toBe(USERS - 1); // the users view holds every user but the unknown one
    const db = await openDuckDB();
    const rows = (
      await db.connection.runAndReadAll(`SELECT * FROM read_parquet(${sqlString(out)}) ORDER BY user_id_raw`)
    ).getRowObjectsJS();
    db.close();
    expect(rows).toHaveLength(USERS - 1);
    const exact = exactCandidates(repo.items);
    for (const row of rows.filter((_, i) => i % 50 === 0)) {
      const want = await perUser("plain", Number(row.user_id_raw), exact);
      expect((row.items as unknown[]).map(Number)).toEqual(want.items.map((i) => i.item_id_raw));
      expect(row.scores).toEqual(want.items.map((i) => i.score));
      expect(row.fallback).toBeNull();
    }
  });

  it("Redis: lists as JSON strings under the prefix, replaced by a rerun, read by the facade and the HTTP route", async () => {
    const users = [userRaw(3), userRaw(4), unknown];
    await redis.set(`${PREFIX}${userRaw(3)}`, "stale");
    const o = { pipeline: "recommender", entities: users, to: "redis" as const, keyPrefix: PREFIX };
    await recommendBatch(store, o);
    const raw = await redis.get(`${PREFIX}${userRaw(3)}`);
    const parsed = JSON.parse(raw as string) as { items: unknown[] };
    expect(parsed.items).toHaveLength(5);
    const want = await perUser("recommender", userRaw(3), naiveExact(repo.items, seen));
    expect(parsed).toMatchObject({ user_id_raw: userRaw(3), items: want.items, fallback: null });
    const first = await store.getPrecomputedRecommendations(userRaw(3), { from: "redis", keyPrefix: PREFIX });
    await recommendBatch(store, o);
    const again = await store.getPrecomputedRecommendations(userRaw(3), { from: "redis", keyPrefix: PREFIX });
    expect(again?.items).toEqual(first?.items);

    const server = await startFeatureServer({ store, port: 0, authToken: "", logLevel: "error" });
    try {
      // the server reads where the online store is (SQLite here): the first test's lists
      const ok = await fetch(`${server.url}/recommendations/${repo.known[0]}`);
      expect(ok.status).toBe(200);
      const body = (await ok.json()) as { items: Array<{ item_id_raw: number }> };
      expect(body).toEqual(await store.getPrecomputedRecommendations(repo.known[0]));
      expect(body.items).toHaveLength(5);
      const missing = await fetch(`${server.url}/recommendations/${userRaw(1)}`);
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: string }).error).toMatch(/USER:101/);
      const bad = await fetch(`${server.url}/recommendations/%E0%A4%A`);
      expect(bad.status).toBe(400);
      const prefixed = await fetch(`${server.url}/recommendations/${repo.known[0]}?key_prefix=NOPE:`);
      expect(prefixed.status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it("a run killed mid-way leaves every written list whole, and a rerun completes", async () => {
    const prefix = `${PREFIX}kill:`;
    const child = spawn(
      process.execPath,
      ["--import", "tsx", fileURLToPath(new URL("./batch_child.ts", import.meta.url)), dir, prefix, "3"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    let written = 0;
    for (let i = 0; i < 3000 && written < 60; i++) {
      await new Promise((r) => setTimeout(r, 20));
      written = (await redis.keys(`${prefix}*`)).length;
      if (child.exitCode !== null) break;
    }
    child.kill("SIGKILL");
    const code = await exited;
    expect(code, stderr).toBeNull(); // killed, not finished
    const keys = await redis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThanOrEqual(60);
    expect(keys.length).toBeLessThan(USERS - 1);
    for (const v of await redis.mget(...keys)) {
      const list = JSON.parse(v as string) as { items: unknown[] };
      expect(list.items).toHaveLength(5);
    }
    const report = await recommendBatch(store, {
      pipeline: "recommender",
      entities: "all",
      to: "redis",
      keyPrefix: prefix,
    });
    expect(report.users).toBe(USERS - 1);
    expect(await redis.keys(`${prefix}*`)).toHaveLength(USERS - 1);
  });

  // the compiled CLI (npm test builds dist/ first)
  it.skipIf(!existsSync(fileURLToPath(new URL("../dist/cli/commands.js", import.meta.url))))(
    "fs recommend batch writes the lists with a progress report and names bad input in one line",
    async () => {
      const fs = fileURLToPath(new URL("../bin/fs.js", import.meta.url));
      const run = promisify(execFile);
      const out = await run(
        process.execPath,
        [
          fs,
          "recommend",
          "batch",
          "--pipeline",
          "recommender",
          "--entities",
          "all",
          "--to",
          "sqlite",
          "--key-prefix",
          "CLI:",
        ],
        { cwd: dir, env: { ...process.env, NO_COLOR: "1" } },
      );
      expect(out.stdout).toMatch(new RegExp(`^${USERS - 1} users x ${ITEMS} items -> sqlite .* users/s`));
      expect(out.stderr).toMatch(new RegExp(`done ${USERS - 1}/${USERS - 1}`));
      const got = await store.getPrecomputedRecommendations(repo.known[5], { keyPrefix: "CLI:" });
      const want = await perUser("recommender", repo.known[5], naiveExact(repo.items, seen));
      expect(got?.items).toEqual(want.items);
      const bad = await run(
        process.execPath,
        [
          fs,
          "recommend",
          "batch",
          "--pipeline",
          "recommender",
          "--entities",
          "all",
          "--to",
          "sqlite",
          "--output",
          "x.parquet",
        ],
        { cwd: dir },
      ).catch((e: { code: number; stderr: string }) => e);
      expect(bad).toMatchObject({ code: 1 });
      expect((bad as { stderr: string }).stderr.trim()).toBe(
        "Error: --output names a parquet file: it goes with --to parquet",
      );
    },
  );

  it("bad input names what is wrong", async () => {
    const users = `${dir}/data/users_no_key.parquet`;
    await writeParquet(users, [{ uid: 1 }], { uid: "int64" });
    await expect(recommendBatch(store, { pipeline: "recommender", entities: users, to: "sqlite" })).rejects.toThrow(
      /users_no_key.parquet: no column "user_id_raw"/,
    );
    await expect(recommendBatch(store, { pipeline: "nope", entities: "all", to: "sqlite" })).rejects.toThrow(
      /pipeline "nope" is not in the registry/,
    );
    await expect(
      recommendBatch(store, { pipeline: "recommender", entities: "all", to: "sqlite", output: "x.parquet" }),
    ).rejects.toThrow(ValidationError);
    await expect(
      recommendBatch(store, { pipeline: "recommender", entities: "all", to: "sqlite", blockSize: 0 }),
    ).rejects.toThrow(/block size/);
    await expect(store.getPrecomputedRecommendations("")).rejects.toThrow(ValidationError);
  });
});
