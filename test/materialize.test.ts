// Materializing several views of the same entities together: alignByKey's rounds, SQLite's writeViews,
// and the whole path through FeatureStore.materialize on real parquet, DuckDB, SQLite and Redis.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { openDuckDB } from "../common/duckdb.js";
import type { Dtype, FeatureViewSpec } from "../registry/types.js";
import { FeatureStore } from "../stores/feature_store.js";
import { alignByKey, defaultMergeRows, openStream, sliceBatch } from "../stores/materialize.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { createOnlineStore } from "../stores/online/index.js";
import { sqliteTableName } from "../stores/online/sqlite.js";
import type { ColumnBatch, OnlineStore, OnlineWriteBatch } from "../stores/types.js";
import { T0, tempDir, turnCounter, viewSpec } from "./repo_fixture.js";

const tmp = tempDir("materialize");
afterAll(() => tmp.cleanup());

const KEY = { entityColumns: [{ name: "user_id", dtype: "int64" as Dtype }] };

/** A stream of `keys` in batches of `size`, with a `v` column; `closed` is set when its iterator is closed. */
function keyStream(keys: number[], size: number): { batches: AsyncIterable<ColumnBatch>; closed: () => boolean } {
  let closed = false;
  async function* gen(): AsyncGenerator<ColumnBatch> {
    try {
      for (let i = 0; i < keys.length; i += size) {
        const part = keys.slice(i, i + size);
        await new Promise((r) => setImmediate(r));
        yield { length: part.length, columns: { user_id: part, v: Float64Array.from(part, (k) => k * 10) } };
      }
    } finally {
      closed = true;
    }
  }
  return { batches: gen(), closed: () => closed };
}

const textOrder = (keys: number[]) =>
  [...keys].sort((a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));

/** Every (stream, key, v) alignByKey yields, round by round. */
async function rounds(streams: Array<{ keys: number[]; size: number }>, rowsPerRound: number) {
  const out: Array<Array<{ stream: number; keys: number[]; v: number[] }>> = [];
  const opened = streams.map((s) => keyStream(s.keys, s.size));
  for await (const round of alignByKey(
    opened.map((o) => openStream(KEY, o.batches)),
    rowsPerRound,
  )) {
    out.push(
      round.map((s) => ({
        stream: s.stream,
        keys: Array.from(s.batch.columns.user_id as number[]),
        v: Array.from(s.batch.columns.v as Float64Array),
      })),
    );
  }
  return { out, closed: opened.map((o) => o.closed()) };
}

describe("alignByKey", () => {
  it("yields every row of every stream once, a key range at a time", async () => {
    const a = textOrder(Array.from({ length: 500 }, (_, i) => i + 1));
    const b = textOrder(Array.from({ length: 200 }, (_, i) => 2 * i + 300));
    const c = textOrder([7]);
    const d: number[] = [];
    const { out, closed } = await rounds(
      [
        { keys: a, size: 64 },
        { keys: b, size: 33 },
        { keys: c, size: 10 },
        { keys: d, size: 10 },
      ],
      40,
    );
    for (const [i, keys] of [a, b, c].entries()) {
      const got = out.flatMap((r) => r.filter((s) => s.stream === i).flatMap((s) => s.keys));
      expect(got).toEqual(keys);
    }
    // values travel with their keys (typed-array columns sliced with them)
    for (const r of out) for (const s of r) expect(s.v).toEqual(s.keys.map((k) => k * 10));
    // aligned: no round holds a key (as text) below one an earlier round already passed
    let high = "";
    for (const r of out) {
      const texts = r.flatMap((s) => s.keys.map(String));
      expect(texts.every((t) => t >= high)).toBe(true);
      high = texts.reduce((m, t) => (t > m ? t : m), high);
    }
    // about rowsPerRound rows per round, not a whole batch of each stream
    expect(Math.max(...out.map((r) => r.reduce((n, s) => n + s.keys.length, 0)))).toBeLessThanOrEqual(40 + 64 + 33);
    expect(out.length).toBeGreaterThan(700 / (40 + 64 + 33));
    expect(closed).toEqual([true, true, true, true]);
  });

  it("still yields every row once when the input is not sorted", async () => {
    const shuffled = (n: number, seed: number) =>
      Array.from({ length: n }, (_, i) => i).sort((x, y) => ((x * seed) % 97) - ((y * seed) % 97) || x - y);
    const streams = [
      { keys: shuffled(300, 13), size: 17 },
      { keys: shuffled(120, 31), size: 50 },
      { keys: shuffled(5, 7), size: 2 },
    ];
    const { out } = await rounds(streams, 12);
    streams.forEach((s, i) => {
      const got = out.flatMap((r) => r.filter((x) => x.stream === i).flatMap((x) => x.keys));
      expect(got).toEqual(s.keys);
    });
  });

  it("closes every stream when the consumer stops early", async () => {
    const opened = [keyStream([1, 2, 3, 4, 5, 6], 2), keyStream([1, 3, 5], 1)];
    for await (const round of alignByKey(
      opened.map((o) => openStream(KEY, o.batches)),
      2,
    )) {
      expect(round.length).toBeGreaterThan(0);
      break;
    }
    expect(opened.map((o) => o.closed())).toEqual([true, true]);
  });

  it("slices plain and typed columns", () => {
    const b: ColumnBatch = { length: 4, columns: { a: [1, 2, 3, 4], f: Float64Array.of(1, 2, 3, 4) } };
    const s = sliceBatch(b, 1, 3);
    expect(s.length).toBe(2);
    expect(s.columns.a).toEqual([2, 3]);
    expect(Array.from(s.columns.f as Float64Array)).toEqual([2, 3]);
    expect(sliceBatch(b, 0, 4)).toBe(b);
  });
});

// ------------------------------------------------------------------ SQLite writeViews

const view = (name: string, features: Array<[string, Dtype]>): FeatureViewSpec =>
  viewSpec(name, [["user_id", "int64"]], features);

const clicks = view("clicks", [["n", "int64"]]);
const scores = view("scores", [
  ["s", "float64"],
  ["label", "string"],
]);
const ages = view("ages", [["age", "int64"]]);

function batchOf(
  v: FeatureViewSpec,
  keys: number[],
  ev: (k: number) => number,
  value: (k: number) => Record<string, unknown>,
): OnlineWriteBatch {
  const features: Record<string, unknown[]> = {};
  for (const f of v.features) features[f.name] = keys.map((k) => value(k)[f.name] ?? null);
  return {
    length: keys.length,
    keys: { user_id: keys },
    features,
    eventTs: keys.map(ev),
    createdTs: keys.map(() => 0),
  };
}

const batches = () => {
  const keysA = textOrder(Array.from({ length: 150 }, (_, i) => i + 1));
  const keysB = textOrder(Array.from({ length: 90 }, (_, i) => 3 * i + 2));
  const keysC = textOrder([5, 77, 140, 1000]);
  return [
    {
      view: clicks,
      batch: batchOf(
        clicks,
        keysA,
        () => 100,
        (k) => ({ n: k }),
      ),
    },
    {
      view: scores,
      batch: batchOf(
        scores,
        keysB,
        () => 200,
        (k) => ({ s: k / 4, label: `u${k}` }),
      ),
    },
    {
      view: ages,
      batch: batchOf(
        ages,
        keysC,
        () => 300,
        (k) => ({ age: k % 90 }),
      ),
    },
  ];
};

function tableRows(path: string): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare(
        `SELECT entity_key, view, event_ts, created_ts, hex(frame) AS frame FROM "${sqliteTableName("p", clicks)}" ORDER BY entity_key, view`,
      )
      .all();
  } finally {
    db.close();
  }
}

describe("SQLite writeViews", () => {
  const open = async (name: string) => {
    const store = await createOnlineStore({ type: "sqlite", path: join(tmp.dir, `${name}.db`) });
    await store.update("p", [clicks, scores, ages], []);
    return store;
  };

  it("stores exactly what writing view by view stores, and counts each view's rows", async () => {
    const merged = await open("merged");
    const single = await open("single");
    try {
      expect(await merged.writeViews!("p", batches())).toEqual([150, 90, 4]);
      for (const { view: v, batch } of batches()) await single.write("p", v, batch);
    } finally {
      await merged.close();
      await single.close();
    }
    const rows = tableRows(join(tmp.dir, "merged.db"));
    expect(rows).toHaveLength(244);
    expect(rows).toEqual(tableRows(join(tmp.dir, "single.db")));
  });

  it("counts per view when some rows are older than the stored ones, in statements that mix views", async () => {
    const store = await open("skips");
    try {
      // newer rows for every third key of clicks and every key of scores first
      const clicksNewer = textOrder(Array.from({ length: 50 }, (_, i) => 3 * i + 1));
      await store.write(
        "p",
        clicks,
        batchOf(
          clicks,
          clicksNewer,
          () => 500,
          (k) => ({ n: -k }),
        ),
      );
      await store.write(
        "p",
        scores,
        batchOf(
          scores,
          textOrder(Array.from({ length: 90 }, (_, i) => 3 * i + 2)),
          () => 900,
          () => ({ s: -1, label: "new" }),
        ),
      );
      expect(await store.writeViews!("p", batches())).toEqual([100, 0, 4]);
      // and nothing older replaced anything newer
      const rows = tableRows(join(tmp.dir, "skips.db")) as Array<{
        entity_key: string;
        view: string;
        event_ts: number;
      }>;
      const ts = (key: number, v: string) => rows.find((r) => r.entity_key === String(key) && r.view === v)?.event_ts;
      expect(ts(1, "clicks")).toBe(500);
      expect(ts(2, "clicks")).toBe(100);
      expect(ts(2, "scores")).toBe(900);
    } finally {
      await store.close();
    }
  });

  it("writes none of the batches when one holds a bad value", async () => {
    const store = await open("atomic");
    try {
      const bad = batches();
      bad[2] = {
        view: ages,
        batch: batchOf(
          ages,
          [1, 2],
          () => 1,
          (k) => ({ age: k === 2 ? 1.5 : 3 }),
        ),
      };
      await expect(store.writeViews!("p", bad)).rejects.toThrow(/"age" \(int64\) value 1.5/);
      expect(tableRows(join(tmp.dir, "atomic.db"))).toEqual([]);
      // and a later write still saves its schema (none was left half-saved by the failed one)
      expect(await store.writeViews!("p", batches())).toEqual([150, 90, 4]);
    } finally {
      await store.close();
    }
  });
});

// ------------------------------------------------------------------ FeatureStore.materialize

const VIEWS = ["a", "b", "c", "d"] as const;
/** which users each view has rows for */
const USERS: Record<(typeof VIEWS)[number], number[]> = {
  a: Array.from({ length: 400 }, (_, i) => i + 1),
  b: Array.from({ length: 150 }, (_, i) => 2 * i + 300),
  c: Array.from({ length: 200 }, (_, i) => 3 * i + 1),
  d: [7],
};

async function writeMultiViewRepo(dir: string, project: string, online: string): Promise<void> {
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(join(dir, "feature_store.yaml"), `project: ${project}\nregistry: data/registry.db\n${online}`);
  const defs = VIEWS.map(
    (
      v,
    ) => `export const ${v} = new FeatureView({ name: "view_${v}", entities: [user], ttl: 0, schema: [new Field({ name: "${v}_x", dtype: "float64" }), new Field({ name: "${v}_n", dtype: "int64" })],
  source: new FileSource({ name: "src_${v}", path: "data/${v}.parquet", timestampField: "event_timestamp" }) });`,
  );
  writeFileSync(
    join(dir, "features.ts"),
    `import { Entity, FeatureView, Field, FileSource } from "fstore";\nexport const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64" });\n${defs.join("\n")}\n`,
  );
  for (const v of VIEWS) {
    // two versions per user: the later one must win
    const rows = USERS[v].flatMap((u) => [
      { user_id: u, event_timestamp: T0 - 2000, [`${v}_x`]: -1, [`${v}_n`]: -1 },
      { user_id: u, event_timestamp: T0 - 1000 + u, [`${v}_x`]: u / 8, [`${v}_n`]: u * 3 },
    ]);
    await writeParquet(join(dir, `data/${v}.parquet`), rows, {
      user_id: "int64",
      event_timestamp: "timestamp",
      [`${v}_x`]: "float64",
      [`${v}_n`]: "int64",
    });
  }
}

const ALL = VIEWS.flatMap((v) => [`view_${v}:${v}_x`, `view_${v}:${v}_n`]);
const PROBE = [1, 2, 7, 150, 299, 300, 301, 302, 400, 401, 598, 599, 1000];

function expected(): unknown[][] {
  return VIEWS.flatMap((v) => [
    PROBE.map((u) => (USERS[v].includes(u) ? u / 8 : null)),
    PROBE.map((u) => (USERS[v].includes(u) ? u * 3 : null)),
  ]);
}

/** An online store that fails its `failAt`-th writeViews call (a crash mid-materialize). */
function failingAt(inner: OnlineStore, failAt: number): OnlineStore {
  let calls = 0;
  return {
    type: inner.type,
    update: (p, k, d) => inner.update(p, k, d),
    teardown: (p, v) => inner.teardown(p, v),
    write: (p, v, b) => inner.write(p, v, b),
    writeViews: async (p, b) => {
      if (++calls === failAt) throw new Error("disk full (injected)");
      return inner.writeViews!(p, b);
    },
    read: (p, r) => inner.read(p, r),
    health: () => inner.health(),
    close: () => inner.close(),
  };
}

describe("materialize of several views of one entity", () => {
  const RUN = `${process.pid}_${Date.now() % 100000}`;
  const answers = new Map<string, unknown>();

  it.each([
    ["sqlite", "online_store:\n  type: sqlite\n  path: data/online.db\n"],
    [
      "redis",
      `online_store:\n  type: redis\n  connection_string: "127.0.0.1:6379,db=0"\n  key_prefix: fstore_mat_test_${RUN}\n`,
    ],
  ])("writes every view's latest rows on %s, in small batches", async (kind, online) => {
    const dir = join(tmp.dir, `repo_${kind}`);
    await writeMultiViewRepo(dir, `mat_${kind}_${RUN}`, online);
    const store = await FeatureStore.open(dir);
    try {
      await store.apply();
      const report = await store.materialize(new Date(T0 - 86400_000), new Date(T0), { batchSize: 64 });
      expect(report.views.map((v) => [v.view, v.rows, v.written])).toEqual(
        VIEWS.map((v) => [`view_${v}`, USERS[v].length, USERS[v].length]),
      );
      const res = (await store.getOnlineFeatures({ features: ALL, entities: { user_id: PROBE } })).toFeastJSON();
      expect(res.results.slice(1).map((r) => r.values)).toEqual(expected());
      answers.set(kind, res);
      // again: nothing newer to write, every row rewritten in place (ties: last write wins), same answers
      const again = await store.materialize(new Date(T0 - 86400_000), new Date(T0), { batchSize: 64 });
      expect(again.views.map((v) => v.written)).toEqual(VIEWS.map((v) => USERS[v].length));
      expect((await store.getOnlineFeatures({ features: ALL, entities: { user_id: PROBE } })).toFeastJSON()).toEqual(
        res,
      );
    } finally {
      await store.teardown(); // Redis keys go even when the test fails
      await store.close();
    }
    if (answers.size === 2) expect(answers.get("redis")).toEqual(answers.get("sqlite"));
  });

  it("merges in parts of at most mergeRows rows, and a view that cannot be pulled fails the run cleanly", async () => {
    const dir = join(tmp.dir, "repo_parts");
    await writeMultiViewRepo(dir, `mat_parts_${RUN}`, "online_store:\n  type: sqlite\n  path: data/online.db\n");
    const store = await FeatureStore.open(dir);
    const labels: string[] = [];
    const progress = { start: (label: string) => labels.push(label), tick: () => undefined, stop: () => undefined };
    try {
      await store.apply();
      // a: 400 rows alone (a part holds at least one view), b: 150 (+ c's 200 > 300), then c + d: 201
      const report = await store.materialize(new Date(T0 - 86400_000), new Date(T0), {
        batchSize: 64,
        mergeRows: 300,
        progress,
      });
      expect(labels).toEqual(["view_a", "view_b", "view_c, view_d"]);
      expect(report.views.map((v) => v.rows)).toEqual(VIEWS.map((v) => USERS[v].length));
      const res = (await store.getOnlineFeatures({ features: ALL, entities: { user_id: PROBE } })).toFeastJSON();
      expect(res.results.slice(1).map((r) => r.values)).toEqual(expected());
      rmSync(join(dir, "data/c.parquet"));
      await expect(store.materialize(new Date(T0 - 86400_000), new Date(T0))).rejects.toThrow(/c\.parquet/);
      // the other views' pulls were closed, not left holding DuckDB: the store still materializes
      const again = await store.materialize(new Date(T0 - 86400_000), new Date(T0), { views: ["view_a", "view_b"] });
      expect(again.views.map((v) => v.rows)).toEqual([400, 150]);
    } finally {
      await store.close();
    }
  });

  it("lets the event loop run after every write (a server keeps answering while it materializes)", async () => {
    const dir = join(tmp.dir, "repo_turns");
    await writeMultiViewRepo(dir, `mat_turns_${RUN}`, "online_store:\n  type: sqlite\n  path: data/online.db\n");
    const store = await FeatureStore.open(dir);
    const counter = turnCounter();
    try {
      await store.apply();
      // the turns of the event loop seen at each write's progress tick
      let seen: number[] = [];
      const progress = { start: () => undefined, tick: () => void seen.push(counter.turns()), stop: () => undefined };
      for (const opts of [{ batchSize: 64 }, { batchSize: 64, views: ["view_a"] }]) {
        seen = [];
        await store.materialize(new Date(T0 - 86400_000), new Date(T0), { ...opts, progress });
        // the loop turned between every two writes, merged (4 views) or view by view
        expect(seen.length).toBeGreaterThan(5);
        expect(seen.slice(1).every((t, i) => t > seen[i])).toBe(true);
      }
    } finally {
      counter.stop();
      await store.close();
    }
  });

  it("leaves SQLite consistent when a write fails midway, and a re-run completes it", async () => {
    const dir = join(tmp.dir, "repo_crash");
    await writeMultiViewRepo(dir, `mat_crash_${RUN}`, "online_store:\n  type: sqlite\n  path: data/online.db\n");
    const real = await createOnlineStore({ type: "sqlite", path: join(dir, "data/online.db") });
    const crashing = await FeatureStore.open(dir, { onlineStore: failingAt(real, 4) });
    try {
      await crashing.apply();
      await expect(crashing.materialize(new Date(T0 - 86400_000), new Date(T0), { batchSize: 64 })).rejects.toThrow(
        /disk full \(injected\)/,
      );
      // the three rounds before the failure are there, whole; none of the intervals is recorded
      const db = new Database(join(dir, "data/online.db"), { readonly: true });
      const stored = db
        .prepare(
          `SELECT count(*) AS n FROM "${sqliteTableName(`mat_crash_${RUN}`, { entityColumns: [{ name: "user_id", dtype: "int64" }] })}"`,
        )
        .get() as { n: number };
      db.close();
      expect(stored.n).toBeGreaterThan(0);
      expect(stored.n).toBeLessThan(Object.values(USERS).reduce((s, u) => s + u.length, 0));
    } finally {
      await crashing.close(); // closes `real` too
    }
    const store = await FeatureStore.open(dir);
    try {
      const report = await store.materializeIncremental(new Date(T0));
      expect(report.views.map((v) => v.rows)).toEqual(VIEWS.map((v) => USERS[v].length));
      const res = (await store.getOnlineFeatures({ features: ALL, entities: { user_id: PROBE } })).toFeastJSON();
      expect(res.results.slice(1).map((r) => r.values)).toEqual(expected());
    } finally {
      await store.close();
    }
  });
});

describe("materialize under offline_store.memory_limit", () => {
  it("sizes merged parts to fit the limit: what runs out of memory in one part completes in parts", async () => {
    expect([defaultMergeRows(), defaultMergeRows(1e9), defaultMergeRows(64 * 2 ** 20), defaultMergeRows(1e6)]).toEqual([
      8_000_000, 4_000_000, 268_435, 65_536,
    ]);
    const dir = join(tmp.dir, "repo_limited");
    mkdirSync(join(dir, "data"), { recursive: true });
    const n = 250_000;
    const names = ["a", "b", "c", "d"];
    writeFileSync(
      join(dir, "feature_store.yaml"),
      `project: mat_limited\nregistry: data/registry.db\nonline_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: duckdb\n  memory_limit: 64MiB\n  threads: 1\n`,
    );
    const fields = (v: string) =>
      Array.from({ length: 6 }, (_, f) => `new Field({ name: "${v}${f}", dtype: "float64" })`).join(", ");
    writeFileSync(
      join(dir, "features.ts"),
      `import { Entity, FeatureView, Field, FileSource } from "fstore";\nexport const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64" });\n` +
        names
          .map(
            (v) =>
              `export const ${v} = new FeatureView({ name: "view_${v}", entities: [user], ttl: 0, schema: [${fields(v)}], source: new FileSource({ path: "data/${v}.parquet", timestampField: "ts" }) });`,
          )
          .join("\n"),
    );
    const db = await openDuckDB();
    const c = db.connection;
    try {
      for (const v of names) {
        const cols = Array.from({ length: 6 }, (_, f) => `random() AS ${v}${f}`).join(", ");
        await c.run(
          `COPY (SELECT range AS user_id, TIMESTAMP '2025-06-01' AS ts, ${cols} FROM range(${n})) TO '${join(dir, `data/${v}.parquet`)}' (FORMAT parquet)`,
        );
      }
    } finally {
      db.close();
    }
    const store = await FeatureStore.open(dir);
    try {
      await store.apply();
      // 1M rows in one part need ~150 MB of DuckDB memory: past the limit, and the error says what to do
      await expect(store.materialize(0, new Date("2026-01-01"), { mergeRows: 1e9 })).rejects.toThrow(
        /ran out of memory under offline_store\.memory_limit 64MiB: raise offline_store\.memory_limit/,
      );
      // by default a part holds what fits in 64 MiB: one view each
      const labels: string[] = [];
      const report = await store.materialize(0, new Date("2026-01-01"), {
        progress: { start: (label: string) => labels.push(label), tick: () => undefined, stop: () => undefined },
      });
      expect(labels).toEqual(["view_a", "view_b", "view_c", "view_d"]);
      expect(report.views.map((v) => v.rows)).toEqual([n, n, n, n]);
      const res = await store.getOnlineFeatures({
        features: ["view_a:a0", "view_d:d5"],
        entities: { user_id: [0, n - 1, n] },
      });
      expect(
        res
          .toFeastJSON()
          .results.slice(1)
          .map((r) => r.statuses),
      ).toEqual([
        ["PRESENT", "PRESENT", "NOT_FOUND"],
        ["PRESENT", "PRESENT", "NOT_FOUND"],
      ]);
    } finally {
      await store.close();
    }
  });
});
