// The hand-written response JSON is exactly what JSON.stringify writes of the response object.
import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { jsonLogger } from "../server/log.js";
import { Metrics } from "../server/metrics.js";
import type { FeatureViewSpec } from "../registry/types.js";
import { BufferPool } from "../server/json_bytes.js";
import { OnlineResponse } from "../stores/online_response.js";
import { feastJSONBytes, feastJSONText } from "../server/response_bytes.js";
import type { OnlineReadResult } from "../stores/types.js";

/** Column-wise read results from rows (null = not found). */
function result(
  rows: Array<{ eventTs: number; values: Record<string, unknown> } | null>,
  features: string[],
): OnlineReadResult {
  const values: Record<string, unknown[]> = {};
  for (const f of features) values[f] = rows.map((r) => (r && f in r.values ? r.values[f] : null));
  return { eventTs: Float64Array.from(rows, (r) => (r ? r.eventTs : NaN)), values };
}

function spec(name: string, ttlSeconds: number): FeatureViewSpec {
  return {
    name,
    entities: ["user"],
    entityColumns: [{ name: "user_id", dtype: "int64" }],
    features: [],
    ttlSeconds,
    source: {
      type: "file",
      name: "s",
      path: "/x.parquet",
      timestampField: "ts",
      fieldMapping: {},
      description: "",
      tags: {},
    },
    online: true,
    tags: {},
    description: "",
    owner: "",
  };
}

describe("feastJSONBytes (server/response_bytes.ts)", () => {
  it("matches JSON.stringify(toFeastJSON()), statuses and timestamps per view, every value kind", () => {
    const now = Date.parse("2024-06-01T00:00:00Z");
    const a = spec("a", 3600);
    const b = spec("b", 0);
    const r = new OnlineResponse(
      [{ name: "user_id", values: [1, 2, 3] }],
      [
        {
          view: a,
          features: [
            { name: "age", outputName: "age" },
            { name: "name", outputName: 'name "q"' },
          ],
        },
        {
          view: b,
          features: [
            { name: "tags", outputName: "b__tags" },
            { name: "ok", outputName: "ok" },
          ],
        },
      ],
      [
        result(
          [
            { eventTs: now - 1000, values: { age: 31, name: "a\nb\u2028ü" } },
            null,
            { eventTs: now - 7200_500, values: { age: 1.5e300, name: null } },
          ],
          ["age", "name"],
        ),
        result(
          [
            { eventTs: 0, values: { tags: [1, 2], ok: true } },
            { eventTs: now, values: { tags: [], ok: false } },
            { eventTs: 5, values: { tags: null, ok: NaN } },
          ],
          ["tags", "ok"],
        ),
      ],
      3,
      now,
    );
    expect(feastJSONText(r)).toBe(JSON.stringify(r.toFeastJSON()));
    // the server's bytes: the same text, UTF-8 (multi-byte characters and U+2028 included)
    expect(feastJSONBytes(r).equals(Buffer.from(JSON.stringify(r.toFeastJSON()), "utf8"))).toBe(true);
    expect(JSON.parse(feastJSONText(r)).results[1].statuses).toEqual(["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"]);
    const empty = new OnlineResponse(
      [{ name: "user_id", values: [] }],
      [{ view: a, features: [{ name: "age", outputName: "age" }] }],
      [result([], ["age"])],
      0,
      now,
    );
    expect(feastJSONText(empty)).toBe(JSON.stringify(empty.toFeastJSON()));
    expect(feastJSONBytes(empty).toString("utf8")).toBe(JSON.stringify(empty.toFeastJSON()));
  });

  it("strings past the buffer's first estimate, two entity columns, the same UTF-8 bytes", () => {
    const rows = 3000;
    const names = Array.from({ length: rows }, (_, i) => `näme ${i} \u2028 ${"é".repeat(i % 7)} ${"x".repeat(i % 50)}`);
    const large = new OnlineResponse(
      [
        { name: "user_id", values: names.map((_, i) => i) },
        { name: "region", values: names.map((_, i) => `r${i % 3}`) },
      ],
      [
        {
          view: spec("a", 0),
          features: [
            { name: "s", outputName: "s" },
            { name: "x", outputName: "x" },
          ],
        },
      ],
      [
        result(
          names.map((s, i) => ({ eventTs: i * 1000, values: { s, x: i / 3 } })),
          ["s", "x"],
        ),
      ],
      rows,
      0,
    );
    expect(feastJSONBytes(large).equals(Buffer.from(JSON.stringify(large.toFeastJSON()), "utf8"))).toBe(true);
  });

  it("writes every kind of double as JSON.stringify does (digit by digit where it can)", () => {
    const values: number[] = [
      0,
      -0,
      1e-6,
      1e-7,
      0.1,
      0.30000000000000004,
      999999999.9999995,
      1e9,
      1e9 - 1e-6,
      0.0000015,
      123.456,
      -123.456,
      5e-324,
      1.7976931348623157e308,
      2 ** 53,
      2 ** 53 + 2,
      -(2 ** 53),
      1e21,
      3e-6,
      NaN,
      Infinity,
      -Infinity,
      9,
      10,
      99,
      100,
      101,
      1009,
      999999,
      1000000,
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      1e15 + 7,
      0.05,
      10.000001,
      7.000009,
    ];
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const bits = new Float64Array(1);
    const words = new Uint32Array(bits.buffer);
    for (let i = 0; i < 20_000; i++) {
      values.push(
        rand() * 1000,
        Math.round(rand() * 1e9) / 1e3,
        -Math.round(rand() * 1e6) / 10 ** (i % 8),
        (rand() - 0.5) * 10 ** ((i % 40) - 20),
        Math.fround(rand() * 100),
      );
      words[0] = rand() * 2 ** 32;
      words[1] = rand() * 2 ** 32;
      values.push(bits[0]);
    }
    const r = new OnlineResponse(
      [{ name: "user_id", values: values.map((_, i) => i) }],
      [{ view: spec("a", 0), features: [{ name: "x", outputName: "x" }] }],
      [
        result(
          values.map((x) => ({ eventTs: 0, values: { x } })),
          ["x"],
        ),
      ],
      values.length,
      0,
    );
    const got = JSON.parse(feastJSONText(r)).results[1].values as unknown[];
    const want = JSON.parse(JSON.stringify(r.toFeastJSON())).results[1].values as unknown[];
    expect(got).toEqual(want);
    expect(feastJSONText(r)).toBe(JSON.stringify(r.toFeastJSON()));
  });

  it("BufferPool: answers written into reused buffers; only the pool's own buffers are taken back", () => {
    const pool = new BufferPool(2);
    const one = (id: number, s: string) =>
      new OnlineResponse(
        [{ name: "user_id", values: [id] }],
        [{ view: spec("a", 0), features: [{ name: "s", outputName: "s" }] }],
        [result([{ eventTs: 0, values: { s } }], ["s"])],
        1,
        0,
      );
    const first = feastJSONBytes(one(1, "first"), pool);
    pool.give(first);
    const second = feastJSONBytes(one(2, "short"), pool);
    // the same memory again, holding the second answer only
    expect(second.buffer).toBe(first.buffer);
    expect(second.toString()).toBe(JSON.stringify(one(2, "short").toFeastJSON()));
    // an answer past its first buffer moves to a bigger one and gives the smaller back
    const long = one(3, "long ".repeat(5000));
    const grown = feastJSONBytes(long, pool);
    expect(grown.toString()).toBe(JSON.stringify(long.toFeastJSON()));
    expect(grown.buffer.byteLength).toBeGreaterThan(second.buffer.byteLength);
    expect(pool.take(100).buffer.byteLength).toBe(second.buffer.byteLength);
    // a buffer the pool did not make is never taken in (its memory may be shared with other data)
    const foreign = Buffer.from(new ArrayBuffer(second.buffer.byteLength));
    pool.give(second);
    pool.give(second);
    pool.give(foreign);
    expect(pool.take(100).buffer).toBe(second.buffer);
    const next = pool.take(100).buffer;
    expect(next).not.toBe(second.buffer);
    expect(next).not.toBe(foreign.buffer);
    // what waits in the pool is bounded in bytes
    const small = new BufferPool(16, 40_000);
    const a = small.take(100);
    const b = small.take(100);
    const c = small.take(100);
    small.give(a);
    small.give(b);
    small.give(c);
    // 16 KB each: the third is over 40,000 bytes and is dropped
    expect(small.take(100).buffer).toBe(b.buffer);
    expect(small.take(100).buffer).toBe(a.buffer);
    expect(small.take(100).buffer).not.toBe(c.buffer);
  });

  it("writes event timestamps as isoUtc does: milliseconds, before 1970, years 0000 and 9999, and beyond", () => {
    const times = [
      0,
      1,
      -1,
      999,
      1_700_000_000_123,
      951_782_400_000, // 2000-02-29
      -62167219200000, // 0000-01-01
      253402300799999, // 9999-12-31T23:59:59.999
      253402300800000, // 10000-01-01: past what is written digit by digit
      -62167219200001,
      1.5,
    ];
    let seed = 3;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      times.push(Math.floor((seed / 2 ** 31 - 0.3) * 2.5e14) - (i % 2) * (seed % 1000));
    }
    const r = new OnlineResponse(
      [{ name: "user_id", values: times.map((_, i) => i) }],
      [{ view: spec("a", 0), features: [{ name: "x", outputName: "x" }] }],
      [
        result(
          times.map((t) => ({ eventTs: t, values: { x: 1 } })),
          ["x"],
        ),
      ],
      times.length,
      0,
    );
    expect(feastJSONText(r)).toBe(JSON.stringify(r.toFeastJSON()));
    expect(JSON.parse(feastJSONText(r)).results[1].event_timestamps.slice(4, 8)).toEqual([
      "2023-11-14T22:13:20.123Z",
      "2000-02-29T00:00:00Z",
      "0000-01-01T00:00:00Z",
      "9999-12-31T23:59:59.999Z",
    ]);
  });

  it("writes int64 values beyond 2^53 as exact numbers", () => {
    const r = new OnlineResponse(
      [{ name: "user_id", values: [1] }],
      [{ view: spec("a", 0), features: [{ name: "big", outputName: "big" }] }],
      [result([{ eventTs: 0, values: { big: 2n ** 62n } }], ["big"])],
      1,
      0,
    );
    expect(feastJSONText(r)).toContain(`"values":[${2n ** 62n}]`);
    const list = new OnlineResponse(
      [{ name: "user_id", values: [1] }],
      [{ view: spec("a", 0), features: [{ name: "ids", outputName: "ids" }] }],
      [result([{ eventTs: 0, values: { ids: [1, 2n ** 60n] } }], ["ids"])],
      1,
      0,
    );
    expect(feastJSONText(list)).toContain(`"values":[[1,${2n ** 60n}]]`);
  });
});

describe("jsonLogger", () => {
  it("writes the lines of one turn of the event loop in one write, a warning at once, and what is held on flush()", async () => {
    const writes: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        writes.push(chunk.toString());
        done();
      },
    });
    const msgs = (text: string) =>
      text
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { msg: string }).msg);
    const log = jsonLogger("info", stream);
    log.log("info", "a");
    log.log("info", "b");
    log.log("debug", "below the level");
    expect(writes).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(writes.map(msgs)).toEqual([["a", "b"]]);
    log.log("info", "c");
    log.log("warn", "w");
    expect(writes.map(msgs)).toEqual([
      ["a", "b"],
      ["c", "w"],
    ]);
    log.log("info", "d");
    log.flush();
    expect(writes.map(msgs)).toEqual([["a", "b"], ["c", "w"], ["d"]]);
    await new Promise((r) => setImmediate(r));
    expect(writes.length).toBe(3);
  });
});

describe("Metrics", () => {
  it("renders Prometheus text: counters, cumulative histogram buckets, escaped labels", () => {
    const m = new Metrics();
    const count = m.counter("reqs_total", "requests");
    const lat = m.histogram("lat_seconds", "latency", [0.001, 0.01]);
    count({ path: "/a", status: "200" });
    count({ path: "/a", status: "200" });
    count({ path: 'x"y', status: "500" });
    lat({ path: "/a" }, 0.0005);
    lat({ path: "/a" }, 0.005);
    lat({ path: "/a" }, 5);
    m.gauge("up", "uptime", () => 7);
    const text = m.render();
    expect(text).toContain("# TYPE reqs_total counter\n");
    expect(text).toContain('reqs_total{path="/a",status="200"} 2\n');
    expect(text).toContain('reqs_total{path="x\\"y",status="500"} 1\n');
    expect(text).toContain('lat_seconds_bucket{path="/a",le="0.001"} 1\n');
    expect(text).toContain('lat_seconds_bucket{path="/a",le="0.01"} 2\n');
    expect(text).toContain('lat_seconds_bucket{path="/a",le="+Inf"} 3\n');
    expect(text).toContain('lat_seconds_count{path="/a"} 3\n');
    expect(text).toContain("up 7\n");
  });
});
