import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  generateAliccp,
  generateRees46,
  loadMovieLens,
  prepareDemoData,
  rees46ProductId,
  dataSetDir,
} from "../adapters/datasets/index.js";
import { openDuckDB } from "../common/duckdb.js";
import { queryRows, type Row } from "../adapters/etl/sql.js";

/** The committed slice of ml-latest-small (test/fixtures/README.md says how it was cut). */
const ML_SLICE = join(import.meta.dirname, "fixtures", "ml-latest-small");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fstore-datasets-test-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function q(sql: string): Promise<Row[]> {
  const d = await openDuckDB();
  try {
    return await queryRows(d.connection, sql, "test query");
  } finally {
    d.close();
  }
}

/** ROC AUC with average ranks for ties. */
function auc(scores: number[], labels: number[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
  const ranks = new Array<number>(scores.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]] === scores[idx[i]]) j++;
    for (let k = i; k <= j; k++) ranks[idx[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  const pos = labels.filter((l) => l === 1).length;
  const neg = labels.length - pos;
  const sum = labels.reduce((s, l, i) => s + (l === 1 ? ranks[i] : 0), 0);
  return (sum - (pos * (pos + 1)) / 2) / (pos * neg);
}

describe("synthetic Ali-CCP-like data", () => {
  it("is deterministic for a seed, has notebook 001's columns and train/valid splits", async () => {
    const a = await generateAliccp(join(dir, "a1"), { rows: 5000, seed: 7 });
    const b = await generateAliccp(join(dir, "a2"), { rows: 5000, seed: 7 });
    const c = await generateAliccp(join(dir, "a3"), { rows: 5000, seed: 8 });
    const digest = async (p: string) =>
      String((await q(`SELECT sum(hash(COLUMNS(*))) AS h FROM read_parquet('${p}/**/*.parquet')`))[0].h);
    expect(await digest(a.dir)).toBe(await digest(b.dir));
    expect(await digest(a.dir)).not.toBe(await digest(c.dir));
    expect(a.rows.train + a.rows.valid).toBe(5000);
    expect(a.rows.valid / 5000).toBeGreaterThan(0.25);
    expect(a.rows.valid / 5000).toBeLessThan(0.35);
    const cols = (await q(`DESCRIBE SELECT * FROM read_parquet('${a.train}/*.parquet')`)).map((r) => r.column_name);
    expect(cols).toEqual(
      expect.arrayContaining([
        "user_id",
        "item_id",
        "item_category",
        "item_shop",
        "item_brand",
        "user_shops",
        "user_profile",
        "user_group",
        "user_gender",
        "user_age",
        "user_consumption_2",
        "user_is_occupied",
        "user_geography",
        "user_intentions",
        "user_brands",
        "user_categories",
        "click",
        "conversion",
        "event_timestamp",
      ]),
    );
    expect(a.clickRate).toBeGreaterThan(0.1);
    expect(a.clickRate).toBeLessThan(0.6);
  });

  it("plants preferences: a per-user-group model beats item popularity on held-out clicks", async () => {
    const g = await generateAliccp(join(dir, "pref"), { rows: 40000, seed: 3 });
    // both scorers learn click rates on train; popularity per item, the personalised one per (user_group, item_intention)
    const rows = await q(`
      WITH tr AS (SELECT * FROM read_parquet('${g.train}/*.parquet')),
           pop AS (SELECT item_id, avg(click) AS s FROM tr GROUP BY 1),
           per AS (SELECT user_group, item_intention, avg(click) AS s FROM tr GROUP BY 1, 2)
      SELECT coalesce(pop.s, 0)::DOUBLE AS pop, coalesce(per.s, 0)::DOUBLE AS per, v.click
      FROM read_parquet('${g.valid}/*.parquet') v LEFT JOIN pop USING (item_id) LEFT JOIN per USING (user_group, item_intention)`);
    const labels = rows.map((r) => Number(r.click));
    const aPop = auc(
      rows.map((r) => r.pop as number),
      labels,
    );
    const aPer = auc(
      rows.map((r) => r.per as number),
      labels,
    );
    expect(aPop).toBeGreaterThan(0.52);
    expect(aPer).toBeGreaterThan(aPop + 0.05);
  });

  it("rejects bad sizes", async () => {
    await expect(generateAliccp(join(dir, "bad"), { rows: 3 })).rejects.toThrow(/rows must be an integer >= 10/);
  });
});

describe("synthetic REES46-like events", () => {
  it("has the notebook 004 columns, consecutive repeats, and a planted next-item order", async () => {
    const g = await generateRees46(join(dir, "rees.parquet"), { sessions: 3000, items: 500, seed: 5 });
    const again = await generateRees46(join(dir, "rees2.parquet"), { sessions: 3000, items: 500, seed: 5 });
    expect(g.events).toBe(again.events);
    const cols = (await q(`DESCRIBE SELECT * FROM read_parquet('${g.path}')`)).map(
      (r) => `${r.column_name}:${r.column_type}`,
    );
    expect(cols).toEqual([
      "event_time:TIMESTAMP",
      "event_type:VARCHAR",
      "product_id:BIGINT",
      "category_id:BIGINT",
      "category_code:VARCHAR",
      "brand:VARCHAR",
      "price:DOUBLE",
      "user_id:BIGINT",
      "user_session:VARCHAR",
    ]);
    const [stats] = await q(`
      WITH e AS (SELECT *, lag(product_id) OVER (PARTITION BY user_session ORDER BY event_time) AS prev FROM read_parquet('${g.path}'))
      SELECT avg(CAST(product_id = prev AS INTEGER))::DOUBLE AS repeat_rate, count(DISTINCT user_session) AS sessions,
             sum(CAST(category_code IS NULL AS INTEGER)) AS null_codes FROM e WHERE prev IS NOT NULL`);
    expect(stats.repeat_rate as number).toBeGreaterThan(0.1);
    expect(Number(stats.null_codes)).toBeGreaterThan(0);
    // after removing repeats, how often is the next item the successor in the hidden order?
    const inverse = new Map<number, number>();
    for (let i = 0; i < 500; i++) inverse.set(rees46ProductId(i, 500), i);
    const pairs = await q(`
      WITH e AS (SELECT *, lag(product_id) OVER (PARTITION BY user_session ORDER BY event_time) AS prev FROM read_parquet('${g.path}')),
           d AS (SELECT * FROM e WHERE prev IS NULL OR prev <> product_id),
           n AS (SELECT product_id, lag(product_id) OVER (PARTITION BY user_session ORDER BY event_time) AS prev FROM d)
      SELECT prev, product_id FROM n WHERE prev IS NOT NULL`);
    const follows = pairs.filter(
      (p) => ((inverse.get(Number(p.prev)) as number) + 1) % 500 === inverse.get(Number(p.product_id)),
    ).length;
    expect(follows / pairs.length).toBeGreaterThan(0.5);
  });
});

describe("MovieLens loaders (a committed slice of the real files, no download)", () => {
  it("writes ratings, items (year, genres) and users parquet", async () => {
    const r = await loadMovieLens(join(dir, "ml"), { dataDir: ML_SLICE, created: new Date("2024-01-01T00:00:00Z") });
    // the slice: 31 users' whole histories; its movies.csv also lists 19 movies none of them rated
    expect(r.counts).toEqual({ ratings: 3815, items: 1765, users: 31 });
    const [unrated] = await q(`SELECT count(*) AS n FROM read_parquet('${r.items}') WHERE rating_count = 0`);
    expect(Number(unrated.n)).toBe(19);
    const [toy] = await q(`SELECT * FROM read_parquet('${r.items}') WHERE item_id = 1`);
    expect(toy).toMatchObject({
      title: "Toy Story",
      year: 1995,
      genres: ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
    });
    const [quoted] = await q(`SELECT title, year FROM read_parquet('${r.items}') WHERE item_id = 7789`);
    expect(quoted).toEqual({ title: `11'09"01 - September 11`, year: 2002 });
    const [u] = await q(`SELECT * FROM read_parquet('${r.users}') WHERE user_id = 1`);
    expect(Number(u.rating_count)).toBe(232);
    const [first] = await q(`SELECT * FROM read_parquet('${r.ratings}') WHERE user_id = 1 AND item_id = 1`);
    expect((first.event_timestamp as Date).getTime()).toBe(964982703 * 1000);
  });
  it("says where it looked when the files are missing", async () => {
    await expect(loadMovieLens(join(dir, "ml2"), { dataDir: join(dir, "nowhere") })).rejects.toThrow(
      /ratings\.csv not found/,
    );
    // benchmarks and experiments read the full data sets from FSTORE_DATA_DIR: a missing one names the variable
    const before = process.env.FSTORE_DATA_DIR;
    process.env.FSTORE_DATA_DIR = join(dir, "no-data");
    try {
      expect(() => dataSetDir("ml-latest-small")).toThrow(
        `data set ml-latest-small not found: expected the folder ${join(dir, "no-data", "ml-latest-small")} (set FSTORE_DATA_DIR`,
      );
      await expect(loadMovieLens(join(dir, "ml3"))).rejects.toThrow(
        `${join(dir, "no-data", "ml-latest-small", "ratings.csv")} not found`,
      );
      process.env.FSTORE_DATA_DIR = join(import.meta.dirname, "fixtures");
      expect(dataSetDir("ml-latest-small")).toBe(ML_SLICE);
    } finally {
      if (before === undefined) delete process.env.FSTORE_DATA_DIR;
      else process.env.FSTORE_DATA_DIR = before;
    }
  });
});

describe("demo data for feature_repo/", () => {
  it("writes user and item feature tables with timestamps inside the last 3 days", async () => {
    const now = new Date("2026-01-10T12:00:00Z");
    const d = await prepareDemoData(join(dir, "repo"), { rows: 5000, now });
    expect(existsSync(join(dir, "repo", "data", "workflow", "workflow.json"))).toBe(true);
    const [u] = await q(
      `SELECT count(*) AS n, count(DISTINCT user_id_raw) AS k, min(event_timestamp) AS lo, max(event_timestamp) AS hi, max(created) AS c FROM read_parquet('${d.userFeatures}')`,
    );
    expect(Number(u.n)).toBe(d.users);
    expect(Number(u.k)).toBe(d.users);
    expect((u.lo as Date).getTime()).toBeGreaterThanOrEqual(d.start.getTime());
    expect((u.hi as Date).getTime()).toBeLessThan(d.end.getTime());
    expect((u.c as Date).getTime()).toBe(now.getTime());
    const cols = (await q(`DESCRIBE SELECT * FROM read_parquet('${d.itemFeatures}')`)).map((r) => r.column_name);
    expect(cols).toEqual([
      "item_id_raw",
      "item_id",
      "item_category",
      "item_shop",
      "item_intention",
      "item_brand",
      "event_timestamp",
      "created",
    ]);
    expect(d.sampleItemIds.length).toBe(3);
    // seen items: per user, the distinct items clicked in the training events, for the pipeline's FilterSeen
    const train = join(d.processed, "train", "*.parquet");
    const [h] = await q(
      `SELECT count(*) AS n, sum(len(seen_items)) AS seen, max(created) AS c FROM read_parquet('${d.userHistory}')`,
    );
    const [clicks] = await q(
      `SELECT count(DISTINCT user_id_raw) AS users, count(DISTINCT (user_id_raw, item_id_raw)) AS pairs FROM read_parquet('${train}') WHERE click > 0`,
    );
    expect(Number(h.n)).toBe(Number(clicks.users));
    expect(Number(h.seen)).toBe(Number(clicks.pairs));
    expect((h.c as Date).getTime()).toBe(now.getTime());
    const [e] = await q(`SELECT count(*) AS n FROM read_parquet('${d.itemEmbeddings}')`);
    expect(Number(e.n)).toBe(0);
  });
});
