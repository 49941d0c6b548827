// Session data and the baselines on hand-made sessions: what malformed input becomes, what each baseline
// scores, how the evaluation counts unseen targets, and the scorer's answers to edge-case sessions.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDuckDB, sqlString } from "../common/duckdb.js";
import { KnnTrainer, PopularityTrainer, RulesTrainer } from "../adapters/models/session/baselines.js";
import { loadSessionData, SessionBuilder, type SessionInputs, type Sessions } from "../adapters/models/session/data.js";
import { dayByDay, evaluateSessions, rankMetrics } from "../adapters/models/session/evaluate.js";
import { emptyCatalogue } from "../adapters/models/session/scorer.js";
import { loadSessionModel, saveSessionModel } from "../adapters/models/session/artifacts.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fstore-session-data-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const col = (name: string, tags: string[], properties: Record<string, unknown> = {}, isList = true) => ({
  name,
  dtype: isList ? "int32[]" : "int32",
  isList,
  tags,
  properties,
});
const catProps = (cardinality: number) => ({ cardinality, startIndex: 1, nullIndex: 1, oovIndex: 2 });

function schema(extra: Array<{ name: string }> = []) {
  return {
    columns: [
      col("user_session", ["categorical", "session_id"], catProps(100), false),
      col("day_index", ["time"], {}, false),
      col("item-list", ["categorical", "item_id", "item", "list"], catProps(13)),
      col("cat-list", ["categorical", "item", "list"], catProps(6)),
      { name: "price-list", dtype: "float64[]", isList: true, tags: ["continuous", "list"], properties: {} },
      ...extra,
    ],
  };
}

async function writeSessions(sub: string, selectSql: string, schemaJson: object = schema()): Promise<string> {
  const out = join(dir, sub);
  const duck = await openDuckDB();
  try {
    await duck.connection.run(`COPY (${selectSql}) TO ${sqlString(out + ".parquet")} (FORMAT parquet)`);
  } finally {
    duck.close();
  }
  const { mkdirSync, renameSync } = await import("node:fs");
  mkdirSync(join(out, "1"), { recursive: true });
  renameSync(out + ".parquet", join(out, "1", "part_0.parquet"));
  writeFileSync(join(out, "schema.json"), JSON.stringify(schemaJson));
  return out;
}

/** Sessions from item lists (day per session), no side features. */
function sessionsOf(days: number[], lists: number[][], cardinality = 13): { s: Sessions; inputs: SessionInputs } {
  const inputs: SessionInputs = {
    itemColumn: "items",
    itemCardinality: cardinality,
    oovIndex: 2,
    firstItemIndex: 3,
    dayColumn: "day",
    categorical: [],
    continuous: [],
  };
  const b = new SessionBuilder(inputs);
  lists.forEach((l, i) => b.add({ day: days[i], items: l }, `session ${i}`));
  return { s: b.build(), inputs };
}

describe("session data", () => {
  it("reads the ETL layout, orders by day, and maps malformed values instead of failing", async () => {
    const data = await writeSessions(
      "malformed",
      `SELECT * FROM (VALUES
        (1, 2, [3, 4, 5], [3, 3, 4], [0.5, 1.0, 1.5]),
        (2, 1, [4, 99, NULL, 5], [3, 77], [1.0, 'NaN'::DOUBLE, 2.0, 3.0, 9.0]),
        (3, 1, []::INTEGER[], []::INTEGER[], []::DOUBLE[])
      ) AS t(user_session, day_index, "item-list", "cat-list", "price-list")`,
    );
    const { sessions: s, inputs, report } = await loadSessionData(data);
    expect(inputs).toMatchObject({
      itemColumn: "item-list",
      itemCardinality: 13,
      oovIndex: 2,
      firstItemIndex: 3,
      dayColumn: "day_index",
    });
    expect(inputs.categorical.map((c) => c.name)).toEqual(["cat-list"]);
    expect(inputs.continuous).toEqual(["price-list"]);
    expect(Array.from(s.day)).toEqual([1, 1, 2]);
    // day 1 first (session 2, then the empty session 3), then day 2
    expect(Array.from(s.offsets)).toEqual([0, 4, 4, 7]);
    // 99 is beyond the cardinality and NULL is no item: both become the OOV index 2
    expect(Array.from(s.items)).toEqual([4, 2, 2, 5, 3, 4, 5]);
    // the side list of session 2 is short: padded with the null index; 77 is out of range: OOV
    expect(Array.from(s.categorical[0])).toEqual([3, 2, 1, 1, 3, 3, 4]);
    // NaN becomes 0; the longer price list is cut to the item list
    expect(Array.from(s.continuous[0])).toEqual([1, 0, 2, 3, 0.5, 1, 1.5]);
    expect(report).toEqual({
      rows: 3,
      emptySessions: 1,
      malformedItems: 2,
      misalignedSideLists: 2,
      malformedSideValues: 2,
    });
  });

  it("fails on what cannot be given a meaning, naming the column and value", async () => {
    const data = await writeSessions(
      "badday",
      `SELECT * FROM (VALUES (1, 'monday', [3, 4], [3, 3], [0.5, 1.0])) AS t(user_session, day_index, "item-list", "cat-list", "price-list")`,
    );
    await expect(loadSessionData(data)).rejects.toThrow(/column "day_index" must be an integer day, got "monday"/);
    const noItems = await writeSessions(
      "noitem",
      `SELECT 1 AS day_index`,
      schema().columns.filter((c) => c.name !== "item-list"),
    );
    await expect(loadSessionData(noItems)).rejects.toThrow(/no categorical list column tagged item_id/);
    await expect(loadSessionData(join(dir, "nowhere"))).rejects.toThrow(/no such folder/);
    await expect(loadSessionData(data, { features: ["brand-list"] })).rejects.toThrow(
      /side feature "brand-list" is not a list column of the schema/,
    );
  });
});

describe("session baselines and evaluation", () => {
  it("sequential rules weigh a later item by 1/distance; ties go to the more popular item", () => {
    const { s, inputs } = sessionsOf(
      [1, 1, 1],
      [
        [3, 4, 5],
        [3, 4],
        [6, 5, 6, 5],
      ],
    );
    const m = new RulesTrainer(emptyCatalogue(13, 3, inputs.oovIndex), 20);
    m.train(s, Int32Array.from([0, 1, 2]));
    const sc = m.scorer();
    const scores = sc.scores({ items: [3] }) as Float32Array;
    expect(scores[4]).toBeCloseTo(2);
    expect(scores[5]).toBeCloseTo(0.5);
    // after 6: 5 (1 and 1/3 steps away: 1.33) then 6 (0.5); 3 and 4 score 0 and are as popular: the lower index first
    expect(Array.from(sc.topK({ items: [9, 6] }, 4).items)).toEqual([5, 6, 3, 4]);
    // after 3: 4 (2), 5 (0.5), then 3 and 6 (0, both seen twice): the lower index
    expect(Array.from(sc.topK({ items: [3] }, 3).items)).toEqual([4, 5, 3]);
  });

  it("V-SkNN: neighbours sharing the session's recent items vote with their similarity", () => {
    const { s, inputs } = sessionsOf(
      [1, 1, 1],
      [
        [3, 4],
        [5, 6],
        [4, 7, 8],
      ],
    );
    const m = new KnnTrainer(emptyCatalogue(13, 3, inputs.oovIndex), 20, 100, 500);
    m.train(s, Int32Array.from([0, 1, 2]));
    // query [5, 4]: item 4 weighs 1 (last), item 5 weighs 1/2; sessions 0 and 2 share 4 (sim 1), session 1 shares 5 (0.5)
    const scores = m.scorer().scores({ items: [5, 4] }) as Float32Array;
    expect(Array.from(scores.subarray(3, 9))).toEqual([1, 2, 0.5, 0.5, 1, 1]);
  });

  it("an empty session gets the popularity answer, a long one is cut to the window, unknown items are OOV", () => {
    const { s, inputs } = sessionsOf(
      [1, 1],
      [
        [3, 4, 5, 6],
        [4, 5],
      ],
    );
    const rules = new RulesTrainer(emptyCatalogue(13, 3, inputs.oovIndex), 2);
    rules.train(s, Int32Array.from([0, 1]));
    const sc = rules.scorer();
    const empty = sc.topK({ items: [] }, 3);
    expect(empty.fallback).toBe("popularity");
    expect(Array.from(empty.items)).toEqual([4, 5, 3]);
    expect(sc.topK({ items: [3, 4, 5, 6, 3, 4] }, 3)).toEqual(sc.topK({ items: [3, 4] }, 3));
    // 11 was never seen in training (and 500 is beyond the catalogue): both are the OOV index, never an error
    expect(sc.normalize({ items: [11, 500] }).items).toEqual(Int32Array.from([2, 2]));
    expect(sc.topK({ items: [11] }, 2).fallback).toBeNull();
    expect(() => sc.topK({ items: [3] }, 0)).toThrow(/k must be a positive integer/);
  });

  it("metrics of a rank; a target never seen in training is a miss, a one-item session is not evaluable", () => {
    expect(rankMetrics(1)).toEqual({ ndcg_at_10: 1, ndcg_at_20: 1, recall_at_10: 1, recall_at_20: 1, mrr_at_20: 1 });
    const r15 = rankMetrics(15);
    expect(r15.ndcg_at_10).toBe(0);
    expect(r15.ndcg_at_20).toBeCloseTo(1 / Math.log2(16));
    expect(r15.mrr_at_20).toBeCloseTo(1 / 15);
    const { s, inputs } = sessionsOf([1, 1, 2, 2, 2], [[3, 4], [3, 4], [3, 4], [3, 9], [5]]);
    const pop = new PopularityTrainer(emptyCatalogue(13, 3, inputs.oovIndex), 20);
    const days = dayByDay(pop, s, { days: [1, 2] });
    expect(days).toHaveLength(1);
    expect(days[0]).toMatchObject({ day: 2, evaluated: 2, tooShort: 1, unknownTargets: 1 });
    // [3] -> 4 is a hit, [3] -> 9 (new on day 2) a miss
    expect(days[0].metrics.recall_at_20).toBe(0.5);
    // an untrained model knows no item: every target is a miss, none is skipped
    const untrained = evaluateSessions(new PopularityTrainer(emptyCatalogue(13, 3, 2), 20).scorer(), s, [2, 3, 4]);
    expect(untrained).toMatchObject({ evaluated: 2, tooShort: 1, unknownTargets: 2 });
    expect(untrained.metrics.ndcg_at_20).toBe(0);
  });

  it("a saved baseline folder loads into a scorer with the same answers", () => {
    const { s, inputs } = sessionsOf(
      [1, 1, 1],
      [
        [3, 4, 5],
        [5, 6, 7],
        [4, 7, 8],
      ],
    );
    for (const m of [
      new KnnTrainer(emptyCatalogue(13, 3, 2), 20, 2, 10),
      new RulesTrainer(emptyCatalogue(13, 3, 2), 20),
      new PopularityTrainer(emptyCatalogue(13, 3, 2), 20),
    ]) {
      m.train(s, Int32Array.from([0, 1, 2]));
      const out = join(dir, m.kind);
      saveSessionModel(out, m.artifact(), m.catalogue, inputs, { metrics: { ndcg_at_20: 0.5 }, training: {} });
      const loaded = loadSessionModel(out);
      expect(loaded.meta.kind).toBe(m.kind);
      expect(loaded.meta.popularity.items.slice(0, 3)).toEqual([4, 5, 7]);
      for (const q of [[3], [5, 4], [7], [], [12, 3]])
        expect(loaded.scorer.topK({ items: q }, 5)).toEqual(m.scorer().topK({ items: q }, 5));
    }
  });
});
