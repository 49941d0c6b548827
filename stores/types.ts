// The two store contracts (as Feast's OnlineStore / OfflineStore providers): one interface each,
// several implementations behind it. The FeatureStore facade is the only caller.

import type { Table } from "apache-arrow";
import type { FeatureViewSpec, FieldSpec, FileSourceSpec, VectorMetric } from "../registry/types.js";

/** Equal-length columns by name; what DuckDB chunks and online batches are made of. */
export interface ColumnBatch {
  length: number;
  columns: Record<string, ArrayLike<unknown>>;
}

// ---------------------------------------------------------------- online

/**
 * Rows for one feature view, column-wise. Join-key columns are named as in `view.entityColumns`,
 * feature columns as in `view.features`. Timestamps are ms since the epoch (UTC); createdTs 0 = none.
 */
export interface OnlineWriteBatch {
  length: number;
  keys: Record<string, ArrayLike<unknown>>;
  features: Record<string, ArrayLike<unknown>>;
  eventTs: ArrayLike<number>;
  createdTs: ArrayLike<number>;
}

/** One feature view of a read group, and the features wanted from it (the store may return more). */
export interface OnlineReadView {
  view: FeatureViewSpec;
  features: string[];
}

/**
 * Views read for the same entity rows. `entityKeys` holds one entry per entity row: the values of the
 * views' join keys, in `view.entityColumns` order. The facade puts the views keyed by the same join keys
 * (same names, same order) in one group, so that a store reads each entity once for all of them; a group
 * whose views are keyed differently is still answered correctly, one pass per distinct key. A store never
 * changes a group: the facade hands the same `views` to every read of the same features.
 */
export interface OnlineReadGroup {
  entityKeys: unknown[][];
  views: OnlineReadView[];
}

/** The answer for one view of a group, column-wise (no object per entity row). */
export interface OnlineReadResult {
  /** event time (ms) of each entity row's stored value; NaN where the entity has none */
  eventTs: Float64Array;
  /** each requested feature: one value per entity row, null when absent */
  values: Record<string, unknown[]>;
}

/** One view's rows of a multi-view write. */
export interface OnlineViewBatch {
  view: FeatureViewSpec;
  batch: OnlineWriteBatch;
}

/** The nearest entities of a vector search, nearest first. */
export interface VectorMatches {
  /** join-key values of each match, in `view.entityColumns` order */
  entityKeys: unknown[][];
  /** the distance of each match (cosine: 1 - cos; inner_product: 1 - dot; l2: Euclidean) */
  distances: Float64Array;
  /** true when the index holds no more vectors than these: asking for more finds nothing new */
  exhausted: boolean;
}

export interface OnlineStore {
  readonly type: string;
  /** Create storage for `keep` (idempotent), drop storage of `drop`. Called by apply. */
  update(project: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): Promise<void>;
  /** Remove everything this project stored. */
  teardown(project: string, views: FeatureViewSpec[]): Promise<void>;
  /**
   * Write a batch atomically (a failed write leaves none of it). A row never replaces a stored row of a
   * newer event time (ties: newer or equal created time wins). Returns the rows actually written.
   */
  write(project: string, view: FeatureViewSpec, batch: OnlineWriteBatch): Promise<number>;
  /**
   * Optional: several views' batches written atomically together, as `write` writes one; the rows written
   * per batch, in order. Materialize uses it to write the views of the same entities a key range at a time,
   * for stores that keep an entity's views side by side (SQLite); without it, it writes view by view.
   */
  writeViews?(project: string, batches: OnlineViewBatch[]): Promise<number[]>;
  /**
   * The latest stored value of each entity row and view (TTL is not applied here: the response marks old
   * values). `result[g][v]` answers `groups[g].views[v]`, one row per entity row of the group, in order,
   * duplicates included. A value that cannot be a key of its join key's dtype is a ValidationError naming
   * the view, join key, value and row.
   */
  read(project: string, groups: OnlineReadGroup[]): Promise<OnlineReadResult[][]>;
  /**
   * The `k` entities whose `field` vector (a field with `vectorIndex`) is nearest `query` (of the field's
   * length, finite): from the field's index, kept in step by every write, or by brute force when `exact`
   * (which may use another metric). Only entities the store holds a vector for; TTL is not applied here.
   */
  searchVectors?(
    project: string,
    view: FeatureViewSpec,
    field: FieldSpec,
    query: Float32Array,
    k: number,
    opts: { exact: boolean; metric: VectorMetric },
  ): Promise<VectorMatches>;
  /** Throws when the store does not answer. */
  health(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- offline

/** An entity dataframe: rows, an Arrow table, a parquet file path, or a SQL query (DuckDB dialect). */
export type EntityDfInput = Array<Record<string, unknown>> | Table | string;

export interface HistoricalViewRequest {
  view: FeatureViewSpec;
  /** feature name in the view and the column name it gets in the output */
  features: Array<{ name: string; outputName: string }>;
}

export interface HistoricalRequest {
  entityDf: EntityDfInput;
  views: HistoricalViewRequest[];
  /** entity df column holding each row's timestamp; default "event_timestamp" */
  timestampColumn?: string;
  /** also require created <= entity timestamp (Feast's opt-in) */
  filterByCreatedTimestamp?: boolean;
}

/** The result of a point-in-time join, still inside DuckDB until asked for. */
export interface RetrievalJob {
  /** output column names: entity df columns first, then the features */
  columns(): Promise<string[]>;
  /** Stream the result in column batches (timestamps as ms numbers). */
  batches(): AsyncIterable<ColumnBatch>;
  toArrow(): Promise<Table>;
  toParquet(path: string): Promise<void>;
  toRows(): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

export interface PullLatestResult {
  /** number of rows (entities) the batches will hold */
  total: number;
  /**
   * Column batches with the view's join keys and features (named as in the view, after fieldMapping),
   * plus "__event_ts" and "__created_ts" in ms (created 0 when the source has none).
   */
  batches: AsyncIterable<ColumnBatch>;
}

export interface OfflineStore {
  /** Latest row per entity key with start <= event time <= end (both inclusive), ties to the latest created. */
  pullLatest(
    view: FeatureViewSpec,
    startMs: number,
    endMs: number,
    opts?: { batchSize?: number },
  ): Promise<PullLatestResult>;
  getHistoricalFeatures(req: HistoricalRequest): Promise<RetrievalJob>;
  /**
   * Check that the source exists and holds the view's join keys, timestamp columns and features with
   * compatible types; throws a ValidationError naming the view, source file, column and types.
   */
  validateView(view: FeatureViewSpec): Promise<void>;
  /** Append rows (join keys, features, timestamp fields of the source) to a file source, atomically. */
  appendRows(source: FileSourceSpec, rows: ColumnBatch): Promise<void>;
  close(): Promise<void>;
}
