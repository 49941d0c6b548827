// The feature server and its client, as the library exports them.
export {
  startFeatureServer,
  DEFAULT_PORT,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_ENTITY_ROWS,
  DEFAULT_MAX_FEATURE_VALUES,
  type FeatureServer,
  type FeatureServerOptions,
  type ServedStore,
} from "./server.js";
export {
  FeatureServerClient,
  FeatureServerError,
  responseToObject,
  type FeatureServerClientOptions,
  type GetOnlineFeaturesParams,
  type OnlineFeaturesResponse,
  type PushParams,
  type WriteResult,
} from "./client.js";
