// Serving pipelines on a real repo (SQLite online store, DuckDB, parquet, saved model folders): each stage on
// hand-made data through the debug trace, the answers for unknown users and missing features, ordering seeds,
// feature logging, typing errors at apply, and a retrained model picked up without a restart.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveDlrm } from "../adapters/models/artifacts.js";
import { DlrmModel } from "../adapters/models/dlrm.js";
import type { Frame } from "../adapters/models/frame.js";
import { parseSchema, selectInputs } from "../adapters/models/schema.js";
import { openDuckDB, sqlString } from "../common/duckdb.js";
import {
  FeatureStore,
  NotFoundError,
  ValidationError,
  exactCandidates,
  recommenderFor,
  type CandidateSource,
  type RecommendResult,
  type Recommender,
  type StageTrace,
} from "../index.js";
import { DAY, T0, tempDir } from "./repo_fixture.js";
import {
  CATS,
  ITEMS,
  NO_FEATURES,
  POPULAR,
  SCHEMA,
  catOf,
  itemRaw,
  seenOf,
  userRaw,
  writeServingRepo,
  type ServingRepo,
} from "./serving_fixture.js";

let dir: string;
let cleanup: () => void;
let repo: ServingRepo;
let store: FeatureStore;
let rec: Recommender;
let exact: CandidateSource;

beforeAll(async () => {
  ({ dir, cleanup } = tempDir("serving"));
  repo = await writeServingRepo(dir, "serving_test");
  store = await FeatureStore.open(dir, { registryTtlSeconds: 0 });
  const plan = await store.apply();
  expect(plan.entries.filter((e) => e.kind === "pipeline").map((e) => e.name)).toEqual([
    "dropping",
    "recommender",
    "sampled",
  ]);
  await store.materialize(T0 - DAY, T0 + DAY);
  rec = recommenderFor(store);
  exact = exactCandidates(repo.items);
}, 120_000);

afterAll(async () => {
  await store?.close();
  repo?.twoTower.dispose();
  repo?.dlrm.dispose();
  cleanup?.();
});

const stageOf = (r: RecommendResult, name: string) =>
  (r.debug as StageTrace[]).find((t) => t.stage === name) as StageTrace;
const itemIndex = (raw: unknown) => Number(raw) - 1000;

/** The query tower alone: user u's exact top-k raw item ids by dot product, `skip` left out. */
function exactTop(u: number, k: number, skip: number[] = []): number[] {
  const q = repo.twoTower.encode("query", {
    length: 1,
    columns: { user_id: Int32Array.of(u), user_group: Int32Array.of(u % 3) },
  });
  const { embeddings, dim, ids } = repo.items;
  const s = ids.map((_, j) => {
    let d = 0;
    for (let k2 = 0; k2 < dim; k2++) d += q[k2] * embeddings[j * dim + k2];
    return d;
  });
  return ids
    .map((id, j) => ({ id, s: s[j] }))
    .filter((x) => !skip.includes(x.id))
    .sort((a, b) => b.s - a.s)
    .slice(0, k)
    .map((x) => x.id);
}

describe("a pipeline in the registry", () => {
  it("is registered by apply and unchanged by a second plan", async () => {
    expect(store.contents().pipelines.map((p) => p.name)).toEqual(["dropping", "recommender", "sampled"]);
    const spec = store.contents().pipelines.find((p) => p.name === "recommender");
    expect(spec?.stages.map((s) => s.name)).toEqual([
      "query_features",
      "query_tower",
      "retrieve",
      "filter_seen",
      "filter",
      "item_features",
      "rank",
      "order",
    ]);
    expect((await store.plan()).entries).toEqual([]);
  });

  it("apply refuses a stage reading a column no earlier stage writes, a model that does not load, unknown options", async () => {
    const bad = join(dir, "bad.ts");
    const pipeline = (stages: string) =>
      `import { Pipeline, QueryFeatures, QueryTower, Retrieve, ItemFeatures, Rank, Order } from "fstore";\nimport { user } from "./features";\nexport const bad = new Pipeline({ name: "bad", entity: user, stages: [${stages}] });\n`;
    const head = `new QueryFeatures({ features: "retrieval" }), new QueryTower({ model: "models/two_tower" }), new Retrieve({ vectors: "item_embeddings:embedding" })`;
    try {
      writeFileSync(bad, pipeline(`${head}, new Rank({ model: "models/dlrm" })`));
      await expect(store.apply()).rejects.toThrow(
        /bad\.ts: pipeline "bad" stage "rank": the model's item input "item_id" reads candidate column "item_id", which no earlier stage writes/,
      );
      writeFileSync(bad, pipeline(`new QueryTower({ model: "models/two_tower" })`));
      await expect(store.apply()).rejects.toThrow(
        /stage "query_tower": the model's input "user_id" reads query column "user_id", which no earlier stage writes \(query columns: user_id_raw\)/,
      );
      writeFileSync(
        bad,
        pipeline(`${head}, new ItemFeatures({ features: "ranking_items" }), new Rank({ model: "models/none" })`),
      );
      await expect(store.apply()).rejects.toThrow(/stage "rank": model folder .*models\/none has no fstore-model.json/);
      writeFileSync(bad, pipeline(`${head}, new Order({ topK: 3, strategy: "softmax", temprature: 2 })`));
      await expect(store.apply()).rejects.toThrow(/Order: unknown option "temprature"/);
      writeFileSync(bad, pipeline(`new QueryFeatures({ features: ["item_features:item_cat"] })`));
      await expect(store.apply()).rejects.toThrow(
        /stage "query_features": feature view "item_features" is keyed by item_id_raw, but the request rows are keyed by "user_id_raw"/,
      );
    } finally {
      rmSync(bad, { force: true });
    }
    expect((await store.plan()).entries).toEqual([]);
  });

  it("apply refuses a model folder whose weights do not load", async () => {
    const { dir: d2, cleanup: c2 } = tempDir("serving-broken");
    try {
      await writeServingRepo(d2, "serving_broken");
      writeFileSync(join(d2, "models/dlrm/weights.bin"), Buffer.alloc(12));
      const s2 = await FeatureStore.open(d2);
      try {
        await expect(s2.apply()).rejects.toThrow(
          /pipelines\.ts: pipeline "\w+" stage "rank": model folder .*dlrm does not load/,
        );
      } finally {
        await s2.close();
      }
    } finally {
      c2();
    }
  }, 60_000);
});

describe("each stage, through the debug trace", () => {
  const users = [0, 1, 2, 3, 4];
  let results: RecommendResult[];
  beforeAll(async () => {
    ({ results } = await rec.recommend(
      { pipeline: "recommender", entities: { user_id_raw: users.map(userRaw) }, debug: true },
      { retrieve: exact },
    ));
  });

  it("Retrieve: each row's exact top 20 of the items it has not seen (FilterSeen's items leave the search)", () => {
    users.forEach((u, r) => expect(stageOf(results[r], "retrieve").ids).toEqual(exactTop(u, 20, seenOf(u))));
  });

  it("Retrieve through the vector view's index (store.recommend) equals exact retrieval on small data", async () => {
    const ann = await store.recommend({
      pipeline: "recommender",
      entities: { user_id_raw: users.map(userRaw) },
      debug: true,
    });
    users.forEach((u, r) => {
      const t = stageOf(ann.results[r], "retrieve");
      expect(t.ids).toEqual(exactTop(u, 20, seenOf(u)));
      (t.scores as number[]).forEach((s, i) =>
        expect(s).toBeCloseTo((stageOf(results[r], "retrieve").scores as number[])[i], 5),
      );
      expect(ann.results[r].items).toEqual(results[r].items);
    });
  });

  it("FilterSeen: per request row, each row's own seen items only", async () => {
    // a retrieval that does not honour the exclusions, so that the filter has seen items to drop
    const { results: unfiltered } = await rec.recommend(
      { pipeline: "recommender", entities: { user_id_raw: users.map(userRaw) }, debug: true },
      { retrieve: (req, stage, k, ctx) => exact(req, stage, k, ctx, null) },
    );
    let keptOthers = 0;
    let dropped = 0;
    users.forEach((u, r) => {
      expect(stageOf(results[r], "filter_seen").ids).toEqual(stageOf(results[r], "retrieve").ids);
      const before = stageOf(unfiltered[r], "retrieve").ids as number[];
      const after = stageOf(unfiltered[r], "filter_seen").ids as number[];
      dropped += before.length - after.length;
      expect(after).toEqual(before.filter((id) => !seenOf(u).includes(id)));
      // items other rows have seen stay in this row
      const others = new Set(users.filter((x) => x !== u).flatMap(seenOf));
      keptOthers += after.filter((id) => others.has(id) && !seenOf(u).includes(id)).length;
    });
    expect(keptOthers).toBeGreaterThan(0);
    expect(dropped).toBeGreaterThan(0);
  });

  it("Filter: the expression per candidate", () => {
    users.forEach((_, r) => {
      const before = stageOf(results[r], "filter_seen").ids as number[];
      const after = stageOf(results[r], "filter").ids as number[];
      // items without features have a null category: NULL != 3 is NULL, so they are filtered out too
      expect(after).toEqual(before.filter((id) => catOf(itemIndex(id)) !== 3 && !NO_FEATURES.includes(itemIndex(id))));
    });
  });

  it("Rank: every pair scored as the model scores it alone", () => {
    users.forEach((u, r) => {
      const ranked = stageOf(results[r], "rank");
      const ids = ranked.ids as number[];
      const frame: Frame = {
        length: ids.length,
        columns: {
          user_id: new Int32Array(ids.length).fill(u),
          user_group: new Int32Array(ids.length).fill(u % 3),
          item_id: Int32Array.from(ids, itemIndex),
          item_cat: Int32Array.from(ids, (id) => catOf(itemIndex(id))),
        },
      };
      const alone = repo.dlrm.score(frame);
      (ranked.scores as number[]).forEach((s, i) => expect(s).toBeCloseTo(alone[i], 5));
    });
  });

  it("Order: the top 5 by rank score", () => {
    users.forEach((_, r) => {
      const ranked = stageOf(results[r], "rank");
      const order = (ranked.ids as number[])
        .map((id, i) => ({ id, s: (ranked.scores as number[])[i] }))
        .sort((a, b) => b.s - a.s)
        .slice(0, 5);
      expect(results[r].items).toEqual(order.map((o) => ({ item_id_raw: o.id, score: o.s })));
      expect(results[r].fallback).toBeNull();
      expect(results[r].user_id_raw).toBe(userRaw(users[r]));
    });
  });
});

describe("missing data", () => {
  it("a user the store does not know gets the popularity list, marked and counted", async () => {
    const before = rec.totals.get("recommender\u0001fallback_popularity") ?? 0;
    const { results } = await rec.recommend(
      { pipeline: "recommender", entityRows: [{ user_id_raw: userRaw(5) }, { user_id_raw: userRaw(0) }] },
      { retrieve: exact },
    );
    expect(results[0].fallback).toBe("popularity");
    const total = POPULAR.reduce((a, _, i) => a + (ITEMS - i), 0);
    expect(results[0].items).toEqual(
      POPULAR.slice(0, 5).map((id, i) => ({ item_id_raw: id, score: (ITEMS - i) / total })),
    );
    expect(results[1].fallback).toBeNull();
    expect(rec.totals.get("recommender\u0001fallback_popularity")).toBe(before + 1);
  });

  it("candidates without item features are dropped (and counted); a catalogue smaller than topK answers what exists", async () => {
    const { results } = await rec.recommend(
      { pipeline: "dropping", entityRows: [{ user_id_raw: userRaw(1) }, { user_id_raw: userRaw(5) }], debug: true },
      { retrieve: exact },
    );
    const ids = results[0].items.map((i) => itemIndex(i.item_id_raw));
    expect(ids.length).toBe(ITEMS - NO_FEATURES.length);
    for (const m of NO_FEATURES) expect(ids).not.toContain(m);
    expect(stageOf(results[0], "item_features").events).toEqual({ missing_item_features_dropped: 2 });
    // fallback "none": the unknown user goes through the pipeline on the models' default features
    expect(results[1].fallback).toBeNull();
    expect(results[1].items.length).toBe(ITEMS - NO_FEATURES.length);
    expect(rec.totals.get("dropping\u0001short_list")).toBeGreaterThanOrEqual(2);
    expect(rec.totals.get("dropping\u0001unknown_entity")).toBeGreaterThanOrEqual(1);
  });

  it("with missing: defaults, such candidates are kept and scored on the model's defaults", async () => {
    const { results } = await rec.recommend(
      { pipeline: "sampled", entityRows: [{ user_id_raw: userRaw(2) }], debug: true, topK: 30, seed: 1 },
      { retrieve: exact },
    );
    const ranked = stageOf(results[0], "rank");
    const retrieved = stageOf(results[0], "retrieve").ids as number[];
    const missing = NO_FEATURES.map(itemRaw).filter((id) => retrieved.includes(id));
    expect(missing.length).toBeGreaterThan(0);
    expect(stageOf(results[0], "item_features").events).toEqual({ missing_item_features_defaults: missing.length });
    const i = (ranked.ids as number[]).indexOf(missing[0]);
    const alone = repo.dlrm.score({
      length: 1,
      columns: {
        user_id: Int32Array.of(2),
        user_group: Int32Array.of(2),
        item_id: Int32Array.of(0),
        item_cat: Int32Array.of(0),
      },
    });
    expect((ranked.scores as number[])[i]).toBeCloseTo(alone[0], 5);
  });
});

describe("ordering in a pipeline", () => {
  const ask = (seed?: number) =>
    rec.recommend({ pipeline: "sampled", entityRows: [{ user_id_raw: userRaw(3) }], seed }, { retrieve: exact });

  it("the same seed gives the same list, another seed another; at most 2 per category", async () => {
    const a = (await ask(7)).results[0].items;
    expect((await ask(7)).results[0].items).toEqual(a);
    const lists = new Set<string>();
    for (let s = 0; s < 6; s++) lists.add(JSON.stringify((await ask(s)).results[0].items));
    expect(lists.size).toBeGreaterThan(1);
    expect(a.length).toBe(Math.min(8, 2 * CATS));
    // items without features have a null category, a value of its own
    const perCat = new Map<number | null, number>();
    const cat = (raw: unknown) => (NO_FEATURES.includes(itemIndex(raw)) ? null : catOf(itemIndex(raw)));
    for (const it of a) perCat.set(cat(it.item_id_raw), (perCat.get(cat(it.item_id_raw)) ?? 0) + 1);
    expect(Math.max(...perCat.values())).toBeLessThanOrEqual(2);
  });

  it("a request's top_k overrides the Order stage's", async () => {
    const { results } = await rec.recommend(
      { pipeline: "recommender", entityRows: [{ user_id_raw: userRaw(0) }], topK: 2 },
      { retrieve: exact },
    );
    expect(results[0].items.length).toBe(2);
  });
});

describe("bad requests", () => {
  it("name the pipeline, the join key or the value", async () => {
    await expect(rec.recommend({ pipeline: "nope", entityRows: [{ user_id_raw: 1 }] })).rejects.toThrow(NotFoundError);
    await expect(rec.recommend({ pipeline: "recommender", entityRows: [{ user_id: 1 }] })).rejects.toThrow(
      /join key "user_id_raw" is missing/,
    );
    await expect(rec.recommend({ pipeline: "recommender", entityRows: [{ user_id_raw: 1 }], topK: 0 })).rejects.toThrow(
      ValidationError,
    );
    await expect(
      rec.recommend({ pipeline: "recommender", entityRows: [{ user_id_raw: 1 }], seed: Number.NaN }),
    ).rejects.toThrow(/seed/);
  });
});

describe("feature logging", () => {
  it("writes the served rows with the features each stage read, in batches and on close", async () => {
    const dest = join(dir, "data/served");
    // earlier tests' answers were logged too: start from an empty folder
    await rec.flush();
    rmSync(dest, { recursive: true, force: true });
    const served = await rec.recommend(
      { pipeline: "sampled", entities: { user_id_raw: [userRaw(0), userRaw(1), userRaw(5)] }, seed: 3 },
      { retrieve: exact },
    );
    await rec.flush();
    const files = readdirSync(dest).filter((f) => f.endsWith(".parquet"));
    expect(files.length).toBeGreaterThan(0);
    const db = await openDuckDB();
    try {
      const r = await db.connection.runAndReadAll(
        `SELECT user_id_raw, item_id_raw, position, score, fallback, user_id, user_group, item_cat FROM read_parquet(${sqlString(join(dest, "*.parquet"))}) ORDER BY user_id_raw, position`,
      );
      const rows = r.getRowObjectsJS();
      const want = served.results.flatMap((res) =>
        res.items.map((it, pos) => ({
          user_id_raw: BigInt(res.user_id_raw as number),
          item_id_raw: BigInt(it.item_id_raw as number),
          position: pos,
          score: it.score,
          fallback: res.fallback !== null,
          user_id: res.fallback ? null : (res.user_id_raw as number) - 100,
          user_group: res.fallback ? null : ((res.user_id_raw as number) - 100) % 3,
          item_cat: res.fallback ? null : catOf(itemIndex(it.item_id_raw)),
        })),
      );
      // items without features are served on defaults; their logged category is null
      for (const w of want) if (NO_FEATURES.includes(itemIndex(w.item_id_raw))) w.item_cat = null;
      expect(rows).toEqual(want);
    } finally {
      db.close();
    }
    // the folder is an entity dataframe for a point-in-time join (training on what was served)
    const job = await store.getHistoricalFeatures({ entityDf: dest, features: ["user_history:seen_items"] });
    const joined = await job.toRows();
    expect(joined.length).toBe(served.results.reduce((a, r) => a + r.items.length, 0));
    // served "now", after the history rows' time: every known user's history joins
    for (const r of joined) expect(r.seen_items == null).toBe(Number(r.user_id_raw) === userRaw(5));
  });
});

describe("models", () => {
  it("a retrained model folder is picked up without a restart", async () => {
    const req = { pipeline: "recommender", entityRows: [{ user_id_raw: userRaw(0) }] };
    const before = (await rec.recommend(req, { retrieve: exact })).results[0].items;
    const spec = selectInputs(parseSchema(SCHEMA));
    const retrained = new DlrmModel(spec, { embeddingDim: 4, topLayers: [8], seed: 99 });
    await saveDlrm(retrained, join(dir, "models/dlrm"), {
      popularity: { idColumn: "item_id_raw", ids: POPULAR, counts: POPULAR.map(() => 1) },
    });
    const after = (await rec.recommend(req, { retrieve: exact })).results[0].items;
    expect(after).not.toEqual(before);
    retrained.dispose();
  });

  it("importing fstore does not load TensorFlow.js", async () => {
    const run = promisify(execFile);
    const probe = (mod: string) =>
      `await import(${JSON.stringify(mod)}); console.log(globalThis._tfengine === undefined ? "no-tf" : "tf");`;
    const root = join(import.meta.dirname, "..");
    const opts = { cwd: root, timeout: 60_000 };
    const plain = await run(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", probe("./index.ts")],
      opts,
    );
    expect(plain.stdout.trim()).toBe("no-tf");
    const models = await run(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", probe("./adapters/models/index.ts")],
      opts,
    );
    expect(models.stdout.trim()).toBe("tf");
    expect(existsSync(root)).toBe(true);
  }, 90_000);
});
