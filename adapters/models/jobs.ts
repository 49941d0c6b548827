// Training jobs that read their features from the feature store: a point-in-time join builds the training set
// (FeatureStore.getHistoricalFeatures), a model trains with progress, is evaluated against a popularity baseline
// on the latest rows, and is exported (towers / ranking model folders, item embeddings parquet, results).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ident, sqlString } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import { batchSourceOf } from "../../registry/types.js";
import type { FeatureStore } from "../../stores/feature_store.js";
import type { ProgressSink } from "../../common/progress.js";
import type { EntityDfInput } from "../../stores/types.js";
import { dlrmToLayers, saveModel, towerToLayers, writeItemEmbeddings } from "./artifacts.js";
import { initBackend, type BackendPreference } from "./backend.js";
import { DlrmModel, type DlrmOptions } from "./dlrm.js";
import { comparisonChartSvg, embeddingScorer, popularityScorer, rankingReport, retrievalReport } from "./evaluate.js";
import { frameFromBatches, rng, takeRows, uniqueBy, type Frame } from "./frame.js";
import { itemCounts } from "./metrics.js";
import { sampleNegatives } from "./negatives.js";
import { inputColumns, inputsOf, loadSchema, selectInputs, type InputSpec } from "./schema.js";
import { fit, type EpochStats } from "./train.js";
import { TwoTowerModel, type TwoTowerOptions } from "./two_tower.js";
import type { ColumnBatch } from "../../stores/types.js";

export interface TrainJobOptions {
  store: FeatureStore;
  /** ETL schema.json: cardinalities and tags of the columns (feature names, join keys, target) */
  schemaPath: string;
  entityDf: EntityDfInput;
  /** feature references or a feature service name */
  features: string[] | string;
  timestampColumn?: string;
  outDir: string;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /** share of the latest rows held out for evaluation (default 0.1) */
  evalFraction?: number;
  k?: number;
  /** the feature view listing every item (item embeddings are exported for all of them) */
  itemView?: string;
  backend?: BackendPreference;
  maxEmbeddingDim?: number;
  seed?: number;
  progress?: ProgressSink;
  log?: (line: string) => void;
}

export interface TrainJobResult {
  outDir: string;
  metrics: Record<string, Record<string, number>>;
  history: EpochStats[];
  rows: { train: number; eval: number };
  files: string[];
}

async function collect(batches: AsyncIterable<ColumnBatch>): Promise<ColumnBatch[]> {
  const out: ColumnBatch[] = [];
  for await (const b of batches) out.push(b);
  return out;
}

/** The point-in-time training set as a Frame of the model's columns, ordered by time. */
async function trainingFrame(o: TrainJobOptions, spec: InputSpec, extra: string[]): Promise<Frame> {
  const job = await o.store.getHistoricalFeatures({
    entityDf: o.entityDf,
    features: o.features,
    timestampColumn: o.timestampColumn,
  });
  try {
    const ts = o.timestampColumn ?? "event_timestamp";
    const batches = await collect(job.batches());
    const frame = frameFromBatches(
      batches,
      { categorical: spec.categorical, continuous: spec.continuous, extra },
      "training set (point-in-time join)",
    );
    if (frame.length === 0) throw new ValidationError("training set is empty: the entity dataframe has no rows");
    checkNulls(batches, [...inputColumns(spec), ...extra], frame.length, o.log);
    if (!batches[0].columns[ts]) return frame;
    // Order by time (ms need float64, so read them from the batches rather than the float32 frame).
    const t = new Float64Array(frame.length);
    let r = 0;
    for (const b of batches) for (let i = 0; i < b.length; i++) t[r++] = Number(b.columns[ts][i] ?? 0);
    const order = Int32Array.from(
      Array.from({ length: frame.length }, (_, i) => i).sort((a, b) => t[a] - t[b] || a - b),
    );
    return takeRows(frame, order);
  } finally {
    await job.close();
  }
}

/**
 * A feature that the point-in-time join left null (no feature row at or before the entity timestamp within the
 * ttl) would silently train as category 0: fail when a column is null in every row, warn when in many.
 */
function checkNulls(batches: ColumnBatch[], names: string[], total: number, log?: (line: string) => void): void {
  for (const name of names) {
    let nulls = 0;
    for (const b of batches) {
      const col = b.columns[name];
      if (col) for (let i = 0; i < b.length; i++) if (col[i] == null) nulls++;
    }
    const hint =
      "the point-in-time join found no feature row at or before the entity timestamps (within the view's ttl); check the entity df's timestamps";
    if (nulls === total)
      throw new ValidationError(`training set: column "${name}" is null in all ${total} rows: ${hint}`);
    if (nulls > total * 0.05)
      log?.(`warning: column "${name}" is null in ${nulls} of ${total} rows (used as category 0 / value 0): ${hint}`);
  }
}

/**
 * All items of the item feature view (latest features per item), through the same point-in-time path. The view
 * may be keyed by the item id column itself or by another key (e.g. the raw id) with the item id as a feature.
 */
async function itemCatalogue(o: TrainJobOptions, spec: InputSpec): Promise<Frame | null> {
  if (!o.itemView) return null;
  const view = o.store.getFeatureView(o.itemView);
  const itemId = spec.itemIdColumn as string;
  if (view.entityColumns.length !== 1)
    throw new ValidationError(
      `item view "${o.itemView}" must have one join key, has ${view.entityColumns.map((c) => c.name).join(", ")}`,
    );
  const key = view.entityColumns[0].name;
  const src = batchSourceOf(view);
  const rawKey = Object.entries(src.fieldMapping).find(([, to]) => to === key)?.[0] ?? key;
  const q = `SELECT ${ident(rawKey)} AS ${ident(key)}, max(${ident(src.timestampField)}) AS event_timestamp FROM read_parquet(${sqlString(src.path)}) GROUP BY 1`;
  const item = inputsOf(spec, ["item"]);
  const wanted = [...new Set([...inputColumns(item), itemId])].filter((c) => c !== key);
  const available = new Set(view.features.map((f) => f.name));
  const missing = wanted.filter((c) => !available.has(c));
  if (missing.length)
    throw new ValidationError(
      `item view "${o.itemView}" (keyed by ${key}) lacks the item column(s) ${missing.join(", ")} the model uses`,
    );
  const job = await o.store.getHistoricalFeatures({ entityDf: q, features: wanted.map((c) => `${o.itemView}:${c}`) });
  try {
    const batches = await collect(job.batches());
    checkNulls(
      batches,
      wanted,
      batches.reduce((a, b) => a + b.length, 0),
      o.log,
    );
    const frame = frameFromBatches(
      batches,
      {
        categorical: item.categorical,
        continuous: item.continuous,
        extra: item.categorical.some((c) => c.name === itemId) ? [] : [itemId],
      },
      `item view "${o.itemView}"`,
    );
    return uniqueBy(frame, itemId);
  } finally {
    await job.close();
  }
}

function splitByTime(frame: Frame, evalFraction: number): { train: Frame; evalRows: Frame } {
  const nEval = Math.max(1, Math.floor(frame.length * evalFraction));
  const cut = frame.length - nEval;
  return {
    train: takeRows(
      frame,
      Int32Array.from({ length: cut }, (_, i) => i),
    ),
    evalRows: takeRows(
      frame,
      Int32Array.from({ length: nEval }, (_, i) => cut + i),
    ),
  };
}

function writeReport(
  outDir: string,
  name: string,
  metrics: Record<string, Record<string, number>>,
  chartMetrics: string[],
  extra: Record<string, unknown>,
): string[] {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "results.json"), JSON.stringify({ model: name, metrics, ...extra }, null, 2));
  writeFileSync(
    join(outDir, "results.svg"),
    comparisonChartSvg(`${name}: held-out latest rows`, metrics, chartMetrics),
  );
  return [join(outDir, "results.json"), join(outDir, "results.svg")];
}

/** Two-tower retrieval from the store: trains on positive rows, exports query tower, item tower and embeddings. */
export async function trainTwoTowerJob(o: TrainJobOptions & { twoTower?: TwoTowerOptions }): Promise<TrainJobResult> {
  const backend = await initBackend(o.backend ?? "auto", o.log);
  const spec = selectInputs(loadSchema(o.schemaPath), { maxEmbeddingDim: o.maxEmbeddingDim ?? 64 });
  if (!spec.itemIdColumn) throw new ValidationError(`${o.schemaPath}: no categorical column tagged item_id`);
  const extra = [spec.itemIdColumn, ...(spec.targetColumn ? [spec.targetColumn] : [])];
  let frame = await trainingFrame(o, spec, extra);
  if (spec.targetColumn && frame.columns[spec.targetColumn]) {
    // Retrieval trains on positive interactions only (as Merlin's Filter(target == 1)).
    const t = frame.columns[spec.targetColumn] as Int32Array;
    frame = takeRows(frame, Int32Array.from(Array.from({ length: frame.length }, (_, i) => i).filter((i) => t[i] > 0)));
    if (frame.length < 2)
      throw new ValidationError(
        `training set has ${frame.length} positive row(s) (${spec.targetColumn} > 0): need at least 2`,
      );
  }
  const { train, evalRows } = splitByTime(frame, o.evalFraction ?? 0.1);
  const model = new TwoTowerModel(spec, { learningRate: o.learningRate ?? 1e-3, seed: o.seed ?? 42, ...o.twoTower });
  const itemCard = spec.categorical.find((c) => c.name === spec.itemIdColumn)?.cardinality ?? 0;
  const trainItems = train.columns[spec.itemIdColumn] as Int32Array;
  if (model.options.logQCorrection) model.setItemFrequencies(itemCounts(trainItems, itemCard));
  const catalogue =
    (await itemCatalogue(o, spec)) ??
    uniqueBy(frame, spec.itemIdColumn, [...new Set(inputColumns(model.candidate.enc).concat(spec.itemIdColumn))]);
  if (model.options.mixedNegatives > 0) model.setCatalogue(catalogue);
  const history = fit(model, train, {
    epochs: o.epochs ?? 5,
    batchSize: o.batchSize ?? 1024,
    seed: o.seed,
    progress: o.progress,
    log: o.log,
  });

  const catIds = catalogue.columns[spec.itemIdColumn] as Int32Array;
  const rowOf = new Map<number, number>();
  catIds.forEach((id, r) => rowOf.set(id, r));
  const itemEmb = model.encode("candidate", catalogue);
  const k = o.k ?? 10;
  const evalItems = evalRows.columns[spec.itemIdColumn] as Int32Array;
  const relevant = Array.from(evalItems, (id) => new Set(rowOf.has(id) ? [rowOf.get(id) as number] : []));
  const evalOpts = { nUsers: evalRows.length, nItems: catalogue.length, k, relevant };
  const scorer = embeddingScorer(model.encode("query", evalRows), itemEmb, model.dim);
  const counts = itemCounts(
    Int32Array.from(trainItems, (id) => rowOf.get(id) ?? 0),
    catalogue.length,
  );
  const metrics = {
    "two-tower": retrievalReport(scorer.score, evalOpts),
    popularity: retrievalReport(popularityScorer(counts), evalOpts),
  };
  scorer.dispose();
  o.log?.(
    `eval on ${evalRows.length} latest rows, ${catalogue.length} items: two-tower recall@${k} ${metrics["two-tower"][`recall_at_${k}`].toFixed(4)} vs popularity ${metrics.popularity[`recall_at_${k}`].toFixed(4)}`,
  );

  const training = {
    backend,
    epochs: history.length,
    batchSize: o.batchSize ?? 1024,
    rows: train.length,
    options: model.options,
    history,
  };
  const files: string[] = [];
  for (const side of ["query", "candidate"] as const) {
    const t = towerToLayers(model, side);
    const dir = join(o.outDir, side === "query" ? "query_tower" : "item_tower");
    await saveModel(t.model, dir, {
      kind: side === "query" ? "query-tower" : "item-tower",
      inputs: t.inputs,
      output: { name: "embedding", dim: model.dim, l2Normalize: model.options.l2Normalize },
      userIdColumn: spec.userIdColumn,
      itemIdColumn: spec.itemIdColumn,
      metrics: metrics["two-tower"],
      training,
    });
    t.model.dispose();
    files.push(dir);
  }
  const embPath = join(o.outDir, "item_embeddings.parquet");
  await writeItemEmbeddings(embPath, spec.itemIdColumn, catIds, itemEmb, model.dim);
  files.push(
    embPath,
    ...writeReport(o.outDir, "two-tower", metrics, [`recall_at_${k}`, `ndcg_at_${k}`, `mrr_at_${k}`], { training }),
  );
  model.dispose();
  return { outDir: o.outDir, metrics, history, rows: { train: train.length, eval: evalRows.length }, files };
}

/** DLRM ranking from the store: trains on labels or on positives + sampled negatives, exports the model folder. */
export async function trainDlrmJob(o: TrainJobOptions & { dlrm?: DlrmOptions }): Promise<TrainJobResult> {
  const backend = await initBackend(o.backend ?? "auto", o.log);
  const spec = selectInputs(loadSchema(o.schemaPath), { embeddingDim: o.dlrm?.embeddingDim ?? 64 });
  const negatives = o.dlrm?.negatives ?? 0;
  if (negatives === 0 && !spec.targetColumn)
    throw new ValidationError(
      `${o.schemaPath}: no column tagged target; tag one or pass --negatives N to sample negatives`,
    );
  const extra = [...(spec.itemIdColumn ? [spec.itemIdColumn] : []), ...(spec.targetColumn ? [spec.targetColumn] : [])];
  let frame = await trainingFrame(o, spec, extra);
  if (negatives > 0 && spec.targetColumn && frame.columns[spec.targetColumn]) {
    const t = frame.columns[spec.targetColumn] as Int32Array;
    frame = takeRows(frame, Int32Array.from(Array.from({ length: frame.length }, (_, i) => i).filter((i) => t[i] > 0)));
  }
  const { train, evalRows } = splitByTime(frame, o.evalFraction ?? 0.1);
  const model = new DlrmModel(spec, { learningRate: o.learningRate ?? 1e-3, seed: o.seed ?? 42, ...o.dlrm });
  const itemId = spec.itemIdColumn;
  if (negatives > 0 && model.options.negativeSource === "catalogue") {
    const cat =
      (await itemCatalogue(o, spec)) ??
      uniqueBy(frame, itemId as string, [...new Set([...model.itemColumns, itemId as string])]);
    model.setCatalogue(cat);
  }
  const history = fit(model, train, {
    epochs: o.epochs ?? 3,
    batchSize: o.batchSize ?? 1024,
    seed: o.seed,
    progress: o.progress,
    log: o.log,
  });

  // Evaluation rows: the held-out labelled rows, or held-out positives plus sampled negatives (fixed seed).
  let evalFrame = evalRows;
  let labels: Float32Array;
  if (negatives > 0) {
    const items = evalRows.columns[itemId as string] as Int32Array;
    const draw = sampleNegatives(items, items, negatives, rng(12345));
    const itemCols = [...new Set([...model.itemColumns, itemId as string])];
    const other = Object.keys(evalRows.columns).filter((c) => !itemCols.includes(c));
    const neg = takeRows(evalRows, draw.candidateRow, itemCols);
    const negUser = takeRows(evalRows, draw.positiveRow, other);
    const all = Int32Array.from({ length: evalRows.length }, (_, i) => i);
    evalFrame = { length: evalRows.length + neg.length, columns: {} };
    for (const c of [...other, ...itemCols]) {
      const a = takeRows(evalRows, all, [c]).columns[c];
      const b = (itemCols.includes(c) ? neg : negUser).columns[c];
      evalFrame.columns[c] = concatColumn(a, b);
    }
    labels = new Float32Array(evalFrame.length);
    labels.fill(1, 0, evalRows.length);
  } else {
    labels = Float32Array.from(evalRows.columns[spec.targetColumn as string] as Int32Array);
  }
  const metrics: Record<string, Record<string, number>> = { dlrm: rankingReport(model.score(evalFrame), labels) };
  if (itemId) {
    const trItems = train.columns[itemId] as Int32Array;
    const card = spec.categorical.find((c) => c.name === itemId)?.cardinality ?? 0;
    const counts = itemCounts(trItems, card);
    metrics.popularity = rankingReport(
      Float32Array.from(evalFrame.columns[itemId] as Int32Array, (i) => counts[i] / Math.max(1, trItems.length)),
      labels,
    );
  }
  o.log?.(
    `eval on ${evalFrame.length} rows: dlrm AUC ${metrics.dlrm.auc.toFixed(4)} log loss ${metrics.dlrm.log_loss.toFixed(4)}${metrics.popularity ? `; popularity AUC ${metrics.popularity.auc.toFixed(4)}` : ""}`,
  );
  const training = {
    backend,
    epochs: history.length,
    batchSize: o.batchSize ?? 1024,
    rows: train.length,
    options: model.options,
    history,
  };
  const d = dlrmToLayers(model);
  await saveModel(d.model, o.outDir, {
    kind: "dlrm",
    inputs: d.inputs,
    output: { name: "click_probability", dim: 1 },
    userIdColumn: spec.userIdColumn,
    itemIdColumn: itemId,
    metrics: metrics.dlrm,
    training,
  });
  d.model.dispose();
  const files = [o.outDir, ...writeReport(o.outDir, "dlrm", metrics, ["auc"], { training })];
  model.dispose();
  return { outDir: o.outDir, metrics, history, rows: { train: train.length, eval: evalFrame.length }, files };
}

function concatColumn(a: Frame["columns"][string], b: Frame["columns"][string]): Frame["columns"][string] {
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    const out =
      a instanceof Float32Array || b instanceof Float32Array
        ? new Float32Array(a.length + b.length)
        : new Int32Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  }
  if (!ArrayBuffer.isView(a) && !ArrayBuffer.isView(b)) {
    const n = a.offsets.length - 1;
    const m = b.offsets.length - 1;
    const offsets = new Int32Array(n + m + 1);
    offsets.set(a.offsets);
    for (let i = 1; i <= m; i++) offsets[n + i] = a.offsets[n] + b.offsets[i];
    const values = new Int32Array(a.values.length + b.values.length);
    values.set(a.values);
    values.set(b.values, a.values.length);
    return { offsets, values };
  }
  throw new Error("cannot concatenate a list column with a scalar column");
}
