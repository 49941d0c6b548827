// `fs train session`: session models trained day by day on the session ETL's output, evaluated next day beside
// the baselines, each saved as a model folder, with a results table (results.md, results.json) and charts.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ValidationError } from "../../../common/errors.js";
import type { ProgressSink } from "../../../common/progress.js";
import { silentProgress } from "../../../common/progress.js";
import { initBackend, type BackendPreference } from "../backend.js";
import { saveSessionModel } from "./artifacts.js";
import { KnnTrainer, PopularityTrainer, RulesTrainer, type SessionTrainer } from "./baselines.js";
import { daysOf, loadSessionData, type LoadReport, type Sessions } from "./data.js";
import { dayByDay, meanOverDays, type DayResult, type SessionMetric } from "./evaluate.js";
import { GruTrainer, TransformerTrainer } from "./models.js";
import { NeuralTrainer, type NeuralOptions } from "./neural.js";
import { meanChartSvg, perDayChartSvg, resultsTable } from "./report.js";
import { emptyCatalogue } from "./scorer.js";

export const SESSION_MODELS = ["gru", "transformer", "knn", "rules", "popularity"] as const;
export type SessionModelName = (typeof SESSION_MODELS)[number];
export const SESSION_BASELINES: SessionModelName[] = ["knn", "rules", "popularity"];

export interface SessionJobOptions {
  /** the session ETL's output folder (parquet + schema.json) */
  data: string;
  outDir: string;
  /** models to train and save (default: all) */
  models?: SessionModelName[];
  /** evaluate the baselines beside the chosen models, and save them too (default true) */
  baselines?: boolean;
  /** days to use (default: every day); the first is only trained on */
  days?: number[];
  /** data of a single day: split its time-ordered sessions into this many periods, used as days (default 4) */
  periods?: number;
  /** side features (list columns of schema.json); default: item-tagged categorical lists and continuous lists */
  features?: string[];
  neural?: NeuralOptions;
  knn?: { k?: number; sampleSize?: number };
  rulesSteps?: number;
  /** also train on the last day after its evaluation, so the saved models saw every day (default true) */
  trainLastDay?: boolean;
  backend?: BackendPreference;
  progress?: ProgressSink;
  log?: (line: string) => void;
  /** every evaluated session's top 20 (tests compare it with the saved scorer's answer) */
  onSession?: (model: SessionModelName, day: number, session: number, top: Int32Array) => void;
}

export interface SessionJobResult {
  outDir: string;
  perDay: Record<string, DayResult[]>;
  mean: Record<string, Record<SessionMetric, number>>;
  /** model name -> its folder */
  models: Record<string, string>;
  files: string[];
  load: LoadReport;
  days: number[];
  sessions: Sessions;
}

/** Replace one day by `periods` consecutive time slices of its (time-ordered) sessions. */
export function periodsOfOneDay(s: Sessions, periods: number): Sessions {
  if (!Number.isInteger(periods) || periods < 2)
    throw new ValidationError(`periods must be an integer >= 2, got ${periods}`);
  const day = Int32Array.from({ length: s.length }, (_, i) => 1 + Math.floor((i * periods) / s.length));
  return { ...s, day };
}

function parseModels(models: SessionModelName[] | undefined, baselines: boolean): SessionModelName[] {
  const chosen = models ?? [...SESSION_MODELS];
  for (const m of chosen)
    if (!(SESSION_MODELS as readonly string[]).includes(m))
      throw new ValidationError(`unknown session model "${m}" (expected one of ${SESSION_MODELS.join(", ")})`);
  const all = baselines ? [...chosen, ...SESSION_BASELINES.filter((b) => !chosen.includes(b))] : chosen;
  return [...new Set(all)];
}

export async function trainSessionJob(o: SessionJobOptions): Promise<SessionJobResult> {
  const log = o.log ?? (() => {});
  const progress = o.progress ?? silentProgress;
  const models = parseModels(o.models, o.baselines ?? true);
  const loaded = await loadSessionData(o.data, { features: o.features });
  const { inputs, report } = loaded;
  let sessions = loaded.sessions;
  log(
    `${sessions.length} sessions from ${loaded.dir}: items "${inputs.itemColumn}" (${inputs.itemCardinality}), side features ${[...inputs.categorical.map((c) => c.name), ...inputs.continuous].join(", ") || "none"}`,
  );
  if (report.malformedItems || report.emptySessions || report.misalignedSideLists || report.malformedSideValues)
    log(
      `input: ${report.emptySessions} empty sessions, ${report.malformedItems} malformed items (-> OOV), ${report.misalignedSideLists} side lists of another length, ${report.malformedSideValues} malformed side values`,
    );
  let days = daysOf(sessions);
  if (days.length === 1 && !o.days) {
    const periods = o.periods ?? 4;
    sessions = periodsOfOneDay(sessions, periods);
    days = daysOf(sessions);
    log(`one day of data: its sessions in time order split into ${periods} periods, used as days`);
  }
  if (o.days) {
    const have = new Set(days);
    const missing = o.days.filter((d) => !have.has(d));
    if (missing.length)
      throw new ValidationError(`days ${missing.join(", ")} are not in the data (it has days ${days.join(", ")})`);
    days = [...o.days].sort((a, b) => a - b);
  }
  if (days.length < 2)
    throw new ValidationError(
      `day-by-day evaluation needs at least 2 days (train on one, evaluate on the next); the data has ${days.join(", ") || "none"}`,
    );
  const needsTf = models.some((m) => m === "gru" || m === "transformer");
  const backend = needsTf ? await initBackend(o.backend ?? "auto", log) : null;
  const outDir = resolve(o.outDir);
  mkdirSync(outDir, { recursive: true });
  const perDay: Record<string, DayResult[]> = {};
  const mean: Record<string, Record<SessionMetric, number>> = {};
  const dirs: Record<string, string> = {};
  const window = o.neural?.window ?? 20;
  for (const name of models) {
    const cat = emptyCatalogue(inputs.itemCardinality, inputs.firstItemIndex, inputs.oovIndex);
    const neural: NeuralOptions = {
      ...o.neural,
      onBatch: (done, total) => {
        if (done === 1) progress.start(`${name}: training`, total);
        progress.tick(done);
        if (done === total) progress.stop();
      },
    };
    const model: SessionTrainer =
      name === "gru"
        ? new GruTrainer(inputs, cat, neural)
        : name === "transformer"
          ? new TransformerTrainer(inputs, cat, neural)
          : name === "knn"
            ? new KnnTrainer(cat, window, o.knn?.k, o.knn?.sampleSize)
            : name === "rules"
              ? new RulesTrainer(cat, window, o.rulesSteps)
              : new PopularityTrainer(cat, window);
    try {
      const results = dayByDay(model, sessions, {
        days,
        trainLastDay: o.trainLastDay,
        progress,
        log: (l) => log(l.replace(model.kind, name)),
        onSession: o.onSession ? (_m, day, i, top) => o.onSession?.(name, day, i, top) : undefined,
      });
      perDay[name] = results;
      mean[name] = meanOverDays(results);
      const trainSeconds = results.reduce((a, r) => a + r.trainSeconds, 0);
      const dir = join(outDir, name);
      saveSessionModel(dir, model.artifact(), model.catalogue, inputs, {
        metrics: mean[name],
        training: {
          data: loaded.dir,
          days,
          trainedThroughDay: o.trainLastDay === false ? days[days.length - 2] : days[days.length - 1],
          backend,
          options: model instanceof NeuralTrainer ? model.options : undefined,
          trainSeconds,
          perDay: results.map((r) => ({ day: r.day, ...r.metrics, evaluated: r.evaluated })),
        },
      });
      dirs[name] = dir;
    } finally {
      model.dispose();
    }
  }
  const files = writeReport(outDir, perDay, mean, { days, load: report, data: loaded.dir });
  log(resultsTable(mean, perDay).trimEnd());
  return { outDir, perDay, mean, models: dirs, files, load: report, days, sessions };
}

function writeReport(
  outDir: string,
  perDay: Record<string, DayResult[]>,
  mean: Record<string, Record<SessionMetric, number>>,
  extra: Record<string, unknown>,
): string[] {
  const files = ["results.json", "results.md", "results.svg", "results_by_day.svg"].map((f) => join(outDir, f));
  writeFileSync(files[0], JSON.stringify({ mean, perDay, ...extra }, null, 2));
  writeFileSync(files[1], resultsTable(mean, perDay));
  writeFileSync(files[2], meanChartSvg("next item: mean over evaluation days", mean));
  writeFileSync(files[3], perDayChartSvg("next item: NDCG@20 per evaluation day", perDay, "ndcg_at_20"));
  return files;
}
