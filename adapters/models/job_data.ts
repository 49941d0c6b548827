// The data of a training job, read from the feature store: the point-in-time training set in time order (with
// each row's time and raw item id), its split at a cut in time, and the item catalogue as of a time.
import { ident, sqlString } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import { batchSourceOf } from "../../registry/types.js";
import type { FeatureStore } from "../../stores/feature_store.js";
import type { ColumnBatch, EntityDfInput } from "../../stores/types.js";
import { frameFromBatches, takeRows, uniqueBy, type Frame } from "./frame.js";
import { inputColumns, inputsOf, type InputSpec, type SchemaColumn } from "./schema.js";

/** What the data readers need of a job's options. */
export interface JobSource {
  store: FeatureStore;
  entityDf: EntityDfInput;
  features: string[] | string;
  timestampColumn?: string;
  itemView?: string;
  log?: (line: string) => void;
}

/** Rows of a training set: the model's columns, and per row its time and raw item id. */
export interface TrainingRows {
  frame: Frame;
  /** event time of each row, ms since the epoch */
  times: Float64Array;
  /** each row's raw item id (the values of `rawItemColumn`) */
  rawItems: unknown[];
  rawItemColumn: string;
  /** 1 where the join left the item id column null (an item the item view does not know at the row's time) */
  itemIdNull: Uint8Array;
}

export function pickRows(rows: TrainingRows, idx: Int32Array): TrainingRows {
  return {
    frame: takeRows(rows.frame, idx),
    times: Float64Array.from(idx, (i) => rows.times[i]),
    rawItems: Array.from(idx, (i) => rows.rawItems[i]),
    rawItemColumn: rows.rawItemColumn,
    itemIdNull: Uint8Array.from(idx, (i) => rows.itemIdNull[i]),
  };
}

/** Indices of the rows for which `keep` holds. */
export function rowsWhere(n: number, keep: (i: number) => boolean): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (keep(i)) out.push(i);
  return Int32Array.from(out);
}

async function collect(batches: AsyncIterable<ColumnBatch>): Promise<ColumnBatch[]> {
  const out: ColumnBatch[] = [];
  for await (const b of batches) out.push(b);
  return out;
}

/**
 * Columns that may hold raw item ids (what serving sees), best first: the item view's join key when the job names
 * one, the join key of any view that has the item id column as a feature (keyed by the raw id), schema columns
 * tagged item_id without `categorical`, then the (encoded) item id column itself. The first one the training
 * rows carry is used.
 */
export function rawItemCandidates(o: JobSource, spec: InputSpec, schema: SchemaColumn[]): string[] {
  const out: string[] = [];
  if (o.itemView) {
    const view = o.store.getFeatureView(o.itemView);
    if (view.entityColumns.length === 1) out.push(view.entityColumns[0].name);
  }
  for (const view of o.store.listFeatureViews())
    if (view.entityColumns.length === 1 && view.features.some((f) => f.name === spec.itemIdColumn))
      out.push(view.entityColumns[0].name);
  for (const c of schema) if (c.tags.includes("item_id") && !c.tags.includes("categorical")) out.push(c.name);
  if (spec.itemIdColumn) out.push(spec.itemIdColumn);
  return [...new Set(out)];
}

/**
 * The point-in-time training set, ordered by time (ties keep the entity df's order). Raw item ids come from the
 * first of `rawItemColumns` the rows have.
 */
export async function trainingRows(
  o: JobSource,
  spec: InputSpec,
  extra: string[],
  rawItemColumns: string[],
): Promise<TrainingRows> {
  const ts = o.timestampColumn ?? "event_timestamp";
  const job = await o.store.getHistoricalFeatures({ entityDf: o.entityDf, features: o.features, timestampColumn: ts });
  try {
    const batches = await collect(job.batches());
    const frame = frameFromBatches(
      batches,
      { categorical: spec.categorical, continuous: spec.continuous, extra },
      "training set (point-in-time join)",
    );
    if (frame.length === 0) throw new ValidationError("training set is empty: the entity dataframe has no rows");
    checkNulls(batches, [...inputColumns(spec), ...extra], frame.length, o.log);
    const have = Object.keys(batches[0].columns);
    if (!have.includes(ts)) throw new ValidationError(`training set: no column "${ts}" (have ${have.join(", ")})`);
    const rawItemCol = rawItemColumns.find((c) => have.includes(c));
    // Times need float64 (ms), and raw ids may be strings or bigints: read both from the batches.
    const t = new Float64Array(frame.length);
    const raw: unknown[] = new Array(frame.length);
    const itemIdNull = new Uint8Array(frame.length);
    const itemCol = spec.itemIdColumn && have.includes(spec.itemIdColumn) ? spec.itemIdColumn : undefined;
    let r = 0;
    for (const b of batches)
      for (let i = 0; i < b.length; i++, r++) {
        t[r] = Number(b.columns[ts][i] ?? 0);
        raw[r] = rawItemCol ? b.columns[rawItemCol][i] : null;
        if (itemCol && b.columns[itemCol][i] == null) itemIdNull[r] = 1;
      }
    const order = Int32Array.from(
      Array.from({ length: frame.length }, (_, i) => i).sort((a, b) => t[a] - t[b] || a - b),
    );
    return pickRows({ frame, times: t, rawItems: raw, rawItemColumn: rawItemCol ?? "", itemIdNull }, order);
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
 * The last `evalFraction` of the rows (at least one) for evaluation, the rest for training. `cutMs` is the time
 * of the last training row: what the training and the evaluation may know of the items.
 */
export function splitByTime(
  rows: TrainingRows,
  evalFraction: number,
): { train: TrainingRows; evalRows: TrainingRows; cutMs: number } {
  const n = rows.frame.length;
  const nEval = Math.max(1, Math.floor(n * evalFraction));
  const cut = n - nEval;
  if (cut < 1)
    throw new ValidationError(
      `eval fraction ${evalFraction} of ${n} rows leaves no training row: give a smaller --eval-fraction`,
    );
  return {
    train: pickRows(
      rows,
      Int32Array.from({ length: cut }, (_, i) => i),
    ),
    evalRows: pickRows(
      rows,
      Int32Array.from({ length: nEval }, (_, i) => cut + i),
    ),
    cutMs: rows.times[cut - 1],
  };
}

const ROW = "__fstore_row";

/** Items as a Frame, with each row's value of the item view's join key (the item id column or another key). */
export type ItemCatalogue = Frame & { key: { name: string; values: unknown[] } };

/**
 * Every item of the item feature view with its features as of `asOfMs` (items without a feature row by then,
 * or only ones older than the view's ttl, are left out), or each item's latest features ("latest"), through the
 * same point-in-time path as the training set. The view may be keyed by the item id column itself or by another
 * key (e.g. the raw id) with the item id as a feature. Null when the job names no item view.
 */
export async function itemCatalogue(
  o: Pick<JobSource, "store" | "itemView" | "log">,
  spec: InputSpec,
  asOfMs: number | "latest",
): Promise<ItemCatalogue | null> {
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
  const file = `read_parquet(${sqlString(src.path)})`;
  const q =
    asOfMs === "latest"
      ? `SELECT ${ident(rawKey)} AS ${ident(key)}, max(${ident(src.timestampField)}) AS event_timestamp FROM ${file} GROUP BY 1`
      : `SELECT DISTINCT ${ident(rawKey)} AS ${ident(key)}, make_timestamp(${Math.round(asOfMs * 1000)}) AS event_timestamp FROM ${file}`;
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
    // An item whose features are all null had no feature row at the time asked: not in the catalogue yet.
    const batches = (await collect(job.batches())).map((b) =>
      selectBatchRows(b, (i) => wanted.length === 0 || wanted.some((c) => b.columns[c][i] != null)),
    );
    const total = batches.reduce((a, b) => a + b.length, 0);
    if (total === 0) {
      const when = asOfMs === "latest" ? "" : ` at ${new Date(asOfMs).toISOString()}`;
      throw new ValidationError(`item view "${o.itemView}" has no item with features${when}`);
    }
    checkNulls(batches, wanted, total, o.log);
    const frame = frameFromBatches(
      batches,
      {
        categorical: item.categorical,
        continuous: item.continuous,
        extra: item.categorical.some((c) => c.name === itemId) ? [] : [itemId],
      },
      `item view "${o.itemView}"`,
    );
    // The view's own key (e.g. the raw id) rides along by row position: a Frame holds 32-bit numbers only.
    const keys = batches.flatMap((b) => Array.from(b.columns[key]));
    frame.columns[ROW] = Int32Array.from({ length: frame.length }, (_, i) => i);
    const unique = uniqueBy(frame, itemId);
    const rows = unique.columns[ROW] as Int32Array;
    delete unique.columns[ROW];
    return Object.assign(unique, { key: { name: key, values: Array.from(rows, (r) => keys[r]) } });
  } finally {
    await job.close();
  }
}

function selectBatchRows(b: ColumnBatch, keep: (i: number) => boolean): ColumnBatch {
  const idx = rowsWhere(b.length, keep);
  if (idx.length === b.length) return b;
  const columns: ColumnBatch["columns"] = {};
  for (const [name, col] of Object.entries(b.columns)) columns[name] = Array.from(idx, (i) => col[i]);
  return { length: idx.length, columns };
}

/** One row per item (its latest row) among `rows` up to `untilMs`: the catalogue when the job has no item view. */
export function catalogueFromRows(rows: TrainingRows, itemId: string, columns: string[], untilMs: number): Frame {
  const idx = rowsWhere(rows.frame.length, (i) => rows.times[i] <= untilMs && !rows.itemIdNull[i]);
  return uniqueBy(takeRows(rows.frame, idx), itemId, columns);
}
