// DuckDB offline store: pullLatest (materialize's read), validateView, appendRows and writeParquet,
// against real parquet files in a temp folder.
import { mkdirSync, readdirSync, rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDuckDB } from "../common/duckdb.js";
import { ValidationError } from "../common/errors.js";
import type { FeatureViewSpec, FieldSpec, FileSourceSpec } from "../registry/types.js";
import { OfflineDuckDB } from "../stores/offline/db.js";
import { createDuckDBOfflineStore } from "../stores/offline/duckdb.js";
import { writeParquet } from "../stores/offline/parquet.js";
import type { ColumnBatch, OfflineStore } from "../stores/types.js";

const ms = (iso: string): number => Date.parse(iso.endsWith("Z") ? iso : `${iso}Z`);

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
  features: FieldSpec[],
  keys: FieldSpec[] = [{ name: "user_id", dtype: "int64" }],
): FeatureViewSpec {
  return {
    name,
    entities: ["user"],
    entityColumns: keys,
    features,
    ttlSeconds: 0,
    source: src,
    online: true,
    tags: {},
    description: "",
    owner: "",
  };
}

async function collect(batches: AsyncIterable<ColumnBatch>): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = [];
  for await (const b of batches) {
    for (let i = 0; i < b.length; i++) {
      const r: Record<string, unknown> = {};
      for (const [k, col] of Object.entries(b.columns)) r[k] = col[i];
      rows.push(r);
    }
  }
  return rows.sort((a, b) => Number(a.user_id) - Number(b.user_id));
}

async function query(sql: string): Promise<Array<Record<string, unknown>>> {
  const db = await openDuckDB();
  try {
    return (await db.connection.runAndReadAll(sql)).getRowObjectsJS() as Array<Record<string, unknown>>;
  } finally {
    db.close();
  }
}

let stats: FeatureViewSpec;
let statsSrc: FileSourceSpec;
let noCreated: FeatureViewSpec;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fstore-offline-"));
  store = await createDuckDBOfflineStore();
  const p = join(dir, "stats.parquet");
  // [user_id, event_timestamp, created, f]
  const rows: Array<[number, string, string, number]> = [
    [1, "2024-01-01T00:00:00", "2024-01-01T00:00:00", 1],
    [1, "2024-01-02T00:00:00", "2024-01-02T00:00:00", 2],
    [1, "2024-01-03T00:00:00", "2024-01-03T00:00:00", 3],
    [2, "2024-01-02T00:00:00", "2024-01-02T05:00:00", 20],
    [2, "2024-01-02T00:00:00", "2024-01-02T09:00:00", 21], // same event time, latest created: wins
    [2, "2024-01-02T00:00:00", "2024-01-02T07:00:00", 22],
    [3, "2024-01-05T00:00:00", "2024-01-05T00:00:00", 30],
    [4, "2024-01-01T00:00:00", "2024-01-01T00:00:00", 40],
  ];
  await writeParquet(
    p,
    rows.map(([user_id, event_timestamp, created, f]) => ({
      user_id,
      event_timestamp,
      created,
      f_raw: f,
      tags: [f, f + 1],
    })),
    { user_id: "int64", event_timestamp: "timestamp", created: "timestamp", f_raw: "float64", tags: "int64[]" },
  );
  statsSrc = source("stats", p, { createdTimestampColumn: "created", fieldMapping: { f_raw: "f" } });
  stats = view("stats", statsSrc, [
    { name: "f", dtype: "float64" },
    { name: "tags", dtype: "int64[]" },
  ]);
  noCreated = view("stats_nc", source("stats_nc", p, { fieldMapping: { f_raw: "f" } }), [
    { name: "f", dtype: "float64" },
  ]);
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("pullLatest", () => {
  it("takes the latest row per entity with start <= event time <= end, both inclusive", async () => {
    const res = await store.pullLatest(stats, ms("2024-01-01"), ms("2024-01-02"));
    expect(res.total).toBe(3);
    const rows = await collect(res.batches);
    expect(rows).toEqual([
      { user_id: 1, f: 2, tags: [2, 3], __event_ts: ms("2024-01-02"), __created_ts: ms("2024-01-02") },
      { user_id: 2, f: 21, tags: [21, 22], __event_ts: ms("2024-01-02"), __created_ts: ms("2024-01-02T09:00:00") },
      { user_id: 4, f: 40, tags: [40, 41], __event_ts: ms("2024-01-01"), __created_ts: ms("2024-01-01") },
    ]);
  });

  it("excludes rows just outside the window", async () => {
    const res = await store.pullLatest(stats, ms("2024-01-02") + 1, ms("2024-01-05") - 1);
    expect(res.total).toBe(1);
    expect((await collect(res.batches)).map((r) => [r.user_id, r.f])).toEqual([[1, 3]]);
  });

  it("gives created 0 when the source has no created column, and typed arrays", async () => {
    const res = await store.pullLatest(noCreated, ms("2024-01-01"), ms("2024-01-31"), { batchSize: 3 });
    expect(res.total).toBe(4);
    const sizes: number[] = [];
    const rows: Array<Record<string, unknown>> = [];
    for await (const b of res.batches) {
      sizes.push(b.length);
      expect(b.columns.__event_ts).toBeInstanceOf(Float64Array);
      expect(b.columns.f).toBeInstanceOf(Float64Array);
      for (let i = 0; i < b.length; i++)
        rows.push({ user_id: b.columns.user_id[i], f: b.columns.f[i], created: b.columns.__created_ts[i] });
    }
    expect(sizes).toEqual([3, 1]);
    rows.sort((a, b) => Number(a.user_id) - Number(b.user_id));
    expect(rows.map((r) => r.created)).toEqual([0, 0, 0, 0]);
    expect(rows.map((r) => r.f)[0]).toBe(3);
    expect([20, 21, 22]).toContain(rows[1].f); // no created column: any of the tied rows
  });

  it("groups by every column of a composite key", async () => {
    const p = join(dir, "pairs.parquet");
    await writeParquet(
      p,
      [
        { user_id: 1, item_id: 10, event_timestamp: "2024-01-01", clicks: 1 },
        { user_id: 1, item_id: 10, event_timestamp: "2024-01-02", clicks: 2 },
        { user_id: 1, item_id: 11, event_timestamp: "2024-01-01", clicks: 3 },
        { user_id: 2, item_id: 10, event_timestamp: "2024-01-01", clicks: 4 },
      ],
      { user_id: "int64", item_id: "int32", event_timestamp: "timestamp", clicks: "int32" },
    );
    const v = view(
      "pairs",
      source("pairs", p),
      [{ name: "clicks", dtype: "int32" }],
      [
        { name: "user_id", dtype: "int64" },
        { name: "item_id", dtype: "int32" },
      ],
    );
    const res = await store.pullLatest(v, ms("2024-01-01"), ms("2024-01-31"));
    expect(res.total).toBe(3);
    const rows = (await collect(res.batches))
      .map((r) => [r.user_id, r.item_id, r.clicks])
      .sort((a, b) => Number(a[0]) - Number(b[0]) || Number(a[1]) - Number(b[1]));
    expect(rows).toEqual([
      [1, 10, 2],
      [1, 11, 3],
      [2, 10, 4],
    ]);
  });

  it("returns nothing for an empty window", async () => {
    const res = await store.pullLatest(stats, ms("2025-01-01"), ms("2025-02-01"));
    expect(res.total).toBe(0);
    expect(await collect(res.batches)).toEqual([]);
  });
});

describe("retrieval results", () => {
  it("carries list features into Arrow lists and rows, and TIMESTAMPTZ entity times", async () => {
    const job = await store.getHistoricalFeatures({
      entityDf:
        "SELECT * FROM (VALUES (1::BIGINT, '2024-01-02 02:00:00+02'::TIMESTAMPTZ), (3::BIGINT, '2024-01-02 00:00:00+00'::TIMESTAMPTZ)) t(user_id, event_timestamp)",
      views: [
        {
          view: stats,
          features: [
            { name: "tags", outputName: "stats__tags" },
            { name: "f", outputName: "stats__f" },
          ],
        },
      ],
    });
    const rows = await job.toRows();
    expect(rows).toEqual([
      { user_id: 1, event_timestamp: new Date(ms("2024-01-02")), stats__tags: [2, 3], stats__f: 2 },
      { user_id: 3, event_timestamp: new Date(ms("2024-01-02")), stats__tags: null, stats__f: null },
    ]);
    const table = await job.toArrow();
    expect(String(table.schema.fields[2].type)).toBe("List<Int64>");
    expect(Array.from(table.getChild("stats__tags")?.get(0) ?? [])).toEqual([2n, 3n]);
    expect(table.getChild("stats__tags")?.get(1)).toBeNull();
    await job.close();
  });
});

describe("validateView", () => {
  it("accepts a matching source, with compatible widths", async () => {
    await expect(store.validateView(stats)).resolves.toBeUndefined();
    const widened = view(
      "w",
      statsSrc,
      [
        { name: "f", dtype: "float32" },
        { name: "tags", dtype: "int32[]" },
      ],
      [{ name: "user_id", dtype: "int32" }],
    );
    await expect(store.validateView(widened)).resolves.toBeUndefined();
  });

  it("names a missing source file", async () => {
    const v = view("ghost", source("ghost_src", join(dir, "missing.parquet")), [{ name: "f", dtype: "float64" }]);
    await expect(store.validateView(v)).rejects.toThrow(
      `feature view "ghost": source file ${join(dir, "missing.parquet")} does not exist (source "ghost_src")`,
    );
  });

  it("names a missing column and lists what there is", async () => {
    const v = view("stats", statsSrc, [{ name: "nope", dtype: "float64" }]);
    const p = store.validateView(v);
    await expect(p).rejects.toBeInstanceOf(ValidationError);
    await expect(p).rejects.toThrow(
      `feature view "stats": feature column "nope" not found in ${join(dir, "stats.parquet")} (columns: user_id BIGINT, event_timestamp TIMESTAMP, created TIMESTAMP, f_raw DOUBLE, tags BIGINT[])`,
    );
  });

  it("names a column whose type does not fit the schema", async () => {
    const p = join(dir, "users.parquet");
    await writeParquet(p, [{ user_id: 1, event_timestamp: "2024-01-01", age: "31" }], {
      user_id: "int64",
      event_timestamp: "timestamp",
      age: "string",
    });
    const v = view("user_features", source("users", p), [{ name: "age", dtype: "int64" }]);
    await expect(store.validateView(v)).rejects.toThrow(
      `feature view "user_features": column "age" in ${p} is VARCHAR but the schema says int64`,
    );
    const mapped = view("stats", statsSrc, [{ name: "f", dtype: "string" }]);
    await expect(store.validateView(mapped)).rejects.toThrow(
      `feature view "stats": column "f_raw" (mapped to "f") in ${join(dir, "stats.parquet")} is DOUBLE but the schema says string`,
    );
    const list = view("stats", statsSrc, [{ name: "tags", dtype: "string[]" }]);
    await expect(store.validateView(list)).rejects.toThrow(
      /column "tags" in .* is BIGINT\[\] but the schema says string\[\]/,
    );
  });

  it("names a missing timestamp column and a file that is not parquet", async () => {
    const v = view("stats", { ...statsSrc, timestampField: "ts" }, [{ name: "f", dtype: "float64" }]);
    await expect(store.validateView(v)).rejects.toThrow(
      /feature view "stats": timestamp column "ts" not found in .*stats\.parquet/,
    );
    const bad = join(dir, "bad.parquet");
    writeFileSync(bad, "not parquet at all");
    await expect(
      store.validateView(view("bad", source("bad", bad), [{ name: "f", dtype: "float64" }])),
    ).rejects.toThrow(/feature view "bad": cannot read .*bad\.parquet as parquet/);
    const empty = join(dir, "empty_folder");
    mkdirSync(empty);
    await expect(store.validateView(view("e", source("e", empty), [{ name: "f", dtype: "float64" }]))).rejects.toThrow(
      /feature view "e": no parquet files match .*empty_folder/,
    );
  });
});

describe("appendRows", () => {
  it("appends to a parquet file, keeping its column types, through the field mapping", async () => {
    const p = join(dir, "push.parquet");
    await writeParquet(p, [{ user_id: 1, event_timestamp: "2024-02-01", f_raw: 1.5 }], {
      user_id: "int64",
      event_timestamp: "timestamp",
      f_raw: "float32",
    });
    const src = source("push", p, { fieldMapping: { f_raw: "f" } });
    await store.appendRows(src, {
      length: 2,
      columns: { user_id: [2, 1], event_timestamp: ["2024-02-02T00:00:00", ms("2024-02-03")], f: [2.5, 3.5] },
    });
    const described = (await query(`DESCRIBE SELECT * FROM '${p}'`)).map(
      (r) => `${String(r.column_name)} ${String(r.column_type)}`,
    );
    expect(described).toEqual(["user_id BIGINT", "event_timestamp TIMESTAMP", "f_raw FLOAT"]);
    const rows = await query(
      `SELECT user_id::INTEGER AS u, epoch_ms(event_timestamp)::DOUBLE AS t, f_raw::DOUBLE AS f FROM '${p}'`,
    );
    expect(rows).toEqual([
      { u: 1, t: ms("2024-02-01"), f: 1.5 },
      { u: 2, t: ms("2024-02-02"), f: 2.5 },
      { u: 1, t: ms("2024-02-03"), f: 3.5 },
    ]);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp"))).toEqual([]);
    const latest = await collect(
      (await store.pullLatest(view("push", src, [{ name: "f", dtype: "float32" }]), 0, ms("2025-01-01"))).batches,
    );
    expect(latest.map((r) => [r.user_id, r.f])).toEqual([
      [1, 3.5],
      [2, 2.5],
    ]);
  });

  it("writes part files into a folder source, and creates a file source that does not exist yet", async () => {
    const folder = join(dir, "parts");
    const src = source("parts", folder);
    await store.appendRows(src, {
      length: 1,
      columns: { user_id: [7], event_timestamp: [new Date(ms("2024-03-01"))], f: [0.5] },
    });
    await store.appendRows(src, { length: 1, columns: { user_id: [7], event_timestamp: ["2024-03-02"], f: [1] } });
    expect(readdirSync(folder).filter((f) => f.endsWith(".parquet")).length).toBe(2);
    const latest = await collect(
      (await store.pullLatest(view("parts", src, [{ name: "f", dtype: "float64" }]), 0, ms("2025-01-01"))).batches,
    );
    expect(latest.map((r) => [r.user_id, r.f, r.__event_ts])).toEqual([[7, 1, ms("2024-03-02")]]);

    const fresh = join(dir, "new", "fresh.parquet");
    await store.appendRows(source("fresh", fresh), {
      length: 1,
      columns: { user_id: [1], event_timestamp: ["2024-03-01"], f: [2] },
    });
    // a new file takes its types from the values: whole numbers become BIGINT
    expect(await query(`SELECT user_id, f FROM '${fresh}'`)).toEqual([{ user_id: 1n, f: 2n }]);
  });

  it("refuses unknown columns, a missing timestamp and bad values, leaving the file as it was", async () => {
    const p = join(dir, "strict.parquet");
    await writeParquet(p, [{ user_id: 1, event_timestamp: "2024-02-01", f: 1 }], {
      user_id: "int64",
      event_timestamp: "timestamp",
      f: "float64",
    });
    const src = source("strict", p);
    await expect(
      store.appendRows(src, { length: 1, columns: { user_id: [1], event_timestamp: ["2024-02-02"], g: [1] } }),
    ).rejects.toThrow(/source "strict": columns "g" are not in .*strict\.parquet/);
    await expect(store.appendRows(src, { length: 1, columns: { user_id: [1], f: [1] } })).rejects.toThrow(
      /lack the timestamp column "event_timestamp"/,
    );
    await expect(
      store.appendRows(src, { length: 1, columns: { user_id: [1], event_timestamp: ["2024-02-02"], f: ["x"] } }),
    ).rejects.toThrow(
      /appending to .*strict\.parquet: column "f" row 0: expected a number \(float64\), got string "x"/,
    );
    await expect(
      store.appendRows(src, { length: 1, columns: { user_id: [1.5], event_timestamp: ["2024-02-02"], f: [1] } }),
    ).rejects.toThrow(/column "user_id" row 0: expected an integer/);
    expect(await query(`SELECT count(*)::INTEGER AS n FROM '${p}'`)).toEqual([{ n: 1 }]);
  });
});

describe("writeParquet", () => {
  it("writes exact types from rows and from columns", async () => {
    const p = join(dir, "typed.parquet");
    await writeParquet(
      p,
      {
        length: 2,
        columns: {
          id: [1, 2n ** 60n],
          ts: [new Date(ms("2024-01-01")), "2024-01-02T03:04:05.678"],
          x: new Float32Array([0.5, 1.5]),
          s: ["a", null],
          v: [[1.5], null],
          b: [true, false],
          raw: [new Uint8Array([1, 2]), null],
        },
      },
      { id: "int64", ts: "timestamp", x: "float32", s: "string", v: "float32[]", b: "bool", raw: "bytes" },
    );
    const described = (await query(`DESCRIBE SELECT * FROM '${p}'`)).map(
      (r) => `${String(r.column_name)} ${String(r.column_type)}`,
    );
    expect(described).toEqual([
      "id BIGINT",
      "ts TIMESTAMP",
      "x FLOAT",
      "s VARCHAR",
      "v FLOAT[]",
      "b BOOLEAN",
      "raw BLOB",
    ]);
    const rows = await query(`SELECT id::VARCHAR AS id, epoch_ms(ts)::DOUBLE AS ts, s FROM '${p}'`);
    expect(rows).toEqual([
      { id: "1", ts: ms("2024-01-01"), s: "a" },
      { id: String(2n ** 60n), ts: ms("2024-01-02T03:04:05.678"), s: null },
    ]);
  });

  it("names the column and row of a bad value, and untyped columns", async () => {
    await expect(writeParquet(join(dir, "x.parquet"), [{ id: 1.5 }], { id: "int64" })).rejects.toThrow(
      "writing " + join(dir, "x.parquet") + ': column "id" row 0: expected an integer (int64), got number 1.5',
    );
    await expect(writeParquet(join(dir, "x.parquet"), [{ id: 1, extra: 2 }], { id: "int64" })).rejects.toThrow(
      /row 0 has column "extra" with no type/,
    );
  });
});

describe("DuckDB settings (feature_store.yaml offline_store)", () => {
  it("applies memory_limit, threads and temp_directory to the instance, and queries run under them", async () => {
    const spill = join(dir, "spill");
    const duck = await OfflineDuckDB.create({ memoryLimitBytes: 256 * 2 ** 20, threads: 1, tempDirectory: spill });
    try {
      const [s] = await duck.rows(
        "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t, current_setting('temp_directory') AS d",
      );
      expect(s).toEqual({ m: "256.0 MiB", t: 1n, d: spill });
      // common/duckdb's settings, on the main connection and on a stream's own connection
      const common =
        "SELECT current_setting('TimeZone') AS tz, current_setting('autoinstall_known_extensions') AS auto";
      expect(await duck.rows(common)).toEqual([{ tz: "UTC", auto: false }]);
      const stream = await duck.connect();
      try {
        expect((await stream.runAndReadAll(common)).getRowObjectsJS()).toEqual([{ tz: "UTC", auto: false }]);
      } finally {
        stream.closeSync();
      }
    } finally {
      await duck.close();
    }
    const limited = await createDuckDBOfflineStore({ memoryLimitBytes: 128 * 2 ** 20, threads: 1 });
    try {
      const pulled = await limited.pullLatest(stats, ms("2024-01-01T00:00:00"), ms("2024-01-03T00:00:00"));
      expect(await collect(pulled.batches)).toEqual(
        await collect((await store.pullLatest(stats, ms("2024-01-01T00:00:00"), ms("2024-01-03T00:00:00"))).batches),
      );
    } finally {
      await limited.close();
    }
  });
});
