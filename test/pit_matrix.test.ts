// Point-in-time join matrix for the DuckDB offline store, against real parquet files. Every expected value
// is written out by hand from the source rows below.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tableFromArrays, vectorFromArray, TimestampMillisecond, Int64, Table } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDuckDB } from "../common/duckdb.js";
import { ValidationError } from "../common/errors.js";
import type { FeatureViewSpec, FieldSpec, FileSourceSpec } from "../registry/types.js";
import { createDuckDBOfflineStore } from "../stores/offline/duckdb.js";
import { writeParquet } from "../stores/offline/parquet.js";
import type { HistoricalViewRequest, OfflineStore } from "../stores/types.js";

const ms = (iso: string): number => Date.parse(iso.endsWith("Z") ? iso : `${iso}Z`);
const DAY = 86_400;

let dir: string;
let store: OfflineStore;

function source(name: string, path: string, extra: Partial<FileSourceSpec> = {}): FileSourceSpec {
  return {
    type: "file",
    name,
    path,
    timestampField: "event_timestamp",
    fieldMapping: {},
    description: "",
    tags: {},
    ...extra,
  };
}

function view(
  name: string,
  src: FileSourceSpec,
  keys: FieldSpec[],
  features: FieldSpec[],
  ttlSeconds: number,
): FeatureViewSpec {
  return {
    name,
    entities: keys.map((k) => k.name.replace(/_id$/, "")),
    entityColumns: keys,
    features,
    ttlSeconds,
    source: src,
    online: true,
    tags: {},
    description: "",
    owner: "",
  };
}

let userFeatures: FeatureViewSpec; // ttl 1 day, created column, "score" mapped from "score_raw"
let userLifetime: FeatureViewSpec; // same source, ttl 0 (no limit)
let userItem: FeatureViewSpec; // composite key (user_id, item_id)

const feats = (v: FeatureViewSpec, names: string[], full = false): HistoricalViewRequest => ({
  view: v,
  features: names.map((n) => ({ name: n, outputName: full ? `${v.name}__${n}` : n })),
});

// source rows: [user_id, event_timestamp, created, age, score_raw]
const USER_ROWS: Array<[number, string, string, number, number]> = [
  [1, "2024-01-09T12:00:00", "2024-01-09T12:00:00", 10, 1.0],
  [1, "2024-01-10T00:00:00", "2024-01-10T00:00:00", 11, 1.1], // exactly at the entity time of row 0
  [1, "2024-01-10T06:00:00", "2024-01-10T06:00:00", 12, 1.2], // after it
  [2, "2024-01-05T00:00:00", "2024-01-05T00:00:00", 20, 2.0], // 5 days before 01-10: outside ttl 1d
  [3, "2024-01-09T00:00:00", "2024-01-09T01:00:00", 30, 3.0], // three rows at the same event time:
  [3, "2024-01-09T00:00:00", "2024-01-09T05:00:00", 31, 3.1], //   the latest created wins
  [3, "2024-01-09T00:00:00", "2024-01-09T03:00:00", 32, 3.2],
  [4, "2024-01-09T12:00:00", "2024-01-12T00:00:00", 40, 4.0], // backfilled later (created after the entity time)
  [4, "2024-01-09T06:00:00", "2024-01-09T06:00:00", 41, 4.1],
  [5, "2024-01-09T00:00:00", "2024-01-09T00:00:00", 50, 5.0], // exactly ttl before 2024-01-10
];

// entity rows: [user_id, event_timestamp] with the expected age for user_features (ttl 1d) and user_lifetime (ttl 0)
const ENTITY: Array<{
  user_id: number;
  ts: string;
  age: number | null;
  lifetimeAge: number | null;
  filteredAge: number | null;
}> = [
  { user_id: 1, ts: "2024-01-10T00:00:00", age: 11, lifetimeAge: 11, filteredAge: 11 }, // at the entity time: inclusive
  { user_id: 1, ts: "2024-01-10T03:00:00", age: 11, lifetimeAge: 11, filteredAge: 11 }, // the 06:00 row is in the future
  { user_id: 1, ts: "2024-01-09T11:59:59", age: null, lifetimeAge: null, filteredAge: null }, // before any row
  { user_id: 2, ts: "2024-01-10T00:00:00", age: null, lifetimeAge: 20, filteredAge: null }, // outside ttl; ttl 0 has no limit
  { user_id: 2, ts: "2024-01-05T12:00:00", age: 20, lifetimeAge: 20, filteredAge: 20 },
  { user_id: 3, ts: "2024-01-09T10:00:00", age: 31, lifetimeAge: 31, filteredAge: 31 }, // tie broken by created
  { user_id: 4, ts: "2024-01-10T00:00:00", age: 40, lifetimeAge: 40, filteredAge: 41 }, // filter drops the backfill
  { user_id: 99, ts: "2024-01-10T00:00:00", age: null, lifetimeAge: null, filteredAge: null }, // unknown entity
  { user_id: 1, ts: "2024-01-10T00:00:00", age: 11, lifetimeAge: 11, filteredAge: 11 }, // duplicate of row 0, kept
  { user_id: 5, ts: "2024-01-10T00:00:00", age: 50, lifetimeAge: 50, filteredAge: 50 }, // exactly at the ttl bound
  { user_id: 5, ts: "2024-01-10T00:00:00.001", age: null, lifetimeAge: 50, filteredAge: null }, // 1 ms past it
];
const SCORE_OF_AGE: Record<number, number> = {
  10: 1.0,
  11: 1.1,
  12: 1.2,
  20: 2.0,
  30: 3.0,
  31: 3.1,
  32: 3.2,
  40: 4.0,
  41: 4.1,
  50: 5.0,
};

const entityRows = (): Array<Record<string, unknown>> =>
  ENTITY.map((e) => ({ user_id: e.user_id, event_timestamp: new Date(ms(e.ts)) }));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fstore-pit-"));
  const userPath = join(dir, "users.parquet");
  await writeParquet(
    userPath,
    USER_ROWS.map(([user_id, ts, created, age, score_raw]) => ({
      user_id,
      event_timestamp: ts,
      created,
      age,
      score_raw,
    })),
    { user_id: "int64", event_timestamp: "timestamp", created: "timestamp", age: "int64", score_raw: "float64" },
  );
  const userSrc = source("users", userPath, {
    createdTimestampColumn: "created",
    fieldMapping: { score_raw: "score" },
  });
  const keys: FieldSpec[] = [{ name: "user_id", dtype: "int64" }];
  const fs: FieldSpec[] = [
    { name: "age", dtype: "int64" },
    { name: "score", dtype: "float64" },
  ];
  userFeatures = view("user_features", userSrc, keys, fs, DAY);
  userLifetime = view("user_lifetime", userSrc, keys, fs, 0);

  const uiPath = join(dir, "user_item.parquet");
  await writeParquet(
    uiPath,
    [
      { user_id: 1, item_id: 100, event_timestamp: "2024-01-09T00:00:00", clicks: 5 },
      { user_id: 1, item_id: 101, event_timestamp: "2024-01-09T00:00:00", clicks: 7 },
      { user_id: 2, item_id: 100, event_timestamp: "2024-01-09T00:00:00", clicks: 9 },
      { user_id: 2, item_id: 100, event_timestamp: "2024-01-11T00:00:00", clicks: 99 }, // future for every entity row
    ],
    { user_id: "int64", item_id: "int32", event_timestamp: "timestamp", clicks: "int32" },
  );
  userItem = view(
    "user_item",
    source("user_item", uiPath),
    [
      { name: "user_id", dtype: "int64" },
      { name: "item_id", dtype: "int32" },
    ],
    [{ name: "clicks", dtype: "int32" }],
    0,
  );
  store = await createDuckDBOfflineStore();
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

function expectMatrix(rows: Array<Record<string, unknown>>, key: "age" | "lifetimeAge" | "filteredAge" = "age"): void {
  expect(rows.length).toBe(ENTITY.length);
  rows.forEach((r, i) => {
    const e = ENTITY[i];
    expect(r.user_id, `row ${i}`).toBe(e.user_id);
    expect((r.event_timestamp as Date).getTime(), `row ${i}`).toBe(ms(e.ts));
    expect(r.age, `row ${i} age`).toBe(e[key]);
    expect(r.score, `row ${i} score`).toBe(e[key] === null ? null : SCORE_OF_AGE[e[key] as number]);
  });
}

describe("point-in-time join", () => {
  it("picks the latest row within ttl at or before each entity row, in input order", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: entityRows(),
      views: [feats(userFeatures, ["age", "score"])],
    });
    expect(await job.columns()).toEqual(["user_id", "event_timestamp", "age", "score"]);
    expectMatrix(await job.toRows());
    await job.close();
  });

  it("reads a folder of part files the same way", async () => {
    const folder = join(dir, "users_parts");
    const types = {
      user_id: "int64",
      event_timestamp: "timestamp",
      created: "timestamp",
      age: "int64",
      score_raw: "float64",
    } as const;
    const rows = USER_ROWS.map(([user_id, ts, created, age, score_raw]) => ({
      user_id,
      event_timestamp: ts,
      created,
      age,
      score_raw,
    }));
    await writeParquet(
      join(folder, "part-0.parquet"),
      rows.filter((_, i) => i % 2 === 0),
      types,
    );
    await writeParquet(
      join(folder, "day=2", "part-1.parquet"),
      rows.filter((_, i) => i % 2 === 1),
      types,
    );
    const v = { ...userFeatures, source: { ...(userFeatures.source as FileSourceSpec), path: folder } };
    const job = await store.getHistoricalFeatures({ entityDf: entityRows(), views: [feats(v, ["age", "score"])] });
    expectMatrix(await job.toRows());
    await job.close();
  });

  it("ttl 0 means no limit", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: entityRows(),
      views: [feats(userLifetime, ["age", "score"])],
    });
    expectMatrix(await job.toRows(), "lifetimeAge");
    await job.close();
  });

  it("filterByCreatedTimestamp ignores rows created after the entity time", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: entityRows(),
      views: [feats(userFeatures, ["age", "score"])],
      filterByCreatedTimestamp: true,
    });
    expectMatrix(await job.toRows(), "filteredAge");
    await job.close();
  });

  it("joins two views with different ttls in one call, with full feature names", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: entityRows(),
      views: [feats(userFeatures, ["age"], true), feats(userLifetime, ["age", "score"], true)],
    });
    expect(await job.columns()).toEqual([
      "user_id",
      "event_timestamp",
      "user_features__age",
      "user_lifetime__age",
      "user_lifetime__score",
    ]);
    const none = await store.getHistoricalFeatures({ entityDf: entityRows(), views: [feats(userFeatures, [])] });
    expect(await none.columns()).toEqual(["user_id", "event_timestamp"]);
    expect((await none.toRows()).length).toBe(ENTITY.length);
    await none.close();
    const rows = await job.toRows();
    expect(rows.map((r) => r.user_features__age)).toEqual(ENTITY.map((e) => e.age));
    expect(rows.map((r) => r.user_lifetime__age)).toEqual(ENTITY.map((e) => e.lifetimeAge));
    expect(rows.map((r) => r.user_lifetime__score)).toEqual(
      ENTITY.map((e) => (e.lifetimeAge === null ? null : SCORE_OF_AGE[e.lifetimeAge])),
    );
    await job.close();
  });

  it("matches a composite key on every key column", async () => {
    const t = new Date(ms("2024-01-10T00:00:00"));
    const job = await store.getHistoricalFeatures({
      entityDf: [
        { user_id: 1, item_id: 100, event_timestamp: t },
        { user_id: 1, item_id: 101, event_timestamp: t },
        { user_id: 2, item_id: 101, event_timestamp: t },
        { user_id: 2, item_id: 100, event_timestamp: t },
        { user_id: 1, item_id: 100, event_timestamp: new Date(ms("2024-01-08T00:00:00")) },
      ],
      views: [feats(userItem, ["clicks"], true)],
    });
    expect((await job.toRows()).map((r) => r.user_item__clicks)).toEqual([5, 7, null, 9, null]);
    await job.close();
  });

  it("keeps extra entity df columns and their order", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: [{ label: 1.5, event_timestamp: "2024-01-10T00:00:00", user_id: 1, note: "a" }],
      views: [feats(userFeatures, ["age"])],
    });
    expect(await job.columns()).toEqual(["label", "event_timestamp", "user_id", "note", "age"]);
    const [row] = await job.toRows();
    expect(row).toEqual({
      label: 1.5,
      event_timestamp: new Date(ms("2024-01-10T00:00:00")),
      user_id: 1,
      note: "a",
      age: 11,
    });
    await job.close();
  });
});

describe("entity df inputs", () => {
  it("accepts a parquet path", async () => {
    const p = join(dir, "entity.parquet");
    await writeParquet(p, entityRows(), { user_id: "int64", event_timestamp: "timestamp" });
    const job = await store.getHistoricalFeatures({ entityDf: p, views: [feats(userFeatures, ["age", "score"])] });
    expectMatrix(await job.toRows());
    await job.close();
  });

  it("accepts a SQL query, with INTEGER keys against BIGINT source keys and string timestamps", async () => {
    const values = ENTITY.map((e) => `(${e.user_id}::INTEGER, '${e.ts}')`).join(", ");
    const sql = `SELECT * FROM (VALUES ${values}) t(user_id, event_timestamp)`;
    const job = await store.getHistoricalFeatures({
      entityDf: `${sql};`,
      views: [feats(userFeatures, ["age", "score"])],
    });
    expectMatrix(await job.toRows());
    await job.close();
  });

  it("accepts an Arrow table", async () => {
    const table = new Table({
      user_id: vectorFromArray(
        ENTITY.map((e) => BigInt(e.user_id)),
        new Int64(),
      ),
      event_timestamp: vectorFromArray(
        ENTITY.map((e) => new Date(ms(e.ts))),
        new TimestampMillisecond(),
      ),
    });
    const job = await store.getHistoricalFeatures({ entityDf: table, views: [feats(userFeatures, ["age", "score"])] });
    expectMatrix(await job.toRows());
    await job.close();
  });

  it("accepts ISO strings (no zone = UTC, or with an offset) and epoch ms numbers as entity times", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: [
        { user_id: 1, event_timestamp: "2024-01-10T00:00:00" },
        { user_id: 1, event_timestamp: "2024-01-10T01:00:00+02:00" }, // 2024-01-09T23:00Z: before row 11
        { user_id: 1, event_timestamp: ms("2024-01-10T00:00:00") },
      ],
      views: [feats(userFeatures, ["age"])],
    });
    const rows = await job.toRows();
    expect(rows.map((r) => r.age)).toEqual([11, 10, 11]);
    expect(rows.map((r) => (r.event_timestamp as Date).toISOString())).toEqual([
      "2024-01-10T00:00:00.000Z",
      "2024-01-09T23:00:00.000Z",
      "2024-01-10T00:00:00.000Z",
    ]);
    await job.close();
  });

  it("accepts a custom timestamp column", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: [{ user_id: 3, asof: "2024-01-09T10:00:00" }],
      timestampColumn: "asof",
      views: [feats(userFeatures, ["age"])],
    });
    expect((await job.toRows())[0].age).toBe(31);
    await job.close();
  });

  it("keeps the input order of shuffled rows", async () => {
    // 300 rows drawn from the matrix in a fixed shuffled order
    const order = Array.from({ length: 300 }, (_, i) => (i * 7 + 3) % ENTITY.length);
    const df = order.map((k) => ({ user_id: ENTITY[k].user_id, event_timestamp: ms(ENTITY[k].ts), k }));
    const job = await store.getHistoricalFeatures({ entityDf: df, views: [feats(userFeatures, ["age"])] });
    const rows = await job.toRows();
    expect(rows.map((r) => r.k)).toEqual(order);
    expect(rows.map((r) => r.age)).toEqual(order.map((k) => ENTITY[k].age));
    await job.close();
  });
});

describe("results", () => {
  it("round-trips through parquet and Arrow with proper types", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf: entityRows(),
      views: [feats(userFeatures, ["age", "score"])],
    });
    const out = join(dir, "out", "training.parquet");
    await job.toParquet(out);
    const db = await openDuckDB();
    const conn = db.connection;
    const described = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM '${out}'`))
      .getRowObjectsJS()
      .map((r) => `${String(r.column_name)} ${String(r.column_type)}`);
    expect(described).toEqual(["user_id BIGINT", "event_timestamp TIMESTAMP", "age BIGINT", "score DOUBLE"]);
    const back = (
      await conn.runAndReadAll(
        `SELECT user_id::DOUBLE AS user_id, epoch_ms(event_timestamp)::DOUBLE AS ts, age::DOUBLE AS age, score FROM '${out}'`,
      )
    ).getRowObjectsJS();
    db.close();
    expect(back.map((r) => r.age)).toEqual(ENTITY.map((e) => e.age));
    expect(back.map((r) => r.ts)).toEqual(ENTITY.map((e) => ms(e.ts)));

    const table = await job.toArrow();
    expect(table.numRows).toBe(ENTITY.length);
    expect(table.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual([
      "user_id:Int64",
      "event_timestamp:Timestamp<MILLISECOND>",
      "age:Int64",
      "score:Float64",
    ]);
    expect(table.getChild("age")?.toArray().length).toBe(ENTITY.length);
    expect([...(table.getChild("age") ?? [])]).toEqual(ENTITY.map((e) => (e.age === null ? null : BigInt(e.age))));
    expect(table.getChild("event_timestamp")?.get(0)).toBe(ms(ENTITY[0].ts));

    let n = 0;
    for await (const b of job.batches()) {
      n += b.length;
      expect(Object.keys(b.columns)).toEqual(["user_id", "event_timestamp", "age", "score"]);
      expect(b.columns.event_timestamp[0]).toBe(ms(ENTITY[0].ts));
    }
    expect(n).toBe(ENTITY.length);
    await job.close();
  });

  it("reads an Arrow table built by tableFromArrays (dictionary strings) as an entity df", async () => {
    const table = tableFromArrays({ user_id: new Float64Array([3]), event_timestamp: ["2024-01-09T10:00:00"] });
    const job = await store.getHistoricalFeatures({ entityDf: table, views: [feats(userFeatures, ["age"])] });
    expect((await job.toRows())[0].age).toBe(31);
    await job.close();
  });
});

describe("bad input", () => {
  it("names a missing timestamp column", async () => {
    await expect(
      store.getHistoricalFeatures({
        entityDf: [{ user_id: 1, ts: "2024-01-01" }],
        views: [feats(userFeatures, ["age"])],
      }),
    ).rejects.toThrow(/entity df: no timestamp column "event_timestamp" \(columns: user_id BIGINT, ts VARCHAR\)/);
  });

  it("names a missing join key column", async () => {
    const p = store.getHistoricalFeatures({
      entityDf: [{ item_id: 1, event_timestamp: "2024-01-01" }],
      views: [feats(userFeatures, ["age"])],
    });
    await expect(p).rejects.toBeInstanceOf(ValidationError);
    await expect(p).rejects.toThrow(/feature view "user_features": the entity df has no join key column "user_id"/);
  });

  it("refuses a string key against an integer source key, naming the column", async () => {
    await expect(
      store.getHistoricalFeatures({
        entityDf: [{ user_id: "1", event_timestamp: "2024-01-10" }],
        views: [feats(userFeatures, ["age"])],
      }),
    ).rejects.toThrow(/join key "user_id" is VARCHAR in the entity df but BIGINT in .*users\.parquet/);
  });

  it("names a missing source file", async () => {
    const missing = view(
      "ghost",
      source("ghost", join(dir, "nope.parquet")),
      [{ name: "user_id", dtype: "int64" }],
      [{ name: "age", dtype: "int64" }],
      0,
    );
    await expect(
      store.getHistoricalFeatures({ entityDf: entityRows(), views: [feats(missing, ["age"])] }),
    ).rejects.toThrow(new RegExp(`feature view "ghost": source file .*nope\\.parquet does not exist`));
  });

  it("names an unparseable entity timestamp", async () => {
    await expect(
      store.getHistoricalFeatures({
        entityDf: [{ user_id: 1, event_timestamp: "yesterday-ish" }],
        views: [feats(userFeatures, ["age"])],
      }),
    ).rejects.toThrow(
      /entity df: column "event_timestamp" row 0: "yesterday-ish" is not a timestamp: expected an ISO-8601 date or time/,
    );
  });

  it("refuses an output name that clashes with an entity column", async () => {
    await expect(
      store.getHistoricalFeatures({
        entityDf: [{ user_id: 1, age: 3, event_timestamp: "2024-01-10" }],
        views: [feats(userFeatures, ["age"])],
      }),
    ).rejects.toThrow(/output column "age" clashes with an entity df column/);
  });

  it("names a parquet entity df path that does not exist", async () => {
    await expect(
      store.getHistoricalFeatures({ entityDf: join(dir, "missing.parquet"), views: [feats(userFeatures, ["age"])] }),
    ).rejects.toThrow(/entity df: parquet file .*missing\.parquet does not exist/);
  });
});
