// One suite run against both online stores (SQLite in a temp file, Redis on 127.0.0.1:6379 with a unique
// prefix), plus checks that both answer the same.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ValidationError } from "../common/errors.js";
import type { FeatureViewSpec } from "../registry/types.js";
import { EntityKeyCodec } from "../stores/online/entity_keys.js";
import { createOnlineStore, parseRedisConnectionString } from "../stores/online/index.js";
import { READER_NAME } from "../stores/online/redis_reader.js";
import type {
  OnlineReadGroup,
  OnlineReadResult,
  OnlineReadView,
  OnlineStore,
  OnlineWriteBatch,
} from "../stores/types.js";
import { viewSpec as view } from "./repo_fixture.js";

const PROJECT = "online_test";
const REDIS_PREFIX = `fstore_test_${process.pid}_${Date.now()}`;
const REDIS_URL = "127.0.0.1:6379,db=0";

/**
 * A TCP proxy to 127.0.0.1:`port`. `chop`: the server's bytes are passed on in pieces of 1-13 bytes, one
 * piece per event-loop turn, so that every reply reaches the client split at every possible place.
 * `dropFirstRead`: the first client connection that sends an HMGET is closed before it is answered.
 */
async function tcpProxy(
  port: number,
  opts: { chop?: boolean; dropFirstRead?: boolean },
): Promise<{ port: number; dropped: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let dropped = 0;
  const server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.on("data", (d: Buffer) => {
      if (opts.dropFirstRead && dropped === 0 && d.includes("HMGET")) {
        dropped++;
        client.destroy();
        return;
      }
      upstream.write(d);
    });
    let queue = Promise.resolve();
    let seed = 7;
    upstream.on("data", (d: Buffer) => {
      if (!opts.chop) {
        client.write(d);
        return;
      }
      queue = queue.then(async () => {
        for (let at = 0; at < d.length;) {
          seed = (seed * 1103515245 + 12345) % 2147483648;
          const piece = d.subarray(at, at + 1 + (seed % 13));
          at += piece.length;
          client.write(piece);
          if (d.length < 4096) await new Promise((r) => setImmediate(r));
        }
      });
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    dropped: () => dropped,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A Redis store under its own key prefix and a raw client, for `fn`; the project is torn down after. */
async function withRedisStore(
  name: string,
  fn: (store: OnlineStore, raw: Redis, prefix: string) => Promise<void>,
): Promise<void> {
  const prefix = `${REDIS_PREFIX}_${name}`;
  const store = await createOnlineStore({
    type: "redis",
    connectionString: REDIS_URL,
    keyTtlSeconds: 0,
    keyPrefix: prefix,
  });
  const raw = new Redis(parseRedisConnectionString(REDIS_URL));
  try {
    await fn(store, raw, prefix);
  } finally {
    await store.teardown(PROJECT, [userStats]);
    await raw.quit();
    await store.close();
  }
}

/** A store on Redis and a second one reaching the same data through tcpProxy(opts); torn down after fn. */
async function withProxiedRedisStore(
  name: string,
  opts: { chop?: boolean; dropFirstRead?: boolean },
  fn: (direct: OnlineStore, proxied: OnlineStore, proxy: { dropped: () => number }) => Promise<void>,
): Promise<void> {
  const prefix = `${REDIS_PREFIX}_${name}`;
  const direct = await createOnlineStore({
    type: "redis",
    connectionString: REDIS_URL,
    keyTtlSeconds: 0,
    keyPrefix: prefix,
  });
  const proxy = await tcpProxy(6379, opts);
  const proxied = await createOnlineStore({
    type: "redis",
    connectionString: `127.0.0.1:${proxy.port},db=0`,
    keyTtlSeconds: 0,
    keyPrefix: prefix,
  });
  try {
    await fn(direct, proxied, proxy);
  } finally {
    await direct.teardown(PROJECT, [allTypes, userStats]);
    await proxied.close();
    await direct.close();
    await proxy.close();
  }
}

const allTypes = view(
  "all_types",
  [["user_id", "int64"]],
  [
    ["f64", "float64"],
    ["f32", "float32"],
    ["i32", "int32"],
    ["i64", "int64"],
    ["b", "bool"],
    ["s", "string"],
    ["raw", "bytes"],
    ["ts", "unix_timestamp"],
    ["f64s", "float64[]"],
    ["i64s", "int64[]"],
    ["ss", "string[]"],
    ["bs", "bool[]"],
    ["raws", "bytes[]"],
  ],
);
const userStats = view(
  "user_stats",
  [["user_id", "int64"]],
  [
    ["clicks", "int64"],
    ["ctr", "float64"],
  ],
);
const pair = view(
  "user_item",
  [
    ["user_id", "int64"],
    ["item_id", "string"],
  ],
  [["score", "float64"]],
);

function batch(
  v: FeatureViewSpec,
  rows: Array<{ key: unknown[]; values: Record<string, unknown>; ev: number; cr?: number }>,
): OnlineWriteBatch {
  const keys: Record<string, unknown[]> = {};
  v.entityColumns.forEach((c, i) => (keys[c.name] = rows.map((r) => r.key[i])));
  const features: Record<string, unknown[]> = {};
  for (const f of v.features) features[f.name] = rows.map((r) => (f.name in r.values ? r.values[f.name] : null));
  return { length: rows.length, keys, features, eventTs: rows.map((r) => r.ev), createdTs: rows.map((r) => r.cr ?? 0) };
}

/** A read's answer row by row: { eventTs, values of the requested features } or null when not found. */
interface OnlineRecord {
  eventTs: number;
  values: Record<string, unknown>;
}
function recordsOf(r: OnlineReadResult): Array<OnlineRecord | null> {
  return Array.from(r.eventTs, (ts, i) =>
    Number.isNaN(ts)
      ? null
      : { eventTs: ts, values: Object.fromEntries(Object.entries(r.values).map(([k, col]) => [k, col[i]])) },
  );
}
/** A read of several groups, record by record: [group][view][row]. */
async function readRecords(
  store: OnlineStore,
  project: string,
  groups: OnlineReadGroup[],
): Promise<Array<Array<Array<OnlineRecord | null>>>> {
  return (await store.read(project, groups)).map((views) => views.map(recordsOf));
}
/** A read of one group (`views` of the same entity rows), record by record: [view][row]. */
async function readGroup(
  store: OnlineStore,
  project: string,
  entityKeys: unknown[][],
  ...views: OnlineReadView[]
): Promise<Array<Array<OnlineRecord | null>>> {
  return (await readRecords(store, project, [{ entityKeys, views }]))[0];
}

const richRow = {
  f64: 1.0000000000000002,
  f32: -2.5,
  i32: -2147483648,
  i64: 9007199254740991,
  b: true,
  s: 'héllo, 世界 "quoted"',
  raw: Buffer.from([0, 1, 2, 255]),
  ts: 1700000000123,
  f64s: [0.5, -1e300, 3],
  i64s: [-1, 0, 2 ** 40],
  ss: ["a", "", "long ".repeat(60)],
  bs: [true, false],
  raws: [Buffer.from("xy"), Buffer.alloc(0)],
};

interface Case {
  name: string;
  open: () => Promise<OnlineStore>;
  cleanup: () => Promise<void>;
}

const tmp = mkdtempSync(join(tmpdir(), "fstore-online-"));
const cases: Case[] = [
  {
    name: "sqlite",
    open: () => createOnlineStore({ type: "sqlite", path: join(tmp, "online.db") }),
    cleanup: async () => undefined,
  },
  {
    name: "redis",
    open: () =>
      createOnlineStore({ type: "redis", connectionString: REDIS_URL, keyTtlSeconds: 0, keyPrefix: REDIS_PREFIX }),
    cleanup: async () => {
      const r = new Redis(parseRedisConnectionString(REDIS_URL));
      const keys = await r.keys(`${REDIS_PREFIX}*`);
      if (keys.length) await r.del(...keys);
      await r.quit();
    },
  },
];

const answers: Record<string, unknown> = {};

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.each(cases)("online store: $name", ({ name, open, cleanup }) => {
  let store: OnlineStore;
  beforeAll(async () => {
    store = await open();
    await store.health();
    await store.update(PROJECT, [allTypes, userStats, pair], []);
  });
  afterAll(async () => {
    await store.teardown(PROJECT, [allTypes, userStats, pair]);
    await store.close();
    await cleanup();
  });

  it("round-trips every dtype, lists, nulls and bytes", async () => {
    const n = await store.write(
      PROJECT,
      allTypes,
      batch(allTypes, [
        { key: [1], values: richRow, ev: 1000, cr: 5 },
        { key: [2], values: { s: "only a string" }, ev: 2000 },
        { key: [3], values: { i64: 2n ** 62n, i64s: [] }, ev: 3000 },
      ]),
    );
    expect(n).toBe(3);
    const [res] = await readGroup(store, PROJECT, [[1], [2], [3]], {
      view: allTypes,
      features: allTypes.features.map((f) => f.name),
    });
    expect(res[0]).toEqual({ eventTs: 1000, values: richRow });
    expect(res[1]?.eventTs).toBe(2000);
    expect(res[1]?.values.s).toBe("only a string");
    for (const f of allTypes.features) if (f.name !== "s") expect(res[1]?.values[f.name]).toBeNull();
    expect(res[2]?.values.i64).toBe(2n ** 62n); // beyond 2^53: stays exact as a bigint
    expect(res[2]?.values.i64s).toEqual([]);
    answers[`${name}:types`] = res;
    // a subset: the fields in between (strings, bytes, lists of each) are skipped, not decoded
    for (const pick of [["raws"], ["f64", "bs"], ["ss", "ts"], ["s", "raw", "i64s"]]) {
      const [sub] = await readGroup(store, PROJECT, [[1], [3]], { view: allTypes, features: pick });
      expect(sub[0]?.values).toEqual(Object.fromEntries(pick.map((f) => [f, richRow[f as keyof typeof richRow]])));
      expect(Object.keys(sub[1]?.values ?? {})).toEqual(pick);
    }
  });

  it("normalises keys: an int key given as a string, composite keys, not found is null", async () => {
    await store.write(
      PROJECT,
      userStats,
      batch(userStats, [{ key: ["42"], values: { clicks: 7, ctr: 0.25 }, ev: 10 }]),
    );
    await store.write(
      PROJECT,
      pair,
      batch(pair, [
        { key: [42, "a"], values: { score: 1.5 }, ev: 10 },
        { key: [42, "b"], values: { score: 2.5 }, ev: 10 },
      ]),
    );
    // two groups in one read
    const [[stats], [pairs]] = await readRecords(store, PROJECT, [
      { entityKeys: [[42], ["0042"], [42n], [43]], views: [{ view: userStats, features: ["clicks", "ctr"] }] },
      {
        entityKeys: [
          ["42", "b"],
          [42, "a"],
          [42, "c"],
          [43, "a"],
        ],
        views: [{ view: pair, features: ["score"] }],
      },
    ]);
    expect(stats.map((r) => r?.values.clicks ?? null)).toEqual([7, 7, 7, null]);
    expect(stats[3]).toBeNull();
    expect(pairs.map((r) => r?.values.score ?? null)).toEqual([2.5, 1.5, null, null]);
    answers[`${name}:keys`] = [stats, pairs];
  });

  it("reads string keys holding separators, quotes and multi-byte characters", async () => {
    const items = ["x:1", "日本:2", "", '"q",3', "12:"];
    await store.write(
      PROJECT,
      pair,
      batch(
        pair,
        items.map((item, i) => ({ key: [7, item], values: { score: i + 0.5 }, ev: 10 })),
      ),
    );
    const [res] = await readGroup(store, PROJECT, [...items.map((item) => [7, item]).reverse(), [7, "日本"]], {
      view: pair,
      features: ["score"],
    });
    expect(res.map((r) => r?.values.score ?? null)).toEqual([4.5, 3.5, 2.5, 1.5, 0.5, null]);
  });

  it("rejects a value that cannot be a key, naming the join key and value", async () => {
    const bad = readGroup(store, PROJECT, [["abc"]], { view: userStats, features: ["clicks"] });
    await expect(bad).rejects.toThrow(ValidationError);
    await expect(bad).rejects.toThrow(/join key "user_id" value "abc".*int64/);
    await expect(
      store.write(PROJECT, userStats, batch(userStats, [{ key: [1.5], values: { clicks: 1 }, ev: 1 }])),
    ).rejects.toThrow(/"user_id" value 1.5/);
  });

  it("never replaces a newer row; equal event times go to the newer created time", async () => {
    const w = (ev: number, cr: number, clicks: number) =>
      store.write(PROJECT, userStats, batch(userStats, [{ key: [500], values: { clicks }, ev, cr }]));
    const read = async () =>
      (await readGroup(store, PROJECT, [[500]], { view: userStats, features: ["clicks"] }))[0][0];
    expect(await w(100, 1, 1)).toBe(1);
    expect(await w(50, 9, 2)).toBe(0); // older event time
    expect((await read())?.values.clicks).toBe(1);
    expect(await w(100, 0, 3)).toBe(0); // same event, older created
    expect((await read())?.values.clicks).toBe(1);
    expect(await w(100, 2, 4)).toBe(1); // same event, newer created
    expect(await w(100, 2, 5)).toBe(1); // same event and created: last write wins (idempotent re-run)
    expect(await read()).toEqual({ eventTs: 100, values: { clicks: 5 } }); // only the features asked for
    expect(await w(101, 0, 6)).toBe(1);
    expect((await read())?.values.clicks).toBe(6);
    // within one batch too: the older duplicate after the newer one is skipped
    const n = await store.write(
      PROJECT,
      userStats,
      batch(userStats, [
        { key: [501], values: { clicks: 2 }, ev: 20 },
        { key: [501], values: { clicks: 1 }, ev: 10 },
      ]),
    );
    expect(n).toBe(1);
    expect(
      (await readGroup(store, PROJECT, [[501]], { view: userStats, features: ["clicks"] }))[0][0]?.values.clicks,
    ).toBe(2);
    // a batch large enough to be written many rows per statement, duplicates inside one statement
    const many = Array.from({ length: 100 }, (_, i) => ({
      key: [600 + (i % 40)],
      values: { clicks: i },
      ev: i < 40 ? 30 : i < 80 ? 10 : 30,
    }));
    expect(await store.write(PROJECT, userStats, batch(userStats, many))).toBe(60);
    const got = await readGroup(
      store,
      PROJECT,
      Array.from({ length: 40 }, (_, i) => [600 + i]),
      { view: userStats, features: ["clicks"] },
    );
    expect(got[0].map((r) => r?.values.clicks)).toEqual(Array.from({ length: 40 }, (_, i) => (i < 20 ? 80 + i : i)));
  });

  it("writes a batch whole or not at all when a value cannot be encoded", async () => {
    const rows = Array.from({ length: 1200 }, (_, i) => ({
      key: [10_000 + i],
      values: { clicks: i, ctr: 0.5 } as Record<string, unknown>,
      ev: 1,
    }));
    rows[1100].values.ctr = "not a number";
    const p = store.write(PROJECT, userStats, batch(userStats, rows));
    await expect(p).rejects.toThrow(ValidationError);
    await expect(p).rejects.toThrow(/feature "ctr" \(float64\) value "not a number" in row 1100/);
    const [res] = await readGroup(
      store,
      PROJECT,
      rows.map((r) => r.key),
      { view: userStats, features: ["clicks"] },
    );
    expect(res.every((r) => r === null)).toBe(true);
    await expect(
      store.write(PROJECT, userStats, batch(userStats, [{ key: [1], values: { clicks: 1.5 }, ev: 1 }])),
    ).rejects.toThrow(/"clicks" \(int64\) value 1.5/);
  });

  it("answers a read the same however the caller groups it: one group, a group per view, mixed join keys", async () => {
    const item = view("item_stats", [["item_id", "string"]], [["price", "float64"]]);
    const userAsString = view("user_names", [["user_id", "string"]], [["nick", "string"]]);
    await store.update(PROJECT, [item, userAsString], []);
    await store.write(PROJECT, userStats, batch(userStats, [{ key: [70], values: { clicks: 1, ctr: 0.5 }, ev: 3 }]));
    await store.write(PROJECT, item, batch(item, [{ key: ["70"], values: { price: 9.5 }, ev: 4 }]));
    await store.write(PROJECT, userAsString, batch(userAsString, [{ key: ["71"], values: { nick: "b" }, ev: 5 }]));
    const keys = [[70], [71], [70]];
    const views = [
      { view: userStats, features: ["clicks"] },
      { view: item, features: ["price"] },
      { view: userAsString, features: ["nick"] },
      { view: userStats, features: ["ctr"] },
    ];
    // one group whose views are keyed by different join keys, and key dtypes, than each other
    const together = await readGroup(store, PROJECT, keys, ...views);
    expect(together.map((rows) => rows.map((r) => (r === null ? null : Object.values(r.values)[0])))).toEqual([
      [1, null, 1],
      [9.5, null, 9.5],
      [null, "b", null],
      [0.5, null, 0.5],
    ]);
    expect(together[1][0]?.eventTs).toBe(4);
    // the same views each in a group of its own, with entity rows copied
    const apart = await readRecords(
      store,
      PROJECT,
      views.map((v) => ({ entityKeys: keys.map((k) => [...k]), views: [v] })),
    );
    expect(apart.map((g) => g[0])).toEqual(together);
    expect(await store.read(PROJECT, [{ entityKeys: [], views }])).toEqual([
      views.map(() => ({ eventTs: new Float64Array(0), values: expect.any(Object) as unknown })),
    ]);
    await store.update(PROJECT, [], [item, userAsString]);
  });

  it("reads many views and many entities in one call", async () => {
    const ids = Array.from({ length: 700 }, (_, i) => i + 20_000);
    await store.write(
      PROJECT,
      userStats,
      batch(
        userStats,
        ids.map((id) => ({ key: [id], values: { clicks: id, ctr: id / 10 }, ev: 5 })),
      ),
    );
    await store.write(
      PROJECT,
      allTypes,
      batch(
        allTypes,
        ids.filter((id) => id % 2 === 0).map((id) => ({ key: [id], values: { s: `u${id}` }, ev: 6 })),
      ),
    );
    const keys = [...ids, 99].map((id) => [id]);
    const [a, b] = await readGroup(
      store,
      PROJECT,
      keys,
      { view: userStats, features: ["clicks", "ctr"] },
      { view: allTypes, features: ["s"] },
    );
    expect(a.slice(0, 700).map((r) => r?.values.ctr)).toEqual(ids.map((id) => id / 10));
    expect(b.slice(0, 700).map((r) => r?.values.s ?? null)).toEqual(ids.map((id) => (id % 2 === 0 ? `u${id}` : null)));
    expect(a[700]).toBeNull();
    expect(b[700]).toBeNull();
  });

  it("reads one entity from some of the views sharing its key: a view it lacks and an unknown entity are null", async () => {
    const [x, y, z] = ["few_x", "few_y", "few_z"].map((n) => view(n, [["user_id", "int64"]], [["v", "int64"]]));
    await store.update(PROJECT, [x, y, z], []);
    await store.write(PROJECT, x, batch(x, [{ key: [7], values: { v: 1 }, ev: 1 }]));
    await store.write(PROJECT, z, batch(z, [{ key: [7], values: { v: 3 }, ev: 1 }]));
    const values = async (keys: unknown[][]) =>
      (await readGroup(store, PROJECT, keys, ...[x, y].map((v) => ({ view: v, features: ["v"] })))).map((rows) =>
        rows.map((r) => r?.values.v ?? null),
      );
    expect(await values([[7]])).toEqual([[1], [null]]);
    expect(await values([[8]])).toEqual([[null], [null]]);
    expect(await values([[7], [8]])).toEqual([
      [1, null],
      [null, null],
    ]);
    await store.update(PROJECT, [], [x, y, z]);
  });

  it("reads payloads written before a feature was added (missing ones are null)", async () => {
    const v1 = view("evolving", [["user_id", "int64"]], [["a", "int64"]]);
    const v2 = view(
      "evolving",
      [["user_id", "int64"]],
      [
        ["a", "int64"],
        ["b", "string"],
      ],
    );
    await store.update(PROJECT, [v1], []);
    await store.write(
      PROJECT,
      v1,
      batch(v1, [
        { key: [1], values: { a: 11 }, ev: 1 },
        { key: [3], values: { a: 33 }, ev: 1 },
      ]),
    );
    await store.update(PROJECT, [v2], []);
    await store.write(PROJECT, v2, batch(v2, [{ key: [2], values: { a: 22, b: "x" }, ev: 1 }]));
    // old, new and old again: each schema's columns are looked up once and reused
    const [res] = await readGroup(store, PROJECT, [[1], [2], [3]], { view: v2, features: ["a", "b"] });
    expect(res.map((r) => r?.values)).toEqual([
      { a: 11, b: null },
      { a: 22, b: "x" },
      { a: 33, b: null },
    ]);
  });

  it("drops a view's data and tears down the project", async () => {
    const gone = view("gone", [["user_id", "int64"]], [["x", "int64"]]);
    await store.update(PROJECT, [gone], []);
    await store.write(PROJECT, gone, batch(gone, [{ key: [42], values: { x: 1 }, ev: 1 }]));
    await store.update(PROJECT, [userStats], [gone]);
    const [g, s] = await readGroup(
      store,
      PROJECT,
      [[42]],
      { view: gone, features: ["x"] },
      { view: userStats, features: ["clicks"] },
    );
    expect(g[0]).toBeNull();
    expect(s[0]?.values.clicks).toBe(7); // the other view on the same entity is untouched

    const other = "online_test_other";
    const nested = "online_test_other__sub"; // its table names start with "<other>__" too
    await store.write(other, userStats, batch(userStats, [{ key: [42], values: { clicks: 1 }, ev: 1 }]));
    await store.write(nested, userStats, batch(userStats, [{ key: [42], values: { clicks: 2 }, ev: 1 }]));
    await store.teardown(other, [userStats]);
    expect((await readGroup(store, other, [[42]], { view: userStats, features: ["clicks"] }))[0][0]).toBeNull();
    expect(
      (await readGroup(store, nested, [[42]], { view: userStats, features: ["clicks"] }))[0][0]?.values.clicks,
    ).toBe(2);
    await store.teardown(nested, []);
    expect((await readGroup(store, nested, [[42]], { view: userStats, features: ["clicks"] }))[0][0]).toBeNull();
    expect(
      (await readGroup(store, PROJECT, [[42]], { view: userStats, features: ["clicks"] }))[0][0]?.values.clicks,
    ).toBe(7);
  });
});

describe("both stores", () => {
  it("answered the same", () => {
    expect(answers["sqlite:types"]).toBeDefined();
    expect(answers["redis:types"]).toEqual(answers["sqlite:types"]);
    expect(answers["redis:keys"]).toEqual(answers["sqlite:keys"]);
  });
});

describe("sqlite specifics", () => {
  it("frames payloads of any size (one over 10 MB needs more room for its length) beside small ones", async () => {
    const store = await createOnlineStore({ type: "sqlite", path: join(tmp, "frames.db") });
    try {
      await store.update(PROJECT, [allTypes], []);
      const big = Float64Array.from({ length: 1_400_000 }, (_, i) => i * 0.5);
      await store.write(
        PROJECT,
        allTypes,
        batch(allTypes, [
          { key: [1], values: { f64: 1 }, ev: 1 },
          { key: [2], values: { f64s: big, s: "after" }, ev: 1 },
          { key: [3], values: { f64: 3 }, ev: 1 },
        ]),
      );
      const [got] = await readGroup(store, PROJECT, [[1], [2], [3]], {
        view: allTypes,
        features: ["f64", "f64s", "s"],
      });
      expect(got.map((r) => r?.values.f64 ?? null)).toEqual([1, null, 3]);
      expect(got[1]?.values.s).toBe("after");
      expect((got[1]?.values.f64s as number[]).length).toBe(big.length);
      expect((got[1]?.values.f64s as number[])[1_399_999]).toBe(699_999.5);
    } finally {
      await store.close();
    }
  });

  it("keeps one WAL table per entity-key set, shared by its views, and drops a view's rows with it", async () => {
    const path = join(tmp, "update.db");
    const store = await createOnlineStore({ type: "sqlite", path });
    const raw = new Database(path, { readonly: true });
    const tables = () =>
      (
        raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'p1:%'").all() as Array<{
          name: string;
        }>
      )
        .map((r) => r.name)
        .sort();
    const more = view("user_more", [["user_id", "int64"]], [["age", "int64"]]);
    const read = async (v: FeatureViewSpec, key: unknown[]) =>
      (await readGroup(store, "p1", [key], { view: v, features: v.features.map((f) => f.name) }))[0][0]?.values ?? null;
    try {
      await store.update("p1", [userStats, pair, more], []);
      expect(tables()).toEqual(["p1:user_id", "p1:user_id,item_id"]);
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
      await store.update("p1", [userStats, pair, more], []); // idempotent
      await store.write("p1", userStats, batch(userStats, [{ key: [1], values: { clicks: 3 }, ev: 10 }]));
      await store.write("p1", more, batch(more, [{ key: [1], values: { age: 40 }, ev: 10 }]));
      await store.write("p1", pair, batch(pair, [{ key: [1, "a"], values: { score: 0.5 }, ev: 10 }]));
      // one read of two views of the same entity set
      const both = await readGroup(
        store,
        "p1",
        [[1], [2], [1]],
        { view: userStats, features: ["clicks"] },
        { view: more, features: ["age"] },
      );
      expect(both.map((r) => r.map((x) => x?.values ?? null))).toEqual([
        [{ clicks: 3 }, null, { clicks: 3 }],
        [{ age: 40 }, null, { age: 40 }],
      ]);
      await store.update("p1", [userStats], [pair, more]);
      expect(tables()).toEqual(["p1:user_id"]);
      expect(await read(more, [1])).toBeNull();
      expect(await read(userStats, [1])).toEqual({ clicks: 3, ctr: null });
      expect(raw.prepare(`SELECT count(*) FROM "p1:user_id"`).pluck().get()).toBe(1);
    } finally {
      raw.close();
      await store.close();
    }
  });
});

describe("redis specifics", () => {
  it("sets the key TTL when configured and lays keys out as prefix:project:join=value", async () => {
    const prefix = `${REDIS_PREFIX}_ttl`;
    const store = await createOnlineStore({
      type: "redis",
      connectionString: REDIS_URL,
      keyTtlSeconds: 3600,
      keyPrefix: prefix,
    });
    const raw = new Redis(parseRedisConnectionString(REDIS_URL));
    try {
      await store.write(PROJECT, pair, batch(pair, [{ key: [7, "z"], values: { score: 1 }, ev: 1 }]));
      const key = `${prefix}:${PROJECT}:user_id=7,item_id="z"`;
      expect(await raw.hkeys(key)).toEqual(["user_item"]);
      const ttl = await raw.ttl(key);
      expect(ttl).toBeGreaterThan(3500);
      expect(ttl).toBeLessThanOrEqual(3600);
    } finally {
      await store.teardown(PROJECT, [pair]);
      expect(await raw.keys(`${prefix}*`)).toEqual([]);
      await raw.quit();
      await store.close();
    }
  });

  it("writes again after the server lost its scripts (SCRIPT FLUSH), and reads", () =>
    withRedisStore("flush", async (store, raw) => {
      await store.write(PROJECT, userStats, batch(userStats, [{ key: [3], values: { clicks: 4 }, ev: 1 }]));
      await raw.script("FLUSH");
      const got = await readGroup(store, PROJECT, [[3], [4]], { view: userStats, features: ["clicks"] });
      expect(got[0].map((r) => r?.values.clicks ?? null)).toEqual([4, null]);
      expect(
        await store.write(PROJECT, userStats, batch(userStats, [{ key: [3], values: { clicks: 5 }, ev: 2 }])),
      ).toBe(1);
    }));

  it("reads replies that arrive a few bytes at a time, and payloads of megabytes", () =>
    withProxiedRedisStore("pieces", { chop: true }, async (direct, chopped) => {
      const ids = Array.from({ length: 40 }, (_, i) => i);
      await direct.write(
        PROJECT,
        allTypes,
        batch(
          allTypes,
          ids.map((id) => ({ key: [id], values: { ...richRow, i32: id, s: `é${id}` }, ev: 1 })),
        ),
      );
      await direct.write(
        PROJECT,
        userStats,
        batch(
          userStats,
          ids.filter((id) => id % 3).map((id) => ({ key: [id], values: { clicks: id, ctr: id / 4 }, ev: 1 })),
        ),
      );
      const big = Float64Array.from({ length: 300_000 }, (_, i) => i / 7);
      await direct.write(PROJECT, allTypes, batch(allTypes, [{ key: [1000], values: { f64s: big }, ev: 1 }]));
      const group: OnlineReadGroup = {
        entityKeys: [...ids, 99].map((id) => [id]),
        views: [
          { view: allTypes, features: allTypes.features.map((f) => f.name) },
          { view: userStats, features: ["clicks", "ctr"] },
        ],
      };
      const [want] = await readRecords(direct, PROJECT, [group]);
      expect(want[0][5]?.values.s).toBe("é5");
      expect(want[1][1]?.values.ctr).toBe(0.25);
      expect(want[1][3]).toBeNull();
      expect(want[1][40]).toBeNull();
      expect((await readRecords(chopped, PROJECT, [group]))[0]).toEqual(want);
      const [[large]] = await readGroup(direct, PROJECT, [[1000]], { view: allTypes, features: ["f64s"] });
      expect(large?.values.f64s).toEqual(Array.from(big));
    }));

  it("fails a read the server answers with an error, and the next read works", () =>
    withRedisStore("wrongtype", async (store, raw, prefix) => {
      await store.write(PROJECT, userStats, batch(userStats, [{ key: [3], values: { clicks: 4 }, ev: 1 }]));
      // (under the project's keys: teardown removes it)
      await raw.set(`${prefix}:${PROJECT}:user_id=9`, "not a hash");
      await expect(
        store.read(PROJECT, [{ entityKeys: [[3], [9]], views: [{ view: userStats, features: ["clicks"] }] }]),
      ).rejects.toThrow(/WRONGTYPE/);
      const got = await readGroup(store, PROJECT, [[3], [4]], { view: userStats, features: ["clicks"] });
      expect(got[0].map((r) => r?.values.clicks ?? null)).toEqual([4, null]);
    }));

  it("reads again after the server dropped the read connection", () =>
    withRedisStore("killed", async (store, raw) => {
      const read = async () =>
        (await readGroup(store, PROJECT, [[3]], { view: userStats, features: ["clicks"] }))[0][0]?.values.clicks;
      await store.write(PROJECT, userStats, batch(userStats, [{ key: [3], values: { clicks: 4 }, ev: 1 }]));
      expect(await read()).toBe(4);
      const list = (await raw.client("LIST")) as string;
      const readers = list
        .split("\n")
        .filter((l) => l.includes(`name=${READER_NAME} `))
        .map((l) => /\bid=(\d+)/.exec(l)?.[1]);
      expect(readers.length).toBeGreaterThan(0);
      for (const id of readers) await raw.client("KILL", "ID", String(id));
      expect(await read()).toBe(4);
    }));

  // the proxy drops the first connection that sends an HMGET, before any reply
  it("retries a read whose connection is lost while the read is in flight", () =>
    withProxiedRedisStore("lost", { dropFirstRead: true }, async (direct, dropping, proxy) => {
      await direct.write(PROJECT, userStats, batch(userStats, [{ key: [3], values: { clicks: 4 }, ev: 1 }]));
      const got = await readGroup(dropping, PROJECT, [[3], [4]], { view: userStats, features: ["clicks"] });
      expect(got[0].map((r) => r?.values.clicks ?? null)).toEqual([4, null]);
      expect(proxy.dropped()).toBe(1);
    }));

  it("parses Feast connection strings and reports an unreachable server", async () => {
    expect(parseRedisConnectionString("redis.local:6380,db=3,password=s3cret,ssl=true")).toEqual({
      host: "redis.local",
      port: 6380,
      db: 3,
      password: "s3cret",
      tls: {},
    });
    expect(() => parseRedisConnectionString("h:1,dbx=1")).toThrow(/unknown option "dbx"/);
    await expect(
      createOnlineStore({ type: "redis", connectionString: "127.0.0.1:1", keyTtlSeconds: 0 }),
    ).rejects.toThrow(/cannot connect to Redis at 127.0.0.1:1/);
  });
});

describe("entity key codec", () => {
  it("maps equal keys of a type to one string and refuses values of another type", () => {
    const codec = new EntityKeyCodec(pair, true);
    expect(codec.key([1, "a"])).toBe('user_id=1,item_id="a"');
    expect(codec.key(["+001", "a"])).toBe(codec.key([1n, "a"]));
    expect(codec.key(["1234567890123456789", "a"])).toBe('user_id=1234567890123456789,item_id="a"');
    expect(() => codec.key(["12345678901234567890", "a"])).toThrow(/"12345678901234567890" .* is not a valid int64/);
    expect(() => codec.key([null, "a"], 3)).toThrow(/join key "user_id" is missing \(null\) in entity row 3/);
    expect(() => codec.key([1])).toThrow(/1 join key values, expected 2/);
    expect(() => codec.key([1, { a: 1 }])).toThrow(/join key "item_id" value \{"a":1\}/);
  });
});

// keep a reference so a typo in a record shape fails type-checking
