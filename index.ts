// The public API of fstore: what feature repos and services import from "fstore".
export {
  Entity,
  Field,
  FileSource,
  PushSource,
  FeatureView,
  FeatureViewProjection,
  FeatureService,
} from "./registry/definitions.js";
export type {
  Dtype,
  ValueType,
  FeatureViewSpec,
  FeatureServiceSpec,
  EntitySpec,
  DataSourceSpec,
  FieldSpec,
  VectorMetric,
} from "./registry/types.js";
export {
  Pipeline,
  QueryFeatures,
  QueryTower,
  Retrieve,
  FilterSeen,
  Filter,
  ItemFeatures,
  Rank,
  SessionModel,
  Order,
} from "./registry/pipelines.js";
export type { PipelineSpec, StageSpec } from "./registry/types.js";
export type {
  RecommendRequest,
  RecommendResponse,
  RecommendResult,
  RecommendedItem,
  StageTrace,
} from "./stores/serving.js";
export * from "./adapters/serving/index.js";
export { FstoreError, ValidationError, NotFoundError, UnavailableError } from "./common/errors.js";
export type { RepoConfig } from "./registry/config.js";
export {
  startFeatureServer,
  FeatureServerClient,
  FeatureServerError,
  responseToObject,
  type FeatureServer,
  type FeatureServerOptions,
  type OnlineFeaturesResponse,
} from "./server/index.js";
export {
  FeatureStore,
  type OnlineFeaturesRequest,
  type HistoricalFeaturesRequest,
  type MaterializeOptions,
  type PushTarget,
  type RetrieveOnlineDocumentsRequest,
} from "./stores/feature_store.js";
export { OnlineResponse, type FeastOnlineResponse, type FeatureStatus } from "./stores/online_response.js";
export type { OnlineStore, OfflineStore, RetrievalJob, VectorMatches } from "./stores/types.js";
export { consoleProgress, type ProgressSink } from "./common/progress.js";
export * from "./adapters/etl/index.js";
export * from "./adapters/datasets/index.js";
