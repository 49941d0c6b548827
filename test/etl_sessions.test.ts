// Notebook 004's session pipeline on real REES46 events (a slice of whole sessions of the head file, committed
// in test/fixtures/): dedupe of consecutive repeats, grouping by session sorted by time, truncation to 20,
// minimum length 2, day partitions with train/valid/test splits.
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rees46SessionWorkflow } from "../adapters/datasets/rees46.js";
import type { Row, Value } from "../adapters/etl/index.js";
import { openDuckDB } from "../common/duckdb.js";
import { queryRows } from "../adapters/etl/sql.js";
import type { Workflow } from "../adapters/etl/workflow.js";

const HEAD = join(import.meta.dirname, "fixtures", "rees46-2019-oct-head", "2019-Oct-head.csv");

let dir: string;
let wf: Workflow;
let batch: Array<Record<string, unknown>>;
let raw: Row[];
let vocab: (col: string) => Promise<Map<number, unknown>>;

function plain(v: Value | undefined): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Date) return v.getTime();
  return v ?? null;
}

async function rows(sql: string): Promise<Row[]> {
  const d = await openDuckDB();
  try {
    return await queryRows(d.connection, sql, "test read");
  } finally {
    d.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fstore-etl-sessions-"));
  // parsed once into parquet (in file order): a CSV is re-sniffed by every query
  const input = join(dir, "head.parquet");
  const d = await openDuckDB();
  try {
    await d.connection.run(`COPY (SELECT * FROM read_csv('${HEAD}', header = true)) TO '${input}' (FORMAT parquet)`);
  } finally {
    d.close();
  }
  wf = rees46SessionWorkflow();
  await wf.fit(input);
  await wf.transform(input, join(dir, "sessions"), {
    partitionBy: "day_index",
    splits: { train: 0.8, valid: 0.1, test: 0.1 },
  });
  batch = (await rows(`SELECT * FROM read_parquet('${join(dir, "sessions")}/*/*.parquet')`)).map((r) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)])),
  );
  raw = await rows(`SELECT * FROM read_parquet('${input}')`);
  vocab = async (col) =>
    new Map(
      (
        await rows(
          `SELECT * FROM read_parquet('${join(wf.stateDir as string, "categories", `unique.${col}.parquet`)}')`,
        )
      ).map((r) => [Number(r.index), plain(r[col])]),
    );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("REES46 session pipeline (notebook 004)", () => {
  it("writes day partitions with train/valid/test files and schema.json", () => {
    // the slice, like the head file it was cut from, covers 2019-10-01 00:00 to 02:50 UTC: one day
    expect(readdirSync(join(dir, "sessions")).sort()).toEqual(["1", "schema.json"]);
    expect(readdirSync(join(dir, "sessions", "1")).sort()).toEqual(["test.parquet", "train.parquet", "valid.parquet"]);
    expect(existsSync(join(dir, "sessions", "schema.json"))).toBe(true);
    expect(batch.every((r) => r.day_index === 1)).toBe(true);
  });

  it("matches an independent computation: dedupe, sort by time, >= 2 events, latest 20", async () => {
    // plain JS over the raw events, in file order
    const bySession = new Map<string, Row[]>();
    for (const r of raw) {
      if (r.user_session === null) continue;
      const s = r.user_session as string;
      if (!bySession.has(s)) bySession.set(s, []);
      (bySession.get(s) as Row[]).push(r);
    }
    const expected = new Map<string, { count: number; items: number[] }>();
    for (const [s, evs] of bySession) {
      const sorted = [...evs].sort((a, b) => (a.event_time as Date).getTime() - (b.event_time as Date).getTime());
      const items: number[] = [];
      let last: number | null = null;
      for (const e of sorted) {
        const it = Number(e.product_id);
        if (it !== last) items.push(it);
        last = it;
      }
      if (items.length >= 2) expected.set(s, { count: items.length, items: items.slice(-20) });
    }
    const sessions = await vocab("user_session");
    const products = await vocab("product_id");
    expect(batch.length).toBe(expected.size);
    // the slice has 290 sessions of two items or more: a floor, so a misread file cannot pass with next to none
    expect(batch.length).toBeGreaterThan(250);
    let truncated = 0;
    for (const r of batch) {
      const s = sessions.get(r.user_session as number) as string;
      const e = expected.get(s);
      expect(e, `session ${s}`).toBeDefined();
      expect(r["product_id-count"]).toBe(e?.count);
      expect((r["product_id-list_seq"] as number[]).map((i) => products.get(i))).toEqual(e?.items);
      const lists = Object.keys(r).filter((k) => k.endsWith("-list_seq"));
      expect(lists.length).toBe(10);
      for (const l of lists) expect((r[l] as unknown[]).length).toBe(Math.min(20, e?.count as number));
      if ((e?.count as number) > 20) truncated++;
    }
    expect(truncated).toBeGreaterThan(0);
  });

  it("a group by in passes (groups filtered by hash of the key) writes the same sessions", async () => {
    const out = join(dir, "passes");
    const res = await wf.transform(join(dir, "head.parquet"), out, { groupPasses: 2 });
    expect(res.files).toEqual(["part_0.parquet", "part_1.parquet"]);
    const again = (await rows(`SELECT * FROM read_parquet('${out}/*.parquet') ORDER BY user_session`)).map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)])),
    );
    expect(again).toEqual([...batch].sort((a, b) => (a.user_session as number) - (b.user_session as number)));
  });

  it("splits each day about 80/10/10", async () => {
    const counts = await rows(
      `SELECT parse_filename(filename, true) AS split, count(*) AS n FROM read_parquet('${join(dir, "sessions")}/1/*.parquet', filename = true) GROUP BY 1`,
    );
    const by = Object.fromEntries(counts.map((c) => [c.split, Number(c.n)]));
    const total = batch.length;
    expect(by.train / total).toBeGreaterThan(0.75);
    expect(by.valid / total).toBeGreaterThan(0.06);
    expect(by.test / total).toBeGreaterThan(0.06);
  });

  it("transformRows on a session's raw events gives the batch row", async () => {
    await wf.prepareOnline();
    const sessions = await vocab("user_session");
    const byRaw = new Map(batch.map((r) => [sessions.get(r.user_session as number), r]));
    const ids = [...new Set(raw.map((r) => r.user_session as string))].filter((s) => byRaw.has(s)).slice(0, 60);
    for (const s of ids) {
      const out = wf.transformRows(raw.filter((r) => r.user_session === s));
      expect(out.length).toBe(1);
      const got = Object.fromEntries(Object.entries(out[0]).map(([k, v]) => [k, plain(v)]));
      const want = byRaw.get(s) as Record<string, unknown>;
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      for (const k of Object.keys(want)) {
        const a = got[k];
        const b = want[k];
        const ok = Array.isArray(b)
          ? (a as unknown[]).every((x, i) =>
              typeof x === "number" ? Math.abs(x - (b[i] as number)) <= 1e-9 * Math.max(1, Math.abs(x)) : x === b[i],
            ) && (a as unknown[]).length === b.length
          : typeof b === "number"
            ? Math.abs((a as number) - b) <= 1e-9 * Math.max(1, Math.abs(b))
            : a === b;
        if (!ok) expect({ session: s, col: k, value: a }).toEqual({ session: s, col: k, value: b });
      }
    }
    // the minimum length is a training-only filter: a one-event session the batch drops is still a row online
    const single = [...new Set(raw.map((r) => r.user_session as string))].find(
      (s) => s !== null && !byRaw.has(s) && raw.filter((r) => r.user_session === s).length === 1,
    ) as string;
    const online = wf.transformRows(raw.filter((r) => r.user_session === single));
    expect(online).toHaveLength(1);
    expect(Number(online[0]["product_id-count"])).toBe(1);
  });
});
