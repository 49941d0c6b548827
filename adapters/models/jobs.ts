// Training jobs that read their features from the feature store: a point-in-time join builds the training set
// (FeatureStore.getHistoricalFeatures), a model trains with progress, is evaluated against a popularity baseline
// on the latest rows, and is exported (towers / ranking model folders, item embeddings parquet, results).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ValidationError } from "../../common/errors.js";
import type { FeatureStore } from "../../stores/feature_store.js";
import type { ProgressSink } from "../../common/progress.js";
import type { EntityDfInput } from "../../stores/types.js";
import { saveDlrm, saveTower, writeItemEmbeddings } from "./artifacts.js";
import { embeddingsTarget, writeEmbeddingsToView } from "./embeddings_view.js";
import { initBackend, type BackendPreference } from "./backend.js";
import { DLRM_DEFAULTS, DLRM_JOB_DEFAULTS, JOB_DEFAULTS, TWO_TOWER_JOB_DEFAULTS } from "./defaults.js";
import { DlrmModel, type DlrmOptions } from "./dlrm.js";
import {
  comparisonChartSvg,
  embeddingScorer,
  NOT_IN_CATALOGUE,
  popularityScorer,
  rankingReport,
  retrievalReport,
} from "./evaluate.js";
import { rng, takeRows, type Frame } from "./frame.js";
import {
  catalogueFromRows,
  itemCatalogue,
  type ItemCatalogue,
  pickRows,
  rawItemCandidates,
  rowsWhere,
  splitByTime,
  trainingRows,
  type TrainingRows,
} from "./job_data.js";
import { itemCounts } from "./metrics.js";
import { sampleNegatives } from "./negatives.js";
import { itemPopularity, popularityProbabilities } from "./popularity.js";
import { inputColumns, loadSchema, selectInputs } from "./schema.js";
import { fit, type EpochStats } from "./train.js";
import { TwoTowerModel, type TwoTowerOptions } from "./two_tower.js";

export interface TrainJobOptions {
  store: FeatureStore;
  /** ETL schema.json: cardinalities and tags of the columns (feature names, join keys, target) */
  schemaPath: string;
  entityDf: EntityDfInput;
  /** feature references or a feature service name */
  features: string[] | string;
  timestampColumn?: string;
  outDir: string;
  /** defaults: TWO_TOWER_JOB_DEFAULTS / DLRM_JOB_DEFAULTS */
  epochs?: number;
  batchSize?: number;
  /** default: the model's (TWO_TOWER_DEFAULTS / DLRM_DEFAULTS) */
  learningRate?: number;
  /** the rate falls linearly to this share of its start by the last step (defaults: *_JOB_DEFAULTS) */
  learningRateEnd?: number;
  /** share of the latest rows held out for evaluation (the two-tower job: of the positive rows; default 0.1) */
  evalFraction?: number;
  k?: number;
  /** the feature view listing every item (item embeddings are exported for all of them) */
  itemView?: string;
  /** two-tower: also write the item embeddings into this vector view (through write-to-online-store) */
  embeddingsView?: string;
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
  /**
   * rows trained on and evaluated. Two-tower (0 for DLRM, which trains on every row): `droppedTrain`, training
   * rows left out because their item is not in the item catalogue at the cut; `evalUnknownItem`, evaluation rows
   * whose item is not in it (counted as misses)
   */
  rows: { train: number; eval: number; droppedTrain: number; evalUnknownItem: number };
  /** two-tower: items in the evaluation catalogue (as of the cut) and in the exported embeddings (latest) */
  items?: { atCut: number; exported: number };
  files: string[];
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

/** Rows whose target is positive (all rows when there is no target column). */
function positives(rows: TrainingRows, target: string | undefined): TrainingRows {
  const t = target ? rows.frame.columns[target] : undefined;
  if (!t || !ArrayBuffer.isView(t)) return rows;
  return pickRows(
    rows,
    rowsWhere(rows.frame.length, (i) => t[i] > 0),
  );
}

/**
 * The embeddings view's join key: the model's item id column, or the join key of the item view (whose rows give
 * each item's key); anything else is a ValidationError naming both views.
 */
function embeddingsKeyCheck(o: TrainJobOptions, itemId: string): string {
  const view = o.embeddingsView as string;
  const { joinKey } = embeddingsTarget(o.store, view);
  if (joinKey === itemId) return joinKey;
  const itemKey = o.itemView ? o.store.getFeatureView(o.itemView).entityColumns[0]?.name : undefined;
  if (itemKey !== joinKey)
    throw new ValidationError(
      `--embeddings-view ${view} is keyed by "${joinKey}", not by the model's item id "${itemId}": give an --item-view keyed by "${joinKey}"${o.itemView ? ` (${o.itemView} is keyed by "${itemKey}")` : ""}`,
    );
  return joinKey;
}

/**
 * Two-tower retrieval from the store: trains on positive rows, evaluates on the latest ones against the item
 * catalogue as of the cut, exports query tower, item tower and the embeddings of every item (latest features).
 */
export async function trainTwoTowerJob(o: TrainJobOptions & { twoTower?: TwoTowerOptions }): Promise<TrainJobResult> {
  const backend = await initBackend(o.backend ?? "auto", o.log);
  const schema = loadSchema(o.schemaPath);
  const spec = selectInputs(schema, { maxEmbeddingDim: o.maxEmbeddingDim ?? JOB_DEFAULTS.maxEmbeddingDim });
  const itemId = spec.itemIdColumn;
  if (!itemId) throw new ValidationError(`${o.schemaPath}: no categorical column tagged item_id`);
  // a bad embeddings view fails before training, not after it
  if (o.embeddingsView) embeddingsKeyCheck(o, itemId);
  const extra = [itemId, ...(spec.targetColumn ? [spec.targetColumn] : [])];
  const all = await trainingRows(o, spec, extra, rawItemCandidates(o, spec, schema));
  // Retrieval trains on positive interactions only (as Merlin's Filter(target == 1)).
  const rows = positives(all, spec.targetColumn);
  if (rows.frame.length < 2)
    throw new ValidationError(
      `training set has ${rows.frame.length} positive row(s) (${spec.targetColumn} > 0): need at least 2`,
    );
  const split = splitByTime(rows, o.evalFraction ?? JOB_DEFAULTS.evalFraction);
  const model = new TwoTowerModel(spec, { learningRate: o.learningRate, seed: o.seed, ...o.twoTower });
  const itemColumns = [...new Set([...inputColumns(model.candidate.enc), itemId])];
  // Training and evaluation see the items as they were at the cut: no feature row from the evaluation period.
  const catalogue =
    (await itemCatalogue(o, spec, split.cutMs)) ?? catalogueFromRows(all, itemId, itemColumns, split.cutMs);
  const rowOf = new Map<number, number>();
  (catalogue.columns[itemId] as Int32Array).forEach((id, r) => rowOf.set(id, r));
  const trainAll = split.train;
  const trainAllItems = trainAll.frame.columns[itemId] as Int32Array;
  const train = pickRows(
    trainAll,
    rowsWhere(trainAll.frame.length, (i) => !trainAll.itemIdNull[i] && rowOf.has(trainAllItems[i])),
  );
  const droppedTrain = trainAll.frame.length - train.frame.length;
  if (droppedTrain > 0)
    o.log?.(
      `dropped ${droppedTrain} of ${trainAll.frame.length} training rows: their item is not in the item catalogue at the cut (${new Date(split.cutMs).toISOString()})`,
    );
  if (train.frame.length < 2)
    throw new ValidationError(
      `training set: ${train.frame.length} positive row(s) left whose item is in the item catalogue: need at least 2`,
    );
  if (model.options.mixedNegatives > 0) model.setCatalogue(catalogue);
  const trainItems = train.frame.columns[itemId] as Int32Array;
  const history = fit(model, train.frame, {
    epochs: o.epochs ?? TWO_TOWER_JOB_DEFAULTS.epochs,
    batchSize: o.batchSize ?? TWO_TOWER_JOB_DEFAULTS.batchSize,
    learningRateEnd: o.learningRateEnd ?? TWO_TOWER_JOB_DEFAULTS.learningRateEnd,
    seed: o.seed,
    progress: o.progress,
    log: o.log,
  });

  const evalRows = split.evalRows.frame;
  const k = o.k ?? JOB_DEFAULTS.k;
  const evalItems = evalRows.columns[itemId] as Int32Array;
  // An evaluation row whose item the catalogue lacks cannot be retrieved: it counts as a miss.
  let evalUnknownItem = 0;
  const relevant = Array.from(evalItems, (id, i) => {
    const r = split.evalRows.itemIdNull[i] ? undefined : rowOf.get(id);
    if (r === undefined) evalUnknownItem++;
    return new Set([r ?? NOT_IN_CATALOGUE]);
  });
  if (evalUnknownItem > 0)
    o.log?.(
      `${evalUnknownItem} of ${evalRows.length} evaluation rows have an item that is not in the item catalogue at the cut: counted as misses`,
    );
  const evalOpts = { nUsers: evalRows.length, nItems: catalogue.length, k, relevant };
  const scorer = embeddingScorer(model.encode("query", evalRows), model.encode("candidate", catalogue), model.dim);
  const counts = itemCounts(
    Int32Array.from(trainItems, (id) => rowOf.get(id) as number),
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
    batchSize: o.batchSize ?? TWO_TOWER_JOB_DEFAULTS.batchSize,
    learningRateEnd: o.learningRateEnd ?? TWO_TOWER_JOB_DEFAULTS.learningRateEnd,
    rows: train.frame.length,
    droppedRows: droppedTrain,
    cut: new Date(split.cutMs).toISOString(),
    options: model.options,
    history,
  };
  // Serving embeds every item with its latest features.
  const exported = (await itemCatalogue(o, spec, "latest")) ?? catalogueFromRows(all, itemId, itemColumns, Infinity);
  const exportIds = exported.columns[itemId] as Int32Array;
  const itemEmb = model.encode("candidate", exported);
  const popularity = itemPopularity(train.rawItems, train.rawItemColumn);
  const files: string[] = [];
  for (const side of ["query", "candidate"] as const) {
    const dir = join(o.outDir, side === "query" ? "query_tower" : "item_tower");
    await saveTower(model, side, dir, {
      userIdColumn: spec.userIdColumn,
      itemIdColumn: itemId,
      metrics: metrics["two-tower"],
      training,
      popularity,
    });
    files.push(dir);
  }
  const embPath = join(o.outDir, "item_embeddings.parquet");
  // The store may key items otherwise than the model's index (e.g. by the raw id): the export carries both.
  const storeKeys = "key" in exported ? (exported as ItemCatalogue).key : undefined;
  await writeItemEmbeddings(embPath, itemId, exportIds, itemEmb, model.dim, storeKeys);
  if (o.embeddingsView) {
    const keys = embeddingsKeyCheck(o, itemId) === itemId ? exportIds : (storeKeys?.values ?? []);
    const n = await writeEmbeddingsToView(o.store, o.embeddingsView, keys, itemEmb, model.dim);
    o.log?.(`wrote ${n} item embeddings to feature view "${o.embeddingsView}" (its vector index follows)`);
  }
  files.push(
    embPath,
    ...writeReport(o.outDir, "two-tower", metrics, [`recall_at_${k}`, `ndcg_at_${k}`, `mrr_at_${k}`], { training }),
  );
  model.dispose();
  return {
    outDir: o.outDir,
    metrics,
    history,
    rows: { train: train.frame.length, eval: evalRows.length, droppedTrain, evalUnknownItem },
    items: { atCut: catalogue.length, exported: exported.length },
    files,
  };
}

/**
 * DLRM ranking from the store: trains on labels or on positives + sampled negatives, evaluates on the latest
 * rows against item popularity (click counts, calibrated to probabilities), exports the model folder.
 */
export async function trainDlrmJob(o: TrainJobOptions & { dlrm?: DlrmOptions }): Promise<TrainJobResult> {
  const backend = await initBackend(o.backend ?? "auto", o.log);
  const schema = loadSchema(o.schemaPath);
  const spec = selectInputs(schema, { embeddingDim: o.dlrm?.embeddingDim ?? DLRM_DEFAULTS.embeddingDim });
  const negatives = o.dlrm?.negatives ?? DLRM_DEFAULTS.negatives;
  const target = spec.targetColumn;
  if (negatives === 0 && !target)
    throw new ValidationError(
      `${o.schemaPath}: no column tagged target; tag one or pass --negatives N to sample negatives`,
    );
  const itemId = spec.itemIdColumn;
  const extra = [...(itemId ? [itemId] : []), ...(target ? [target] : [])];
  const all = await trainingRows(o, spec, extra, rawItemCandidates(o, spec, schema));
  const rows = negatives > 0 ? positives(all, target) : all;
  const { train, evalRows, cutMs } = splitByTime(rows, o.evalFraction ?? JOB_DEFAULTS.evalFraction);
  const model = new DlrmModel(spec, { learningRate: o.learningRate, seed: o.seed, ...o.dlrm });
  if (negatives > 0 && model.options.negativeSource === "catalogue") {
    const id = itemId as string;
    const columns = [...new Set([...model.itemColumns, id])];
    model.setCatalogue((await itemCatalogue(o, spec, cutMs)) ?? catalogueFromRows(all, id, columns, cutMs));
  }
  const batchSize = o.batchSize ?? DLRM_JOB_DEFAULTS.batchSize;
  const history = fit(model, train.frame, {
    epochs: o.epochs ?? DLRM_JOB_DEFAULTS.epochs,
    batchSize,
    learningRateEnd: o.learningRateEnd ?? DLRM_JOB_DEFAULTS.learningRateEnd,
    seed: o.seed,
    progress: o.progress,
    log: o.log,
  });

  const { frame: evalFrame, labels } =
    negatives > 0
      ? withSampledNegatives(evalRows.frame, itemId as string, [...model.itemColumns], negatives, 12345)
      : { frame: evalRows.frame, labels: Float32Array.from(evalRows.frame.columns[target as string] as Int32Array) };
  const metrics: Record<string, Record<string, number>> = { dlrm: rankingReport(model.score(evalFrame), labels) };
  // Positive training rows: the clicks that popularity counts.
  const trainLabels =
    negatives > 0
      ? new Float32Array(train.frame.length).fill(1)
      : Float32Array.from(train.frame.columns[target as string] as Int32Array);
  const positiveTrain = pickRows(
    train,
    rowsWhere(train.frame.length, (i) => trainLabels[i] > 0),
  );
  if (itemId) {
    const trItems = train.frame.columns[itemId] as Int32Array;
    const card = spec.categorical.find((c) => c.name === itemId)?.cardinality ?? 0;
    const clicks = itemCounts(positiveTrain.frame.columns[itemId] as Int32Array, card);
    // Fitted on training rows labelled as the evaluation rows are: with sampled negatives when DLRM samples.
    let fitRows = { items: trItems, labels: trainLabels };
    if (negatives > 0) {
      const draw = sampleNegatives(trItems, trItems, negatives, rng(54321));
      const items = new Int32Array(trItems.length + draw.candidateRow.length);
      items.set(trItems);
      draw.candidateRow.forEach((j, k) => (items[trItems.length + k] = trItems[j]));
      const labels = new Float32Array(items.length);
      labels.fill(1, 0, trItems.length);
      fitRows = { items, labels };
    }
    metrics.popularity = rankingReport(
      popularityProbabilities(clicks, fitRows, evalFrame.columns[itemId] as Int32Array),
      labels,
    );
  }
  o.log?.(
    `eval on ${evalFrame.length} rows: dlrm AUC ${metrics.dlrm.auc.toFixed(4)} log loss ${metrics.dlrm.log_loss.toFixed(4)}${metrics.popularity ? `; popularity AUC ${metrics.popularity.auc.toFixed(4)} log loss ${metrics.popularity.log_loss.toFixed(4)}` : ""}`,
  );
  const training = {
    backend,
    epochs: history.length,
    batchSize,
    learningRateEnd: o.learningRateEnd ?? DLRM_JOB_DEFAULTS.learningRateEnd,
    rows: train.frame.length,
    cut: new Date(cutMs).toISOString(),
    options: model.options,
    history,
  };
  await saveDlrm(model, o.outDir, {
    userIdColumn: spec.userIdColumn,
    itemIdColumn: itemId,
    metrics: metrics.dlrm,
    training,
    ...(itemId ? { popularity: itemPopularity(positiveTrain.rawItems, positiveTrain.rawItemColumn) } : {}),
  });
  const files = [o.outDir, ...writeReport(o.outDir, "dlrm", metrics, ["auc"], { training })];
  model.dispose();
  return {
    outDir: o.outDir,
    metrics,
    history,
    rows: { train: train.frame.length, eval: evalFrame.length, droppedTrain: 0, evalUnknownItem: 0 },
    files,
  };
}

/**
 * The rows (labelled 1) followed by `perRow` negatives each (labelled 0): a negative is its positive's row with
 * the item columns of another row (drawn with a fixed seed, never the same item).
 */
function withSampledNegatives(
  rows: Frame,
  itemId: string,
  itemColumns: string[],
  perRow: number,
  seed: number,
): { frame: Frame; labels: Float32Array } {
  const items = rows.columns[itemId] as Int32Array;
  const draw = sampleNegatives(items, items, perRow, rng(seed));
  const itemCols = [...new Set([...itemColumns, itemId])];
  const other = Object.keys(rows.columns).filter((c) => !itemCols.includes(c));
  const neg = takeRows(rows, draw.candidateRow, itemCols);
  const negUser = takeRows(rows, draw.positiveRow, other);
  const frame: Frame = { length: rows.length + neg.length, columns: {} };
  for (const c of [...other, ...itemCols])
    frame.columns[c] = concatColumn(rows.columns[c], (itemCols.includes(c) ? neg : negUser).columns[c]);
  const labels = new Float32Array(frame.length);
  labels.fill(1, 0, rows.length);
  return { frame, labels };
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
