// POST /search and /retrieve-online-documents (Feast's bodies and answer), their bad inputs, and fs search.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FeatureStore } from "../index.js";
import { type FeatureServer, startFeatureServer } from "../server/server.js";
import { DAY, T0, tempDir } from "./repo_fixture.js";
import { post } from "./server_fixture.js";
import { bruteForce, randomVectors, writeVectorRepo } from "./vectors_fixture.js";

const FS = fileURLToPath(new URL("../bin/fs.js", import.meta.url));

describe("POST /search", () => {
  const { dir, cleanup } = tempDir("vecserve");
  const vectors = randomVectors(120, 8, 21);
  const truth = new Map(vectors.map((v, i) => [i, v]));
  let server: FeatureServer;
  let url: string;

  beforeAll(async () => {
    await writeVectorRepo(dir, vectors);
    const store = await FeatureStore.open(dir);
    await store.apply();
    await store.materialize(T0 - 2 * DAY, T0);
    await store.close();
    server = await startFeatureServer({ repoPath: dir, port: 0, logLevel: "silent" });
    url = server.url;
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    cleanup();
  });

  const body = (extra: object = {}) => ({
    features: ["item_embeddings:cos", "item_features:category"],
    query: vectors[7],
    top_k: 5,
    distance_metric: "cosine",
    api_version: 2,
    ...extra,
  });

  for (const path of ["/search", "/retrieve-online-documents"]) {
    it(`${path} answers Feast's online-features JSON with distance, nearest first`, async () => {
      const res = await post(`${url}${path}`, body({ exclude: [7], filter: "category >= 0" }));
      expect(res.status).toBe(200);
      const json = res.json as { metadata: { feature_names: string[] }; results: Array<{ values: unknown[] }> };
      expect(json.metadata.feature_names).toEqual(["item_id", "distance", "cos", "category"]);
      const want = bruteForce(new Map([...truth].filter(([id]) => id !== 7)), vectors[7], "cos", 5);
      expect(json.results[0].values).toEqual(want.map((w) => w.id));
      (json.results[1].values as number[]).forEach((d, i) => expect(d).toBeCloseTo(want[i].d, 4));
    });
  }

  it("answers bad input with a 4xx naming what is wrong, and keeps serving", async () => {
    const cases: Array<[object, number, RegExp]> = [
      [body({ query: [1, 2] }), 400, /query \(for item_embeddings:cos\): has 2 numbers, expected 8/],
      [body({ top_k: 0 }), 400, /top_k: expected an integer from 1 to 1000, got 0/],
      [body({ top_k: 5000 }), 400, /top_k: expected an integer from 1 to 1000, got 5000/],
      [body({ query: ["a"] }), 400, /query/],
      [body({ features: ["nope:cos"] }), 404, /feature view "nope"/],
      [body({ features: ["item_embeddings:nope"] }), 404, /nope/],
      [body({ features: ["item_features:category"] }), 400, /none of item_features:category has a vector index/],
      [body({ distance_metric: "l2" }), 400, /built for cosine/],
      [body({ filter: "price > 1" }), 400, /no column "price"/],
    ];
    for (const [b, status, re] of cases) {
      const res = await post(`${url}/search`, b);
      expect(res.status, JSON.stringify(b)).toBe(status);
      expect(res.json.error, JSON.stringify(b)).toMatch(re);
    }
    // 1e999 is not a finite number: the body reader refuses it before the search sees it
    const inf = await post(
      `${url}/search`,
      `{"features": ["item_embeddings:cos"], "query": [1e999, 0, 0, 0, 0, 0, 0, 0], "top_k": 3}`,
    );
    expect(inf.status).toBe(400);
    expect(inf.json.error).toMatch(/query\[0\]: expected number/);
    expect((await post(`${url}/search`, body())).status).toBe(200);
  });
});

describe("fs search", () => {
  it.skipIf(!existsSync(FS.replace(/bin\/fs\.js$/, "dist/cli/commands/search.js")))(
    "prints the nearest entities as Feast's JSON",
    async () => {
      const { dir, cleanup } = tempDir("veccli");
      try {
        const vectors = randomVectors(40, 8, 5);
        await writeVectorRepo(dir, vectors);
        const store = await FeatureStore.open(dir);
        await store.apply();
        await store.materialize(T0 - 2 * DAY, T0);
        await store.close();
        const { stdout } = await promisify(execFile)(process.execPath, [
          FS,
          "search",
          "--repo",
          dir,
          "--features",
          "item_embeddings:l2,item_features:title",
          "--query",
          JSON.stringify(vectors[3]),
          "--top-k",
          "3",
          "--exclude",
          "[3]",
        ]);
        const json = JSON.parse(stdout) as {
          metadata: { feature_names: string[] };
          results: Array<{ values: unknown[] }>;
        };
        const want = bruteForce(
          new Map(vectors.map((v, i) => [i, v] as const).filter(([i]) => i !== 3)),
          vectors[3],
          "l2",
          3,
        );
        expect(json.metadata.feature_names).toEqual(["item_id", "distance", "l2", "title"]);
        expect(json.results[0].values).toEqual(want.map((w) => w.id));
        expect(json.results[3].values).toEqual(want.map((w) => `item ${w.id}`));
      } finally {
        cleanup();
      }
    },
    120_000,
  );
});
