// The shapes of the facade's requests and options (stores/feature_store.ts).
import type { ProgressSink } from "../common/progress.js";
import type { OnlineStore, EntityDfInput } from "./types.js";

export type TimeInput = Date | string | number;

export interface OpenOptions {
  /** use this online store instead of the one feature_store.yaml names */
  onlineStore?: OnlineStore;
  /** override the registry cache TTL (seconds) */
  registryTtlSeconds?: number;
  /** DuckDB threads when feature_store.yaml's offline_store sets none (a serving process keeps cores for reads) */
  defaultOfflineThreads?: number;
  /** the largest topK retrieveOnlineDocuments accepts (default 1000) */
  maxTopK?: number;
}

export interface OnlineFeaturesRequest {
  /** "view:feature" references or the name of a feature service */
  features: string[] | string;
  /** entity rows as objects... */
  entityRows?: Array<Record<string, unknown>>;
  /** ...or as columns, as in Feast's HTTP API ({"user_id": [1, 2]}) */
  entities?: Record<string, unknown[]>;
  fullFeatureNames?: boolean;
}

export interface HistoricalFeaturesRequest {
  entityDf: EntityDfInput;
  features: string[] | string;
  fullFeatureNames?: boolean;
  /** entity df column with each row's timestamp; default "event_timestamp" */
  timestampColumn?: string;
  filterByCreatedTimestamp?: boolean;
}

export interface MaterializeOptions {
  views?: string[];
  progress?: ProgressSink;
  batchSize?: number;
  /**
   * Views of the same entities are written together, this many rows at most at once (default: what fits
   * in offline_store.memory_limit at 250 bytes a row, or 8,000,000 without a limit): the offline store
   * holds each one's sorted rows until they are written. Lower it to use less memory.
   */
  mergeRows?: number;
}
