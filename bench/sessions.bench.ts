// Session models' speed (`npm run bench -- sessions`):
// - training samples/s (next-item targets) of the GRU and the transformer, full and sampled softmax, on the
//   wasm backend, beside the two-tower figure of the same run;
// - the online next-item answer for a 20-event session over 10k and 100k items: the session ETL step
//   (saved workflow, transformRows of the raw events) and the typed-array scorer's top 10, p50/p99 each;
// - the V-SkNN and sequential-rules answer for the same session.
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { generateRees46, rees46SessionWorkflow } from "../adapters/datasets/index.js";
import type { Row } from "../adapters/etl/index.js";
import { openDuckDB, sqlString } from "../common/duckdb.js";
import { initBackend } from "../adapters/models/backend.js";
import { rng, shuffled, takeRows } from "../adapters/models/frame.js";
import { selectInputs } from "../adapters/models/schema.js";
import { syntheticAliCcp } from "../adapters/models/synthetic.js";
import { TwoTowerModel } from "../adapters/models/two_tower.js";
import { KnnTrainer, RulesTrainer } from "../adapters/models/session/baselines.js";
import { loadSessionData, queryFromRow, type LoadedSessions } from "../adapters/models/session/data.js";
import { GruTrainer, TransformerTrainer } from "../adapters/models/session/models.js";
import { resolveNeuralOptions } from "../adapters/models/session/neural.js";
import { emptyCatalogue, type SessionScorer } from "../adapters/models/session/scorer.js";
import { measure, report } from "./lib.js";

function twoTowerSamplesPerSecond(): number {
  const data = syntheticAliCcp({ rows: 30_000, users: 20_000, items: 20_000, seed: 2 });
  const spec = selectInputs(data.schema, { maxEmbeddingDim: 64 });
  const tt = new TwoTowerModel(spec, { layers: [128, 64] });
  tt.beforeFit(data.impressions); // item frequencies for the logQ correction (on by default)
  const order = shuffled(data.impressions.length, rng(3));
  const batch = (s: number) => takeRows(data.impressions, order.subarray(s * 1024, (s + 1) * 1024), tt.columns);
  tt.trainBatch(batch(0));
  const t0 = performance.now();
  const steps = 8;
  for (let s = 1; s <= steps; s++) tt.trainBatch(batch(s));
  const sps = (steps * 1024) / ((performance.now() - t0) / 1000);
  tt.dispose();
  return sps;
}

async function sessionData(dir: string, items: number, sessions: number) {
  const events = join(dir, `events-${items}.parquet`);
  await generateRees46(events, { sessions, items, days: 7, seed: 11 });
  const wf = rees46SessionWorkflow();
  await wf.fit(events);
  const out = join(dir, `sessions-${items}`);
  await wf.transform(events, out, { partitionBy: "day_index" });
  await wf.prepareOnline();
  const duck = await openDuckDB();
  let raw: Row[];
  try {
    // 20 events of distinct items, as one session one minute apart
    raw = (
      await duck.connection.runAndReadAll(
        `SELECT * EXCLUDE (rn) FROM (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY product_id ORDER BY event_time) AS rn FROM read_parquet(${sqlString(events)})) WHERE rn = 1) USING SAMPLE 20 ROWS (reservoir, 7)`,
      )
    ).getRowObjectsJS() as Row[];
  } finally {
    duck.close();
  }
  const t0 = Date.parse("2019-10-07T10:00:00Z");
  const session = raw.map((r, i) => ({ ...r, user_session: "bench-session", event_time: new Date(t0 + i * 60_000) }));
  return { wf, data: await loadSessionData(out), session };
}

function trainSpeed(d: LoadedSessions, model: "gru" | "transformer", softmax: "full" | "sampled"): number {
  const { inputs, sessions: s } = d;
  const cat = emptyCatalogue(inputs.itemCardinality, inputs.firstItemIndex, inputs.oovIndex);
  const opts = { epochs: 1, softmax, negatives: 512 };
  const m = model === "gru" ? new GruTrainer(inputs, cat, opts) : new TransformerTrainer(inputs, cat, opts);
  const warm = Int32Array.from({ length: 512 }, (_, i) => i);
  m.train(s, warm);
  const idx = Int32Array.from({ length: Math.min(s.length - 512, 2048) }, (_, i) => 512 + i);
  const r = m.train(s, idx);
  m.dispose();
  return r.samples / r.seconds;
}

export async function main(): Promise<void> {
  await initBackend("wasm", () => {});
  console.log(`load average at start: ${loadavg()[0].toFixed(1)} (2 cores; figures scale with what else runs)`);
  const dir = mkdtempSync(join(tmpdir(), "fstore-bench-sessions-"));
  try {
    const small = await sessionData(dir, 10_000, 40_000);
    const tt = twoTowerSamplesPerSecond();
    report("two-tower train, batch 1024 [wasm] (same run)", tt, "samples/s");
    for (const model of ["gru", "transformer"] as const)
      for (const softmax of ["sampled", "full"] as const)
        report(
          `${model} train, ${softmax} softmax, ${resolveNeuralOptions({}).batchSize} sessions/batch, ${small.data.inputs.itemCardinality} items [wasm]`,
          trainSpeed(small.data, model, softmax),
          "targets/s",
          { baseline: tt, baselineName: "two-tower" },
        );
    const big = await sessionData(dir, 100_000, 60_000);
    for (const { wf, data, session } of [small, big]) {
      const { inputs, sessions: s } = data;
      const N = inputs.itemCardinality;
      const all = Int32Array.from({ length: s.length }, (_, i) => i);
      const etl = await measure(() => wf.transformRows(session), 300, 50);
      const rows = wf.transformRows(session);
      const q = queryFromRow(rows[0] ?? {}, inputs);
      if (q.items.length !== 20)
        throw new Error(`bench session has ${q.items.length} items after the ETL, expected 20`);
      report(`session ETL (transformRows, 20 events), ${N} items: p50`, etl.p50 / 1000, "ms");
      report(`session ETL (transformRows, 20 events), ${N} items: p99`, etl.p99 / 1000, "ms");
      const scorers: Array<[string, SessionScorer]> = [];
      for (const Model of [GruTrainer, TransformerTrainer]) {
        const cat = emptyCatalogue(N, inputs.firstItemIndex, inputs.oovIndex);
        cat.counts.fill(1, inputs.firstItemIndex);
        const m = new Model(inputs, cat, {});
        scorers.push([m.kind, m.scorer()]);
        m.dispose();
      }
      for (const Model of [KnnTrainer, RulesTrainer]) {
        const m = new Model(emptyCatalogue(N, inputs.firstItemIndex, inputs.oovIndex), 20);
        m.train(s, all);
        scorers.push([m.kind, m.scorer()]);
      }
      for (const [kind, sc] of scorers) {
        const lat = await measure(() => sc.topK(q, 10), 300, 30);
        const share = etl.p50 / (etl.p50 + lat.p50);
        report(`${kind} top 10 of ${N} items, 20-item session: p50`, lat.p50 / 1000, "ms");
        report(`${kind} top 10 of ${N} items, 20-item session: p99`, lat.p99 / 1000, "ms");
        report(`${kind} + ETL, ${N} items: ETL share of p50`, 100 * share, "%");
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
