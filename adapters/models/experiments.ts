// Reproducible training experiments on real and synthetic data: MovieLens (temporal leave-last-out, full
// catalogue ranking) comparing popularity with two-tower models, written as JSON and an SVG chart.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tf } from "./backend.js";
import { takeRows, type Frame } from "./frame.js";
import { DlrmModel } from "./dlrm.js";
import {
  comparisonChartSvg,
  embeddingScorer,
  NOT_IN_CATALOGUE,
  popularityScorer,
  rankingReport,
  retrievalReport,
} from "./evaluate.js";
import { itemCounts } from "./metrics.js";
import { leaveLastOut, loadMovieLens, type MovieLensOptions } from "./movielens.js";
import { selectInputs, type SchemaColumn } from "./schema.js";
import { syntheticAliCcp } from "./synthetic.js";
import { fit, type EpochStats } from "./train.js";
import { TwoTowerModel, type TwoTowerOptions } from "./two_tower.js";

export interface ExperimentResult {
  dataset: string;
  protocol: string;
  backend: string;
  k: number;
  models: Record<string, Record<string, number>>;
  training: Record<string, Array<Omit<EpochStats, "metrics">>>;
  seconds: number;
}

export interface RetrievalExperimentOptions {
  epochs?: number;
  batchSize?: number;
  /** the rate falls linearly to this share of its start by the last step (default 1: constant) */
  learningRateEnd?: number;
  seed?: number;
  k?: number;
  twoTower?: TwoTowerOptions;
  maxEmbeddingDim?: number;
  log?: (line: string) => void;
  /** run only the two-tower variants with these names (default: all) */
  only?: string[];
  /** two-tower variants to run instead of the experiment's own: name -> schema columns left out */
  variants?: Record<string, string[]>;
  /** evaluate after every epoch too (Recall/NDCG on the epoch line and in the training history) */
  evalEveryEpoch?: boolean;
  /** write results.json and chart.svg here */
  outDir?: string;
}

/**
 * Popularity vs two-tower variants on one train/test split. `test` holds one row per evaluated user (its user
 * features and the held-out item); `exclude[u]` are the items user u saw in training (never recommended).
 * Variants name the schema columns they leave out.
 */
export function retrievalExperiment(
  name: string,
  data: {
    schema: SchemaColumn[];
    train: Frame;
    test: Frame;
    items: Frame;
    itemIdColumn: string;
    exclude: Array<Set<number>>;
  },
  variants: Record<string, string[]>,
  opts: RetrievalExperimentOptions = {},
): ExperimentResult {
  const t0 = performance.now();
  const k = opts.k ?? 10;
  const log = opts.log ?? (() => {});
  const nItems = data.items.length;
  const catalogueIds = data.items.columns[data.itemIdColumn] as Int32Array;
  const rowOf = new Map<number, number>();
  catalogueIds.forEach((id, r) => rowOf.set(id, r));
  const toRows = (s: Set<number>) =>
    new Set([...s].map((id) => rowOf.get(id)).filter((r): r is number => r !== undefined));
  const testItems = data.test.columns[data.itemIdColumn] as Int32Array;
  // A test item the catalogue lacks cannot be retrieved: a miss, not a skipped user.
  const relevant = Array.from(testItems, (id) => new Set([rowOf.get(id) ?? NOT_IN_CATALOGUE]));
  const exclude = data.exclude.map(toRows);
  const evalOpts = { nUsers: data.test.length, nItems, k, relevant, exclude };
  const models: ExperimentResult["models"] = {};
  const training: ExperimentResult["training"] = {};

  const trainItems = data.train.columns[data.itemIdColumn] as Int32Array;
  const counts = itemCounts(
    Int32Array.from(
      trainItems.filter((id) => rowOf.has(id)),
      (id) => rowOf.get(id) as number,
    ),
    nItems,
  );
  models.popularity = retrievalReport(popularityScorer(counts), evalOpts);
  log(`${name} popularity: ${fmt(models.popularity, k)}`);

  for (const [variant, excludeCols] of Object.entries(opts.variants ?? variants)) {
    if (opts.only && !opts.only.includes(variant)) continue;
    const spec = selectInputs(data.schema, { exclude: excludeCols, maxEmbeddingDim: opts.maxEmbeddingDim ?? 64 });
    const model = new TwoTowerModel(spec, { seed: opts.seed ?? 42, ...opts.twoTower });
    if (model.options.mixedNegatives > 0) model.setCatalogue(data.items);
    const evaluate = () => {
      const scorer = embeddingScorer(
        model.encode("query", data.test),
        model.encode("candidate", data.items),
        model.dim,
      );
      try {
        return retrievalReport(scorer.score, evalOpts);
      } finally {
        scorer.dispose();
      }
    };
    const afterEpoch = opts.evalEveryEpoch
      ? () => {
          const m = evaluate();
          return { [`recall_at_${k}`]: m[`recall_at_${k}`], [`ndcg_at_${k}`]: m[`ndcg_at_${k}`] };
        }
      : undefined;
    const history = fit(model, data.train, {
      epochs: opts.epochs ?? 10,
      batchSize: opts.batchSize ?? 1024,
      learningRateEnd: opts.learningRateEnd,
      seed: opts.seed ?? 42,
      afterEpoch,
      log: (l) => log(`${name} ${variant} ${l}`),
    });
    models[variant] = evaluate();
    model.dispose();
    training[variant] = history.map(({ metrics, ...rest }) => ({ ...rest, ...metrics }));
    log(`${name} ${variant}: ${fmt(models[variant], k)}`);
  }
  const result: ExperimentResult = {
    dataset: name,
    protocol: `temporal leave-last-out; full-catalogue ranking over ${nItems} items; items seen in training excluded`,
    backend: tf.getBackend(),
    k,
    models,
    training,
    seconds: (performance.now() - t0) / 1000,
  };
  if (opts.outDir) writeResults(result, opts.outDir);
  return result;
}

function fmt(m: Record<string, number>, k: number): string {
  return `Recall@${k} ${m[`recall_at_${k}`].toFixed(4)} NDCG@${k} ${m[`ndcg_at_${k}`].toFixed(4)} MRR@${k} ${m[`mrr_at_${k}`].toFixed(4)}`;
}

export function writeResults(result: ExperimentResult, outDir: string): void {
  mkdirSync(outDir, { recursive: true });
  const slug = result.dataset.replace(/[^A-Za-z0-9_-]+/g, "_");
  writeFileSync(join(outDir, `${slug}.results.json`), JSON.stringify(result, null, 2));
  const k = result.k;
  writeFileSync(
    join(outDir, `${slug}.chart.svg`),
    comparisonChartSvg(`${result.dataset}: ${result.protocol.split(";")[0]}`, result.models, [
      `recall_at_${k}`,
      `ndcg_at_${k}`,
      `mrr_at_${k}`,
    ]),
  );
}

/**
 * MovieLens (e.g. ml-latest-small): popularity, two-tower on ids only, with genres and year, and with the user's
 * recent items as well (query-tower features known at the rating's time: the last few items, mean-pooled, and
 * the very last one).
 */
export async function movieLensExperiment(
  dataDir: string,
  opts: RetrievalExperimentOptions & MovieLensOptions & { validation?: boolean } = {},
): Promise<ExperimentResult> {
  const ml = await loadMovieLens(dataDir, opts);
  // Validation (for choosing settings such as the epoch count): drop every user's last rating, then hold out
  // the one before it; the test split is never looked at.
  const rows = opts.validation ? takeRows(ml.interactions, leaveLastOut(ml.interactions).train) : ml.interactions;
  const split = leaveLastOut(rows);
  const train = takeRows(rows, split.train);
  const test = takeRows(rows, split.test);
  const exclude = Array.from({ length: test.length }, () => new Set<number>());
  const testUser = test.columns.user_id as Int32Array;
  const userRow = new Map<number, number>();
  testUser.forEach((u, r) => userRow.set(u, r));
  const tu = train.columns.user_id as Int32Array;
  const ti = train.columns.item_id as Int32Array;
  for (let k = 0; k < train.length; k++) exclude[userRow.get(tu[k]) as number]?.add(ti[k]);
  return retrievalExperiment(
    opts.validation ? "MovieLens ml-latest-small (validation)" : "MovieLens ml-latest-small",
    { schema: ml.schema, train, test, items: ml.items, itemIdColumn: "item_id", exclude },
    {
      "two-tower (ids)": ["genres", "year", "recent_items", "last_item"],
      "two-tower (ids + genres, year)": ["recent_items", "last_item"],
      "two-tower (ids + genres, year + recent items)": [],
    },
    opts,
  );
}

/** Rows of `frame` grouped by user, in time order within a user (for leave-last-out). */
function byUserThenTime(frame: Frame, userCol: string, timeCol: string): Int32Array {
  const u = frame.columns[userCol] as Int32Array;
  const t = frame.columns[timeCol] as Float32Array;
  return Int32Array.from(
    Array.from({ length: frame.length }, (_, i) => i).sort((a, b) => u[a] - u[b] || t[a] - t[b] || a - b),
  );
}

/**
 * Synthetic Ali-CCP: retrieval on the clicked rows (leave-last-out per user; popularity vs two-tower on ids and on
 * all features) and ranking on impressions (DLRM on the click labels vs item click-through popularity; AUC and
 * log loss on the last 20% of impressions).
 */
export function aliCcpExperiment(
  opts: RetrievalExperimentOptions & { rows?: number; users?: number; items?: number; dlrmEpochs?: number } = {},
): { retrieval: ExperimentResult; ranking: Record<string, Record<string, number>> } {
  const data = syntheticAliCcp({
    rows: opts.rows ?? 200_000,
    users: opts.users ?? 2000,
    items: opts.items ?? 2000,
    seed: opts.seed ?? 1,
  });
  const imp = data.impressions;
  const clicks = imp.columns.click as Int32Array;
  const positives = takeRows(
    imp,
    Int32Array.from(Array.from({ length: imp.length }, (_, i) => i).filter((i) => clicks[i] === 1)),
  );
  const sorted = takeRows(positives, byUserThenTime(positives, "user_id", "ts"));
  const split = leaveLastOut(sorted);
  const train = takeRows(sorted, split.train);
  const test = takeRows(sorted, split.test);
  const testUser = test.columns.user_id as Int32Array;
  const userRow = new Map<number, number>();
  testUser.forEach((u, r) => userRow.set(u, r));
  const exclude = Array.from({ length: test.length }, () => new Set<number>());
  const tu = train.columns.user_id as Int32Array;
  const ti = train.columns.item_id as Int32Array;
  for (let k = 0; k < train.length; k++) exclude[userRow.get(tu[k]) as number]?.add(ti[k]);
  const idsOnly = data.schema
    .filter((c) => c.tags.includes("categorical") && !c.tags.includes("user_id") && !c.tags.includes("item_id"))
    .map((c) => c.name);
  const retrieval = retrievalExperiment(
    "synthetic Ali-CCP",
    { schema: data.schema, train, test, items: data.items, itemIdColumn: "item_id", exclude },
    { "two-tower (ids)": idsOnly, "two-tower (all features)": [] },
    opts,
  );

  // Ranking: train on the first 80% of impressions, evaluate on the rest.
  const cut = Math.floor(imp.length * 0.8);
  const rTrain = takeRows(
    imp,
    Int32Array.from({ length: cut }, (_, i) => i),
  );
  const rTest = takeRows(
    imp,
    Int32Array.from({ length: imp.length - cut }, (_, i) => cut + i),
  );
  const labels = rTest.columns.click as Int32Array;
  const spec = selectInputs(data.schema);
  const dlrm = new DlrmModel(spec, { embeddingDim: 16, seed: opts.seed ?? 42, learningRate: 0.002 });
  fit(dlrm, rTrain, {
    epochs: opts.dlrmEpochs ?? 2,
    batchSize: 1024,
    log: (l) => opts.log?.(`synthetic Ali-CCP dlrm ${l}`),
  });
  const ranking: Record<string, Record<string, number>> = { dlrm: rankingReport(dlrm.score(rTest), labels) };
  dlrm.dispose();
  // Baseline: each item's click-through rate on the training impressions (smoothed).
  const nItems = data.items.length;
  const shows = new Float32Array(nItems);
  const hits = new Float32Array(nItems);
  const trItems = rTrain.columns.item_id as Int32Array;
  const trClicks = rTrain.columns.click as Int32Array;
  for (let k = 0; k < rTrain.length; k++) {
    shows[trItems[k]]++;
    hits[trItems[k]] += trClicks[k];
  }
  const prior = trClicks.reduce((a, b) => a + b, 0) / Math.max(rTrain.length, 1);
  const teItems = rTest.columns.item_id as Int32Array;
  ranking["item CTR popularity"] = rankingReport(
    Float32Array.from(teItems, (i) => (hits[i] + 10 * prior) / (shows[i] + 10)),
    labels,
  );
  opts.log?.(
    `synthetic Ali-CCP ranking: dlrm AUC ${ranking.dlrm.auc.toFixed(4)} log loss ${ranking.dlrm.log_loss.toFixed(4)}; item CTR AUC ${ranking["item CTR popularity"].auc.toFixed(4)}`,
  );
  if (opts.outDir) {
    writeFileSync(join(opts.outDir, "synthetic_Ali-CCP.ranking.json"), JSON.stringify(ranking, null, 2));
    writeFileSync(
      join(opts.outDir, "synthetic_Ali-CCP.ranking.svg"),
      comparisonChartSvg("synthetic Ali-CCP ranking (last 20% of impressions)", ranking, ["auc"]),
    );
  }
  return { retrieval, ranking };
}
