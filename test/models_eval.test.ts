// What the training jobs evaluate against and save, on a feature repository whose items change over time: the
// item catalogue as of the train/eval cut (no feature row from the evaluation period), evaluation rows of items
// the catalogue lacks counted as misses, training rows of unknown items dropped and counted, DLRM's popularity
// baseline from clicks with probabilities, and item popularity saved with every model.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FeatureStore } from "../stores/feature_store.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { loadModel } from "../adapters/models/artifacts.js";
import { itemCatalogue } from "../adapters/models/job_data.js";
import { trainDlrmJob, trainTwoTowerJob } from "../adapters/models/jobs.js";
import { rng } from "../adapters/models/frame.js";
import { loadSchema, selectInputs } from "../adapters/models/schema.js";

const U = 60;
const G = 3;
/** items 0..29 exist from the start, 30..35 appear in the evaluation period; item_key = 1000 + item_id */
const KNOWN = 30;
const NEW = 6;
/** raw ids the item view never lists */
const GHOSTS = [2000, 2001];
const MIN = 60_000;
const T0 = Date.parse("2024-01-01T00:00:00Z");
/** positive events, one a minute; the two-tower job holds out the last 20% (from minute 1200) */
const N = 1500;
const CUT_MINUTE = 1199;
/** items 0..29 change group at this minute, and the new items appear at NEW_AT */
const CHANGE_AT = 1250;
const NEW_AT = 1300;

const DEFINITIONS = `import { Entity, FeatureView, Field, FileSource } from "fstore";
export const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64" });
export const item = new Entity({ name: "item", joinKeys: ["item_key"], valueType: "int64" });
export const userFeatures = new FeatureView({
  name: "user_features", entities: [user], ttl: 0,
  schema: [new Field({ name: "user_group", dtype: "int64" })],
  source: new FileSource({ name: "user_source", path: "data/users.parquet", timestampField: "event_timestamp" }),
});
export const itemFeatures = new FeatureView({
  name: "item_features", entities: [item], ttl: 0,
  schema: [new Field({ name: "item_id", dtype: "int64" }), new Field({ name: "item_group", dtype: "int64" })],
  source: new FileSource({ name: "item_source", path: "data/items.parquet", timestampField: "event_timestamp" }),
});
`;

const cat = (name: string, cardinality: number, tags: string[]) => ({
  name,
  dtype: "int64",
  isList: false,
  tags: ["categorical", ...tags],
  properties: { cardinality },
});
const SCHEMA = [
  cat("user_id", U, ["user", "user_id"]),
  cat("user_group", G, ["user"]),
  cat("item_id", KNOWN + NEW, ["item", "item_id"]),
  cat("item_group", G, ["item"]),
  { name: "click", dtype: "int32", isList: false, tags: ["target", "binary_classification"], properties: {} },
];
const FEATURES = ["user_features:user_group", "item_features:item_id", "item_features:item_group"];

let dir: string;
let store: FeatureStore;
/** the positive events in time order: raw item key and minute */
const positives: Array<{ key: number; minute: number }> = [];
/** the impressions for the ranking job in time order: raw item key and click */
const impressions: Array<{ key: number; click: number }> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fstore-train-eval-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(
    join(dir, "feature_store.yaml"),
    "project: train_eval\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: duckdb\n  threads: 1\n",
  );
  writeFileSync(join(dir, "defs.ts"), DEFINITIONS);
  writeFileSync(join(dir, "schema.json"), JSON.stringify(SCHEMA));
  await writeParquet(
    join(dir, "data/users.parquet"),
    {
      length: U,
      columns: {
        user_id: Array.from({ length: U }, (_, u) => u),
        user_group: Array.from({ length: U }, (_, u) => u % G),
        event_timestamp: new Array<number>(U).fill(T0 - 86400_000),
      },
    },
    { user_id: "int64", user_group: "int64", event_timestamp: "timestamp" },
  );
  // Items 0..29 from the start, regrouped after the cut; items 30..35 only after it.
  const items: Array<{ item_key: number; item_id: number; item_group: number; event_timestamp: number }> = [];
  for (let i = 0; i < KNOWN; i++) {
    items.push({ item_key: 1000 + i, item_id: i, item_group: i % G, event_timestamp: T0 - 86400_000 });
    items.push({ item_key: 1000 + i, item_id: i, item_group: (i + 1) % G, event_timestamp: T0 + CHANGE_AT * MIN });
  }
  for (let i = KNOWN; i < KNOWN + NEW; i++)
    items.push({ item_key: 1000 + i, item_id: i, item_group: i % G, event_timestamp: T0 + NEW_AT * MIN });
  await writeParquet(join(dir, "data/items.parquet"), items, {
    item_key: "int64",
    item_id: "int64",
    item_group: "int64",
    event_timestamp: "timestamp",
  });
  // Clicks: users click items of their own group; some clicks go to ghost items, and from NEW_AT on a third go
  // to the new items. Impressions without a click (30 s after some clicks) do not count for the split.
  const r = rng(5);
  const events: Array<{ user_id: number; item_key: number; click: number; event_timestamp: number }> = [];
  for (let m = 0; m < N; m++) {
    const u = Math.floor(r() * U);
    const x = r();
    let key: number;
    if (x < 0.05) key = GHOSTS[Math.floor(r() * GHOSTS.length)];
    else if (m >= NEW_AT && x < 0.35) key = 1000 + KNOWN + Math.floor(r() * NEW);
    else key = 1000 + (u % G) + G * Math.floor(r() * (KNOWN / G));
    events.push({ user_id: u, item_key: key, click: 1, event_timestamp: T0 + m * MIN });
    positives.push({ key, minute: m });
    if (r() < 0.3)
      events.push({
        user_id: u,
        item_key: 1000 + Math.floor(r() * KNOWN),
        click: 0,
        event_timestamp: T0 + m * MIN + 30_000,
      });
  }
  await writeParquet(join(dir, "events.parquet"), events, {
    user_id: "int64",
    item_key: "int64",
    click: "int32",
    event_timestamp: "timestamp",
  });
  // Impressions for the ranking baseline: items 0..9 are shown three times as often as items 10..19 but
  // clicked far less (5% against 70%), so they lead on impressions and trail on clicks.
  const imps: typeof events = [];
  const r2 = rng(11);
  for (let k = 0; k < 2400; k++) {
    const heavy = r2() < 0.75;
    const key = 1000 + (heavy ? 0 : 10) + Math.floor(r2() * 10);
    const click = r2() < (heavy ? 0.05 : 0.7) ? 1 : 0;
    imps.push({ user_id: Math.floor(r2() * U), item_key: key, click, event_timestamp: T0 + k * 30_000 });
    impressions.push({ key, click });
  }
  await writeParquet(join(dir, "impressions.parquet"), imps, {
    user_id: "int64",
    item_key: "int64",
    click: "int32",
    event_timestamp: "timestamp",
  });
  store = await FeatureStore.open(dir);
  await store.apply();
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the item catalogue of a training job", () => {
  it("holds the items known at a time with their features as of then, or every item with its latest", async () => {
    const spec = selectInputs(loadSchema(join(dir, "schema.json")));
    const atCut = await itemCatalogue({ store, itemView: "item_features" }, spec, T0 + CUT_MINUTE * MIN);
    expect(Array.from(atCut?.columns.item_id as Int32Array)).toEqual(Array.from({ length: KNOWN }, (_, i) => i));
    expect(Array.from(atCut?.columns.item_group as Int32Array)).toEqual(Array.from({ length: KNOWN }, (_, i) => i % G));
    const latest = await itemCatalogue({ store, itemView: "item_features" }, spec, "latest");
    expect(latest?.length).toBe(KNOWN + NEW);
    expect(Array.from(latest?.columns.item_group as Int32Array).slice(0, KNOWN)).toEqual(
      Array.from({ length: KNOWN }, (_, i) => (i + 1) % G),
    );
  });
});

describe("two-tower job evaluation and export", () => {
  it("evaluates against the catalogue at the cut, counts unknown items as misses, drops unknown training items", async () => {
    const lines: string[] = [];
    const out = join(dir, "tt");
    const res = await trainTwoTowerJob({
      store,
      schemaPath: join(dir, "schema.json"),
      entityDf: join(dir, "events.parquet"),
      features: FEATURES,
      itemView: "item_features",
      outDir: out,
      epochs: 2,
      batchSize: 128,
      learningRate: 0.01,
      evalFraction: 0.2,
      log: (l) => lines.push(l),
    });
    const isGhost = (key: number) => GHOSTS.includes(key);
    const train = positives.filter((p) => p.minute <= CUT_MINUTE);
    const evalRows = positives.filter((p) => p.minute > CUT_MINUTE);
    const droppedTrain = train.filter((p) => isGhost(p.key)).length;
    const evalUnknown = evalRows.filter((p) => isGhost(p.key) || p.key >= 1000 + KNOWN).length;
    expect(droppedTrain).toBeGreaterThan(10);
    expect(evalUnknown).toBeGreaterThan(50);
    // The eval fraction is a share of the positive rows (impressions without a click are not in the split).
    expect(res.rows).toEqual({
      train: train.length - droppedTrain,
      eval: evalRows.length,
      droppedTrain,
      evalUnknownItem: evalUnknown,
    });
    expect(res.items).toEqual({ atCut: KNOWN, exported: KNOWN + NEW });
    expect(lines.some((l) => l.startsWith(`dropped ${droppedTrain} of ${train.length} training rows`))).toBe(true);
    // Every evaluation row counts, and the unknown ones are misses: recall cannot pass the known share.
    const knownShare = (evalRows.length - evalUnknown) / evalRows.length;
    for (const m of ["two-tower", "popularity"]) {
      expect(res.metrics[m].users).toBe(evalRows.length);
      expect(res.metrics[m].recall_at_10).toBeLessThanOrEqual(knownShare + 1e-9);
    }
    // Popularity saved with both towers: positive training rows per raw item id (the item view's key).
    const counts = new Map<number, number>();
    for (const p of train) if (!isGhost(p.key)) counts.set(p.key, (counts.get(p.key) ?? 0) + 1);
    for (const tower of ["query_tower", "item_tower"]) {
      const { meta, model } = await loadModel(join(out, tower));
      model.dispose();
      const pop = meta.popularity;
      expect(pop?.idColumn).toBe("item_key");
      expect(new Map(pop?.ids.map((id, i) => [id, pop.counts[i]]))).toEqual(counts);
      expect(pop?.counts).toEqual([...(pop?.counts ?? [])].sort((a, b) => b - a));
    }
  });
});

describe("DLRM job popularity", () => {
  it("ranks by click counts with fitted probabilities, and saves the click counts of the training rows", async () => {
    const out = join(dir, "dlrm");
    const res = await trainDlrmJob({
      store,
      schemaPath: join(dir, "schema.json"),
      entityDf: join(dir, "impressions.parquet"),
      features: FEATURES,
      outDir: out,
      epochs: 1,
      batchSize: 256,
      dlrm: { embeddingDim: 8, topLayers: [16, 8] },
      log: () => {},
    });
    // Counting impressions would rank the rarely clicked items first (AUC well under 0.5), and shares of
    // counts are no probabilities (log loss above 1); clicks give AUC ~0.8 and fitted rates ~0.3 log loss.
    expect(res.metrics.popularity.auc).toBeGreaterThan(0.7);
    expect(res.metrics.popularity.log_loss).toBeLessThan(0.42);
    const { meta, model } = await loadModel(out);
    model.dispose();
    // Training rows are the first 90% in time (2160 of the 2400 impressions); popularity counts their clicks.
    expect(res.rows.train).toBe(2160);
    const clicks = new Map<number, number>();
    for (const p of impressions.slice(0, 2160)) if (p.click) clicks.set(p.key, (clicks.get(p.key) ?? 0) + 1);
    const pop = meta.popularity;
    expect(pop?.idColumn).toBe("item_key");
    expect(new Map(pop?.ids.map((id, i) => [id, pop.counts[i]]))).toEqual(clicks);
  });
});
