// The session models' quality figures: for each seed, REES46-like events from the generator, notebook 004's
// session ETL, then day-by-day training and next-day evaluation of every model beside the baselines; the
// spread over seeds says how stable the figures are. `--real` runs the same on the real REES46 head slice.
//   npx tsx scripts/session_experiments.ts --sessions 20000 --items 1000 --seeds 1,2,3 --out .tmp/sessions
//   npx tsx scripts/session_experiments.ts --real --out .tmp/sessions-real
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { generateRees46, rees46SessionWorkflow } from "../adapters/datasets/index.js";
import { openDuckDB, sqlString } from "../common/duckdb.js";
import { trainSessionJob, type SessionModelName } from "../adapters/models/session/job.js";
import { SESSION_METRICS, type SessionMetric } from "../adapters/models/session/evaluate.js";
import { resultsTable } from "../adapters/models/session/report.js";
import { resolveNeuralOptions } from "../adapters/models/session/neural.js";
import { sharedDataDir } from "../adapters/datasets/index.js";

const NEURAL_DEFAULTS = resolveNeuralOptions({});
const { values: a } = parseArgs({
  options: {
    sessions: { type: "string", default: "20000" },
    items: { type: "string", default: "1000" },
    seeds: { type: "string", default: "1,2,3" },
    models: { type: "string", default: "gru,transformer" },
    epochs: { type: "string", default: "5" },
    softmax: { type: "string", default: "full" },
    negatives: { type: "string", default: "512" },
    lr: { type: "string", default: "" },
    "lr-end": { type: "string", default: String(NEURAL_DEFAULTS.learningRateEnd) },
    dim: { type: "string", default: "64" },
    "batch-size": { type: "string", default: String(NEURAL_DEFAULTS.batchSize) },
    layers: { type: "string", default: "1" },
    objective: { type: "string", default: "causal" },
    heads: { type: "string", default: "2" },
    "no-baselines": { type: "boolean", default: false },
    real: { type: "boolean", default: false },
    out: { type: "string", default: ".tmp/sessions" },
  },
});

const out = resolve(a.out as string);
mkdirSync(out, { recursive: true });
const log = (l: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${l}`);
const neural = {
  epochs: Number(a.epochs),
  softmax: a.softmax as "full" | "sampled",
  negatives: Number(a.negatives),
  learningRate: a.lr ? Number(a.lr) : undefined,
  learningRateEnd: Number(a["lr-end"]),
  dim: Number(a.dim),
  batchSize: Number(a["batch-size"]),
  layers: Number(a.layers),
  heads: Number(a.heads),
  objective: a.objective as "causal" | "mlm",
};
const models = (a.models as string).split(",") as SessionModelName[];

async function etl(events: string, dir: string): Promise<string> {
  const wf = rees46SessionWorkflow();
  await wf.fit(events);
  const sessions = join(dir, "sessions");
  await wf.transform(events, sessions, { partitionBy: "day_index" });
  wf.save(join(dir, "workflow"));
  return sessions;
}

async function run(): Promise<void> {
  const runs: Array<{ name: string; mean: Record<string, Record<SessionMetric, number>> }> = [];
  if (a.real) {
    const csv = join(sharedDataDir(), "rees46-2019-oct-head/2019-Oct-head.csv");
    if (!existsSync(csv)) throw new Error(`no REES46 head slice at ${csv}`);
    const events = join(out, "head.parquet");
    const duck = await openDuckDB();
    try {
      await duck.connection.run(
        `COPY (SELECT * FROM read_csv(${sqlString(csv)}, header = true)) TO ${sqlString(events)} (FORMAT parquet)`,
      );
    } finally {
      duck.close();
    }
    const sessions = await etl(events, out);
    const r = await trainSessionJob({ data: sessions, outDir: join(out, "models"), models, neural, log });
    runs.push({ name: "rees46-head", mean: r.mean });
    writeFileSync(join(out, "summary.md"), resultsTable(r.mean, r.perDay));
    return;
  }
  for (const seed of (a.seeds as string).split(",").map(Number)) {
    const dir = join(out, `seed-${seed}`);
    const events = join(dir, "events.parquet");
    const g = await generateRees46(events, { sessions: Number(a.sessions), items: Number(a.items), seed, days: 7 });
    log(`seed ${seed}: ${g.events} events in ${g.sessions} sessions`);
    const sessions = await etl(events, dir);
    const r = await trainSessionJob({
      data: sessions,
      outDir: join(dir, "models"),
      models,
      baselines: !a["no-baselines"],
      neural: { ...neural, seed },
      log,
    });
    runs.push({ name: `seed ${seed}`, mean: r.mean });
  }
  const names = Object.keys(runs[0].mean);
  const lines = [
    `sessions ${a.sessions}, items ${a.items}, 7 days, seeds ${a.seeds}; neural: ${JSON.stringify(neural)}`,
    "",
    `| model | ${SESSION_METRICS.map((m) => `${m} (mean, spread)`).join(" | ")} |`,
    `| --- | ${SESSION_METRICS.map(() => "---:").join(" | ")} |`,
  ];
  for (const m of names) {
    const cells = SESSION_METRICS.map((k) => {
      const v = runs.map((r) => r.mean[m][k]);
      const mean = v.reduce((x, y) => x + y, 0) / v.length;
      return `${mean.toFixed(4)} (${(Math.max(...v) - Math.min(...v)).toFixed(4)})`;
    });
    lines.push(`| ${m} | ${cells.join(" | ")} |`);
  }
  lines.push("", "NDCG@20 per seed:", "", `| model | ${runs.map((r) => r.name).join(" | ")} |`);
  lines.push(`| --- | ${runs.map(() => "---:").join(" | ")} |`);
  for (const m of names) lines.push(`| ${m} | ${runs.map((r) => r.mean[m].ndcg_at_20.toFixed(4)).join(" | ")} |`);
  writeFileSync(join(out, "summary.md"), lines.join("\n") + "\n");
  log("\n" + lines.join("\n"));
}

await run();
