import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Workflow,
  Categorify,
  Normalize,
  LogOp,
  FillMissing,
  Clip,
  Rename,
  Cast,
  Expr,
  Filter,
  Dropna,
  JoinGroupby,
  TargetEncoding,
  TimeFeatures,
  Groupby,
  ListSlice,
  DedupeConsecutive,
  AddTags,
  AddMetadata,
  Select,
  uniqueRowsByFeatures,
  parseExpr,
  evalExpr,
  type Row,
  type Value,
} from "../adapters/etl/index.js";
import { openDuckDB } from "../common/duckdb.js";
import { parseSchema, selectInputs } from "../adapters/models/schema.js";
import { queryRows } from "../adapters/etl/sql.js";
import { parseMemory } from "../adapters/etl/group_passes.js";
import { generateRees46 } from "../adapters/datasets/rees46.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fstore-etl-test-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A parquet file from a SELECT. */
async function parquet(select: string): Promise<string> {
  const p = join(dir, `in${n++}.parquet`);
  const d = await openDuckDB();
  try {
    await d.connection.run(`COPY (${select}) TO '${p}' (FORMAT parquet)`);
  } finally {
    d.close();
  }
  return p;
}

function plain(v: Value | undefined): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Date) return v.getTime();
  return v ?? null;
}
function plainRow(r: Row): Record<string, unknown> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)]));
}

async function read(path: string, orderBy?: string): Promise<Record<string, unknown>[]> {
  const d = await openDuckDB();
  try {
    const from = path.endsWith(".parquet") ? `read_parquet('${path}')` : `read_parquet('${path}/**/*.parquet')`;
    return (await queryRows(d.connection, `SELECT * FROM ${from}${orderBy ? ` ORDER BY ${orderBy}` : ""}`, "read")).map(
      plainRow,
    );
  } finally {
    d.close();
  }
}

/** Fits on input (unless already fitted on other data: fittedOn), transforms input, reads the output back. */
async function run(
  wf: Workflow,
  input: string,
  orderBy?: string,
  fittedOn?: string,
): Promise<Record<string, unknown>[]> {
  if (!fittedOn) await wf.fit(input);
  const out = join(dir, `out${n++}`);
  await wf.transform(input, out);
  return read(out, orderBy);
}

/** Floats from DuckDB's libm and V8's may differ in the last bit. */
function close(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number")
    return a === b || Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => close(x, b[i]));
  return a === b;
}
function expectRowsClose(actual: Record<string, unknown>[], expected: Record<string, unknown>[]) {
  expect(actual.length).toBe(expected.length);
  actual.forEach((r, i) => {
    expect(Object.keys(r).sort()).toEqual(Object.keys(expected[i]).sort());
    for (const k of Object.keys(r))
      if (!close(r[k], expected[i][k]))
        expect({ row: i, col: k, value: r[k] }).toEqual({ row: i, col: k, value: expected[i][k] });
  });
}

describe("operators against hand-computed values", () => {
  it("Categorify: frequency order, nulls and unseen values to reserved indices, vocabulary parquet", async () => {
    const train = await parquet(
      `SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'a'), (4, NULL), (5, 'c'), (6, 'a'), (7, 'b')) t(id, c)`,
    );
    const wf = new Workflow([new Categorify("c")]);
    const out = await run(wf, train, "id");
    // s = 0: null -> 0, OOV -> 1, then a (3x) -> 2, b (2x) -> 3, c (1x) -> 4
    expect(out.map((r) => r.c)).toEqual([2, 3, 2, 0, 4, 2, 3]);
    const test = await parquet(`SELECT * FROM (VALUES (1, 'z'), (2, 'c'), (3, NULL)) t(id, c)`);
    const out2 = await run(wf, test, "id", train);
    expect(out2.map((r) => r.c)).toEqual([1, 4, 0]);
    const vocab = await read(join(wf.stateDir as string, "categories", "unique.c.parquet"), "index");
    expect(vocab).toEqual([
      { c: "a", index: 2, count: 3 },
      { c: "b", index: 3, count: 2 },
      { c: "c", index: 4, count: 1 },
    ]);
    const schema = JSON.parse(readFileSync(join(dir, `out${n - 1}`, "schema.json"), "utf8")) as {
      columns: Array<{ name: string; tags: string[]; properties: Record<string, unknown> }>;
    };
    const c = schema.columns.find((x) => x.name === "c");
    expect(c?.tags).toContain("categorical");
    expect(c?.properties).toMatchObject({
      cardinality: 5,
      embeddingDim: Math.round(1.6 * 5 ** 0.56),
      domain: { min: 0, max: 4 },
      startIndex: 0,
    });
  });

  it("Categorify: startIndex, freqThreshold and maxSize", async () => {
    const train = await parquet(`SELECT * FROM (VALUES (1, 10), (2, 20), (3, 10), (4, 30), (5, 10), (6, 20)) t(id, c)`);
    const thr = await run(new Workflow([new Categorify("c", { startIndex: 1, freqThreshold: 2 })]), train, "id");
    // s = 1: null 1, OOV 2, 10 -> 3, 20 -> 4, 30 (once) -> OOV
    expect(thr.map((r) => r.c)).toEqual([3, 4, 3, 2, 3, 4]);
    const max = await run(new Workflow([new Categorify("c", { maxSize: 1 })]), train, "id");
    expect(max.map((r) => r.c)).toEqual([2, 1, 2, 1, 2, 1]);
  });

  it("Normalize, LogOp, FillMissing, Clip, Cast", async () => {
    const t = await parquet(
      `SELECT * FROM (VALUES (1, 1.0, 2.5), (2, 2.0, -3.0), (3, 4.0, NULL), (4, NULL, 10.0)) t(id, x, y)`,
    );
    const mean = 7 / 3;
    const std = Math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2);
    const norm = await run(new Workflow([new Normalize("x")]), t, "id");
    expectRowsClose(
      norm.map((r) => ({ x: r.x })),
      [{ x: (1 - mean) / std }, { x: (2 - mean) / std }, { x: (4 - mean) / std }, { x: null }],
    );
    const log = await run(new Workflow([new LogOp(["x", "y"])]), t, "id");
    expectRowsClose(
      log.map((r) => ({ x: r.x, y: r.y })),
      [
        { x: Math.log(2), y: Math.log(3.5) },
        { x: Math.log(3), y: null },
        { x: Math.log(5), y: null },
        { x: null, y: Math.log(11) },
      ],
    );
    const fill = await run(
      new Workflow([new FillMissing("x", { strategy: "median" }), new FillMissing("y", { value: -1 })]),
      t,
      "id",
    );
    expect(fill.map((r) => [r.x, r.y])).toEqual([
      [1, 2.5],
      [2, -3],
      [4, -1],
      [2, 10],
    ]);
    const clip = await run(new Workflow([new Clip("y", { min: 0, max: 5 })]), t, "id");
    expect(clip.map((r) => r.y)).toEqual([2.5, 0, null, 5]);
    const cast = await run(new Workflow([new Cast("y", "int32")]), t, "id");
    expect(cast.map((r) => r.y)).toEqual([3, -3, null, 10]);
  });

  it("Rename, Expr, Filter, Dropna, Select, AddTags", async () => {
    const t = await parquet(`SELECT * FROM (VALUES (1, 10, 'a'), (2, 20, NULL), (3, 30, 'c')) t(id, price, s)`);
    const wf = new Workflow([
      new Rename("price", { postfix: "_raw", keep: true }),
      new Expr("double_plus", "price * 2 + 1", { tags: ["continuous"] }),
      new Rename("s", { name: "label" }),
      new Filter("price > 10 OR label = 'a'"),
      new Dropna(["label"]),
      new AddTags("id", ["user_id"]),
      new Select(["id", "price_raw", "double_plus", "label"]),
    ]);
    const out = await run(wf, t, "id");
    expect(out).toEqual([
      { id: 1, price_raw: 10, double_plus: 21, label: "a" },
      { id: 3, price_raw: 30, double_plus: 61, label: "c" },
    ]);
    expect(wf.outputColumns()?.find((c) => c.name === "id")?.tags).toEqual(["user_id"]);
  });

  it("JoinGroupby: per-category statistics joined back; unseen gets null and count 0", async () => {
    const t = await parquet(`SELECT * FROM (VALUES (1, 'a', 1.0), (2, 'a', 3.0), (3, 'b', 10.0)) t(id, cat, price)`);
    const wf = new Workflow([new JoinGroupby("cat", { cont: ["price"], stats: ["count", "mean", "max"] })]);
    const out = await run(wf, t, "id");
    expect(out.map((r) => [r.cat_count, r.cat_price_mean, r.cat_price_max])).toEqual([
      [2, 2, 3],
      [2, 2, 3],
      [1, 10, 10],
    ]);
    const t2 = await parquet(`SELECT * FROM (VALUES (1, 'z', 1.0), (2, NULL, 1.0)) t(id, cat, price)`);
    const out2 = await run(wf, t2, "id", t);
    expect(out2.map((r) => [r.cat_count, r.cat_price_mean])).toEqual([
      [0, null],
      [0, null],
    ]);
  });

  it("TargetEncoding: smoothed means; out-of-fold statistics for training data", async () => {
    const t = await parquet(
      `SELECT * FROM (VALUES (1, 'a', 1), (2, 'a', 0), (3, 'a', 1), (4, 'b', 1), (5, 'a', 1), (6, 'a', 0)) t(id, cat, click)`,
    );
    const wf = new Workflow([new TargetEncoding("cat", { target: "click", kfold: 2, pSmooth: 1 })]);
    await wf.fit(t);
    const m = 4 / 6;
    const out = join(dir, `te${n++}`);
    await wf.transform(t, out);
    const full = await read(out, "id");
    const a = (3 + m) / (5 + 1);
    const b = (1 + m) / (1 + 1);
    expectRowsClose(
      full.map((r) => ({ te: r.TE_cat_click })),
      [a, a, a, b, a, a].map((te) => ({ te })),
    );
    // training: each row is encoded from the other fold only
    const outT = join(dir, `te${n++}`);
    await wf.transform(t, outT, { training: true });
    const trained = await read(outT, "id");
    const folds = await read(join(wf.stateDir as string, "categories", "te.cat.click.parquet"));
    const rowsOf = (cat: string) => folds.filter((f) => f.k === cat);
    for (const r of trained) {
      const options = rowsOf(r.cat as string).map((f) => {
        const S = rowsOf(r.cat as string).reduce((s, x) => s + (x.s as number), 0);
        const N = rowsOf(r.cat as string).reduce((s, x) => s + (x.n as number), 0);
        return (S - (f.s as number) + m) / (N - (f.n as number) + 1);
      });
      expect(options.some((o) => close(o, r.TE_cat_click))).toBe(true);
    }
    expect(trained.map((r) => r.TE_cat_click)).not.toEqual(full.map((r) => r.TE_cat_click));
    const t2 = await parquet(`SELECT * FROM (VALUES (1, 'zz', 0)) t(id, cat, click)`);
    const out2 = await run(wf, t2, "id", t);
    expect(out2[0].TE_cat_click).toBeCloseTo(m, 12);
  });

  it("TimeFeatures: UTC weekday (Monday = 0), hour, cyclical sin/cos", async () => {
    // 2024-01-01 is a Monday; 2024-01-07 a Sunday
    const t = await parquet(
      `SELECT * FROM (VALUES (1, TIMESTAMP '2024-01-01 05:30:00', 1704087000), (2, TIMESTAMP '2024-01-07 23:00:00', 1704668400)) t(id, ts, epoch)`,
    );
    const feats = ["weekday", "hour", "weekday_sin", "weekday_cos", "hour_sin"] as const;
    const wf = new Workflow([
      new TimeFeatures("ts", { features: [...feats] }),
      new TimeFeatures("epoch", { unit: "s", features: ["weekday", "hour"] }),
    ]);
    const out = await run(wf, t, "id");
    expect(out.map((r) => [r.ts_weekday, r.ts_hour, r.epoch_weekday, r.epoch_hour])).toEqual([
      [0, 5, 0, 5],
      [6, 23, 6, 23],
    ]);
    expect(out[1].ts_weekday_sin).toBeCloseTo(Math.sin((2 * Math.PI * 6) / 7), 12);
    expect(out[0].ts_weekday_cos).toBeCloseTo(1, 12);
    expect(out[1].ts_hour_sin).toBeCloseTo(Math.sin((2 * Math.PI * 23) / 24), 12);
  });

  it("DedupeConsecutive: [1,2,4,1,2,2,3,3,3] becomes [1,2,4,1,2,3]; Groupby sorts by time, ties in input order", async () => {
    const items = [1, 2, 4, 1, 2, 2, 3, 3, 3];
    const values = items
      .map((it, i) => `('s1', ${it}, ${Math.floor(i / 2)}, ${i})`)
      .concat(["('s2', 7, 5, 100)", "('s2', 7, 1, 101)", "('s2', 8, 1, 102)"]);
    const t = await parquet(`SELECT * FROM (VALUES ${values.join(", ")}) t(session, item, ts, seq)`);
    const wf = new Workflow([
      new DedupeConsecutive({ session: "session", item: "item", sortBy: ["ts"] }),
      new Groupby({
        groupBy: ["session"],
        sortBy: ["ts"],
        aggs: { item: ["list", "count", "first", "last"], seq: ["min", "max", "mean"] },
      }),
      new ListSlice(["item-list"], 0, 4),
    ]);
    const out = await run(wf, t, "session");
    expect(out[0]).toEqual({
      session: "s1",
      "item-list": [1, 2, 4, 1],
      "item-count": 6,
      "item-first": 1,
      "item-last": 3,
      "seq-min": 0,
      "seq-max": 6,
      "seq-mean": (0 + 1 + 2 + 3 + 4 + 6) / 6,
    });
    // s2 sorted by time: (7, ts 1, seq 101), (8, ts 1, seq 102), (7, ts 5, seq 100): no consecutive repeat
    expect(out[1]).toMatchObject({
      session: "s2",
      "item-list": [7, 8, 7],
      "item-count": 3,
      "item-first": 7,
      "item-last": 7,
    });
    // a group by in several passes (hash of the key) writes the same groups
    const passes = join(dir, `passes${n++}`);
    const res = await wf.transform(t, passes, { groupPasses: 3 });
    for (const f of res.files) expect(f).toMatch(/^part_[0-2]\.parquet$/);
    expect(await read(passes, "session")).toEqual(out);
    // a CSV source is bucketed by the key once, then each pass reads its bucket
    const csv = join(dir, `in${n++}.csv`);
    const d = await openDuckDB();
    try {
      await d.connection.run(`COPY (SELECT * FROM read_parquet('${t}')) TO '${csv}' (FORMAT csv, HEADER true)`);
    } finally {
      d.close();
    }
    const fromCsv = join(dir, `passes${n++}`);
    expect((await wf.transform(csv, fromCsv, { groupPasses: 3 })).files.length).toBeGreaterThan(1);
    expect(await read(fromCsv, "session")).toEqual(out);
  });

  it("group-by passes follow DuckDB's memory_limit text", () => {
    expect(parseMemory("953.6 MiB")).toBeCloseTo(953.6 * 2 ** 20, 0);
    expect(parseMemory("1GB")).toBe(1e9);
    expect(parseMemory("18.9 GiB")).toBeCloseTo(18.9 * 2 ** 30, 0);
    expect(parseMemory("512 bytes")).toBe(512);
    expect(parseMemory("lots")).toBeNull();
  });

  it("ListSlice: last n, padding", async () => {
    const t = await parquet(`SELECT * FROM (VALUES (1, [1, 2, 3, 4, 5]), (2, [9]), (3, NULL)) t(id, l)`);
    const last = await run(new Workflow([new ListSlice("l", -2)]), t, "id");
    expect(last.map((r) => r.l)).toEqual([[4, 5], [9], null]);
    const pad = await run(new Workflow([new ListSlice("l", 0, 3, { pad: true, padValue: 0 })]), t, "id");
    expect(pad.map((r) => r.l)).toEqual([[1, 2, 3], [9, 0, 0], null]);
  });
});

describe("group by under a memory limit", () => {
  it("a group by that runs out of memory in the default passes starts over with more, and writes the same sessions", async () => {
    const events = join(dir, "rees.parquet");
    await generateRees46(events, { sessions: 20000, items: 20000, seed: 1 });
    const wf = new Workflow([
      new Categorify(["product_id", "category_id", "brand"], { startIndex: 1 }),
      new Normalize("price"),
      new Groupby({
        groupBy: ["user_session"],
        sortBy: ["event_time"],
        aggs: {
          product_id: ["list", "count"],
          category_id: ["list"],
          brand: ["list"],
          price: ["list"],
          event_time: ["first"],
        },
      }),
      new ListSlice(["product_id-list", "category_id-list", "brand-list", "price-list"], -20),
    ]);
    await wf.fit(events);
    const one = join(dir, `mem${n++}`);
    expect((await wf.transform(events, one)).files).toEqual(["part_0.parquet"]);
    // ~134k events: 2 passes by the estimate; under 30MB their list aggregates do not fit
    await expect(wf.transform(events, join(dir, `mem${n++}`), { memoryLimit: "30MB", groupPasses: 2 })).rejects.toThrow(
      /Out of Memory/,
    );
    const small = join(dir, `mem${n++}`);
    const res = await wf.transform(events, small, { memoryLimit: "30MB" });
    expect(res.files.length).toBeGreaterThan(2);
    expect(res.rows).toBe(20000);
    expect(await read(small, "user_session")).toEqual(await read(one, "user_session"));
  });
});

describe("expressions", () => {
  it("parses the subset and evaluates with SQL NULL semantics", () => {
    const e = parseExpr("CASE WHEN x IS NULL THEN -1 WHEN x % 2 = 0 THEN x / 2 ELSE greatest(x, 10) END");
    expect(evalExpr(e, { x: null })).toBe(-1);
    expect(evalExpr(e, { x: 4 })).toBe(2);
    expect(evalExpr(e, { x: 3 })).toBe(10);
    expect(evalExpr(parseExpr("a AND b"), { a: null, b: false })).toBe(false);
    expect(evalExpr(parseExpr("a OR b"), { a: null, b: false })).toBe(null);
    expect(evalExpr(parseExpr("s IN ('x', 'y')"), { s: "y" })).toBe(true);
    expect(() => parseExpr("foo(x)")).toThrow(/unknown function "foo"/);
    expect(() => parseExpr("x +")).toThrow(/expected a value/);
  });
});

describe("batch and transformRow agree", () => {
  it("every row of a sample through a row-wise workflow", async () => {
    const t =
      await parquet(`SELECT range AS id, CASE WHEN range % 7 = 0 THEN NULL ELSE 'u' || (range % 13) END AS user, (range * 37) % 101 AS item,
      CASE WHEN range % 11 = 0 THEN NULL ELSE (range % 50) * 1.5 END AS price, range % 2 AS click, TIMESTAMP '2024-03-01' + to_seconds(range * 3571) AS ts FROM range(400)`);
    const wf = new Workflow([
      new Rename("item", { postfix: "_raw", keep: true }),
      new Categorify(["user", "item"], { startIndex: 1, freqThreshold: 2 }),
      new FillMissing("price", { strategy: "mean" }),
      new Rename("price", { name: "price_log", keep: true }),
      new LogOp("price_log"),
      new Normalize(["price_log"]),
      new Clip("price", { max: 60 }),
      new JoinGroupby("user", { cont: ["price"], stats: ["mean", "count"] }),
      new TargetEncoding("item", { target: "click", kfold: 3, pSmooth: 5 }),
      new TimeFeatures("ts", { features: ["weekday", "hour", "hour_sin", "hour_cos"] }),
      new Expr("rel", "(price - user_price_mean) / (user_price_mean + 0.00001)"),
      new Filter("item_raw % 5 <> 0"),
    ]);
    await wf.fit(t);
    const out = join(dir, `agree${n++}`);
    await wf.transform(t, out);
    const batch = await read(out, "id");
    await wf.prepareOnline();
    const inputs = await read(t, "id");
    const online = inputs
      .map((r) => wf.transformRow({ ...(r as Row), ts: new Date(r.ts as number) }))
      .filter((r): r is Row => r !== null)
      .map(plainRow);
    expect(batch.length).toBeGreaterThan(300);
    expectRowsClose(online, batch);
  });
});

describe("save and load", () => {
  it("round trip: the loaded workflow transforms the same and serves rows", async () => {
    const t = await parquet(`SELECT range AS id, 'c' || (range % 5) AS c, range * 0.5 AS x FROM range(50)`);
    const wf = new Workflow([
      new Categorify("c"),
      new Normalize("x"),
      new AddMetadata("c", { tags: ["item"], properties: { note: "n" } }),
    ]);
    const before = await run(wf, t, "id");
    const saved = join(dir, "wf-saved");
    wf.save(saved);
    expect(existsSync(join(saved, "workflow.json"))).toBe(true);
    expect(existsSync(join(saved, "categories", "unique.c.parquet"))).toBe(true);
    const loaded = Workflow.load(saved);
    expect(loaded.fitted).toBe(true);
    const out = join(dir, `loaded${n++}`);
    await loaded.transform(t, out);
    expect(await read(out, "id")).toEqual(before);
    await loaded.prepareOnline();
    expect(plainRow(loaded.transformRow({ id: 3, c: "c3", x: 1.5 }) as Row)).toEqual(before[3]);
    expect(loaded.outputColumns()?.find((c) => c.name === "c")?.tags).toEqual(["categorical", "item"]);
  });
});

describe("model hints in schema.json", () => {
  it("a history list names the item id's table and recency pooling; the models read both", async () => {
    const t = await parquet(`SELECT range % 7 AS user_id, 'i' || (range % 13) AS item, range AS ts FROM range(200)`);
    const wf = new Workflow([
      new Categorify("item"),
      new Groupby({ groupBy: ["user_id"], sortBy: ["ts"], aggs: { item: ["list"] } }),
      new AddMetadata("item-list", { properties: { pooling: "recency", domain: { name: "item" } } }),
    ]);
    const out = join(dir, `hints${n++}`);
    await wf.fit(t);
    await wf.transform(t, out);
    const written = JSON.parse(readFileSync(join(out, "schema.json"), "utf8")) as unknown;
    const col = parseSchema(written).find((c) => c.name === "item-list");
    // categorify's range survives next to the new name
    expect(col?.properties.domain).toEqual({ min: 0, max: (col?.properties.cardinality as number) - 1, name: "item" });
    const spec = selectInputs(parseSchema(written));
    expect(spec.categorical.find((c) => c.name === "item-list")).toMatchObject({ pooling: "recency", table: "item" });
  });
});

describe("bad input gives clear errors", () => {
  it("missing column", async () => {
    const t = await parquet(`SELECT 1 AS a`);
    await expect(new Workflow([new Normalize("price")]).fit(t)).rejects.toThrow(
      /column "price" is not in the input \(have: a\)/,
    );
  });
  it("wrong type", async () => {
    const t = await parquet(`SELECT 'x' AS price`);
    await expect(new Workflow([new Normalize("price")]).fit(t)).rejects.toThrow(
      /column "price" has type VARCHAR; expected a number/,
    );
    const fitted = new Workflow([new Categorify("c")]);
    await fitted.fit(await parquet(`SELECT 1 AS c`));
    await expect(fitted.transform(await parquet(`SELECT 'x' AS c`), join(dir, "wt"))).rejects.toThrow(
      /column "c" has type VARCHAR; it was fit on INTEGER/,
    );
  });
  it("empty input", async () => {
    const t = await parquet(`SELECT 1 AS a WHERE false`);
    await expect(new Workflow([new Normalize("a")]).fit(t)).rejects.toThrow(/is empty/);
  });
  it("unreadable parquet and missing files", async () => {
    const bad = join(dir, "bad.parquet");
    writeFileSync(bad, "this is not parquet");
    await expect(new Workflow([new Normalize("a")]).fit(bad)).rejects.toThrow(/cannot read dataset .*bad\.parquet/);
    await expect(new Workflow([new Normalize("a")]).fit(join(dir, "nope.parquet"))).rejects.toThrow(/no such file/);
  });
  it("transform before fit, transformRow before prepareOnline", async () => {
    const t = await parquet(`SELECT 1 AS a`);
    await expect(new Workflow([new Categorify("a")]).transform(t, join(dir, "x"))).rejects.toThrow(/not fitted/);
    const wf = new Workflow([new Categorify("a")]);
    await wf.fit(t);
    expect(() => wf.transformRow({ a: 1 })).toThrow(/prepareOnline/);
  });
});

describe("uniqueRowsByFeatures", () => {
  it("the latest row per id with event_timestamp and created", async () => {
    const t = await parquet(
      `SELECT * FROM (VALUES (1, 10, 'x', TIMESTAMP '2024-01-01 00:00:00'), (1, 11, 'y', TIMESTAMP '2024-01-03 00:00:00'), (2, 20, 'z', TIMESTAMP '2024-01-02 00:00:00')) t(user_id, age, city, ts)`,
    );
    const wf = new Workflow([
      new Categorify("user_id"),
      new AddTags("user_id", ["user_id"]),
      new AddTags(["age", "city"], ["user"]),
      new AddTags("ts", ["time"]),
    ]);
    await wf.fit(t);
    const out = join(dir, `urf${n++}`);
    await wf.transform(t, out);
    const res = await uniqueRowsByFeatures(out, ["user"], "user_id", join(dir, "user_features.parquet"), {
      created: "2024-02-01T00:00:00Z",
    });
    expect(res).toMatchObject({ rows: 2, idColumn: "user_id", featureColumns: ["age", "city"] });
    const rows = await read(res.path, "user_id");
    expect(rows).toEqual([
      {
        user_id: 2,
        age: 11,
        city: "y",
        event_timestamp: Date.parse("2024-01-03T00:00:00Z"),
        created: Date.parse("2024-02-01T00:00:00Z"),
      },
      {
        user_id: 3,
        age: 20,
        city: "z",
        event_timestamp: Date.parse("2024-01-02T00:00:00Z"),
        created: Date.parse("2024-02-01T00:00:00Z"),
      },
    ]);
  });
});
