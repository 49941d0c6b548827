// A live session's next items: raw events through the saved session workflow and a saved model folder, answered
// in the caller's item ids; equal to the day-by-day evaluation's top 10 for the same prefix; every kind of bad
// input has a defined answer.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateRees46, rees46SessionWorkflow } from "../adapters/datasets/index.js";
import type { Row } from "../adapters/etl/index.js";
import { loadSessionData, type LoadedSessions } from "../adapters/models/session/data.js";
import { trainSessionJob, type SessionJobResult } from "../adapters/models/session/job.js";
import { NextItemModel, type SessionEvents } from "../adapters/models/session/serve.js";
import { ValidationError } from "../common/errors.js";
import { openDuckDB, sqlString } from "../common/duckdb.js";

let dir: string;
let res: SessionJobResult;
let loaded: LoadedSessions;
let raw: Row[];
const evalTop = new Map<string, Int32Array>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fstore-session-serving-"));
  const events = join(dir, "events.parquet");
  await generateRees46(events, { sessions: 700, items: 60, days: 3, seed: 11 });
  const wf = rees46SessionWorkflow();
  await wf.fit(events);
  const data = join(dir, "sessions");
  await wf.transform(events, data, { partitionBy: "day_index" });
  wf.save(join(dir, "workflow"));
  loaded = await loadSessionData(data);
  res = await trainSessionJob({
    data,
    outDir: join(dir, "models"),
    models: ["knn"],
    trainLastDay: false,
    onSession: (model, day, session, top) => {
      if (day === 3) evalTop.set(`${model}:${session}`, top);
    },
  });
  const duck = await openDuckDB();
  try {
    raw = (
      await duck.connection.runAndReadAll(
        `SELECT * FROM read_parquet(${sqlString(events)}) WHERE event_time >= '2019-10-03' ORDER BY event_time`,
      )
    ).getRowObjectsJS() as Row[];
  } finally {
    duck.close();
  }
}, 180_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function columns(rows: Row[]): SessionEvents {
  const out: SessionEvents = {};
  for (const r of rows)
    for (const [k, v] of Object.entries(r)) (out[k] ??= []).push(typeof v === "bigint" ? Number(v) : v);
  return out;
}

async function open(name: string): Promise<NextItemModel> {
  return NextItemModel.open({ model: res.models[name], workflow: join(dir, "workflow") });
}

describe("serving a live session", () => {
  it("answers a session's prefix with the evaluation's top 10, in raw item ids", async () => {
    const s = loaded.sessions;
    for (const name of ["knn", "rules"]) {
      const m = await open(name);
      const bySession = new Map<string, Row[]>();
      for (const r of raw) {
        const k = r.user_session as string;
        if (!bySession.has(k)) bySession.set(k, []);
        (bySession.get(k) as Row[]).push(r);
      }
      let compared = 0;
      for (const events of bySession.values()) {
        const rows = m.workflow.transformRows(events);
        if (rows.length !== 1) continue;
        const items = (rows[0]["product_id-list_seq"] as number[]).map(Number);
        const i = Array.from({ length: s.length }, (_, j) => j).find(
          (j) =>
            s.day[j] === 3 &&
            s.offsets[j + 1] - s.offsets[j] === items.length &&
            s.items.subarray(s.offsets[j], s.offsets[j + 1]).every((x, k) => x === items[k]),
        );
        if (i === undefined) continue;
        if (Number(rows[0]["product_id-count"]) > 20) continue;
        // the prefix: the events before the last run of the last item (the ETL drops consecutive repeats)
        let j = events.length - 1;
        while (j > 0 && events[j - 1].product_id === events[j].product_id) j--;
        const prefix = events.slice(0, j);
        const got = m.recommend({ session: columns(prefix), topK: 10, includeSeen: true });
        const want = (evalTop.get(`${name}:${i}`) as Int32Array).slice(0, 10);
        expect(Array.from(got.itemIndices)).toEqual(Array.from(want));
        expect(got.items.every((x) => typeof x === "number" && x >= 1_000_000)).toBe(true);
        if (++compared >= 30) break;
      }
      expect(compared, name).toBeGreaterThan(10);
    }
  });

  it("excludes the session's own items unless asked", async () => {
    const m = await open("rules");
    const session = { product_id: [1000013, 1000012, 1000010] };
    const without = m.recommend({ session, topK: 20 });
    for (const it of session.product_id) expect(without.items).not.toContain(it);
    const withSeen = m.recommend({ session, topK: 60, includeSeen: true });
    expect(withSeen.items.some((x) => session.product_id.includes(x as number))).toBe(true);
  });

  it("an empty session gets the popularity answer", async () => {
    const m = await open("knn");
    const a = m.recommend({ session: { product_id: [], event_time: [] }, topK: 5 });
    expect(a.fallback).toBe("popularity");
    expect(a.items).toHaveLength(5);
  });

  it("unknown items map to the out-of-vocabulary index, never an error", async () => {
    const m = await open("rules");
    const a = m.recommend({ session: { product_id: [42, "not-an-id", 1000013] }, topK: 5 });
    expect(a.unknownItems).toBe(2);
    expect(a.fallback).toBeNull();
    expect(a.items).toEqual(m.recommend({ session: { product_id: [1000013] }, topK: 5 }).items);
  });

  it("a session longer than the model's window is cut to its latest items, as the ETL does", async () => {
    const m = await open("knn");
    const ids = Array.from({ length: 45 }, (_, i) => 1_000_000 + ((i * 7) % 60));
    const long = m.recommend({ session: { product_id: ids }, topK: 10, includeSeen: true });
    const latest = m.recommend({ session: { product_id: ids.slice(-20) }, topK: 10, includeSeen: true });
    expect(long.items).toEqual(latest.items);
    const first = m.recommend({ session: { product_id: ids.slice(0, 20) }, topK: 10, includeSeen: true });
    expect(long.items).not.toEqual(first.items);
  });

  it("malformed events are one-line errors naming the column and position", async () => {
    const m = await open("knn");
    const bad: Array<[unknown, RegExp]> = [
      [
        { product_id: [1, 2], event_time: ["2019-10-03T00:00:00Z"] },
        /session\.event_time has 1 values.*product_id has 2/,
      ],
      [{ product_id: [1, null] }, /session\.product_id\[1\] must be an item id, got null/],
      [{ product_id: [1], event_time: ["yesterday"] }, /session\.event_time\[0\]/],
      [{ product_id: [1], event_time: [5] }, /session\.event_time\[0\] must be an ISO date-time/],
      [{ product_id: [1], price: [{ a: 1 }] }, /session\.price\[0\] must be a string, number/],
      [{ event_time: [] }, /missing the item column "product_id"/],
      [{ product_id: "1,2" }, /session\.product_id must be an array/],
      [[1, 2], /session must be an object/],
    ];
    for (const [session, msg] of bad) {
      const call = () => m.recommend({ session: session as SessionEvents, topK: 5 });
      expect(call).toThrow(ValidationError);
      expect(call).toThrow(msg);
    }
    expect(() => m.recommend({ session: { product_id: [1] }, topK: 0 })).toThrow(/top_k must be a positive integer/);
  });
});
