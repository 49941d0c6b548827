// Training and scoring with TensorFlow.js: `import { ... } from "fstore/models"`. A subpath of its own so
// importing "fstore" never loads TensorFlow.js.
export { initBackend, type BackendName, type BackendPreference } from "./backend.js";
export {
  saveModel,
  loadModel,
  predict,
  writeItemEmbeddings,
  readItemEmbeddings,
  type LoadedModel,
  type ModelMeta,
  type ModelKind,
  type ItemPopularity,
} from "./artifacts.js";
export { trainTwoTowerJob, trainDlrmJob, type TrainJobOptions, type TrainJobResult } from "./jobs.js";
export { TwoTowerModel, type TwoTowerOptions } from "./two_tower.js";
export { DlrmModel, type DlrmOptions } from "./dlrm.js";
export { DlrmScorer, type DlrmScorerWeights, type ScorerEngine } from "./dlrm_scorer.js";
export { QueryTowerScorer } from "./query_tower_scorer.js";
export { itemPopularity, topPopular, popularityProbabilities } from "./popularity.js";
export {
  TWO_TOWER_DEFAULTS,
  TWO_TOWER_JOB_DEFAULTS,
  DLRM_DEFAULTS,
  DLRM_JOB_DEFAULTS,
  JOB_DEFAULTS,
} from "./defaults.js";
export {
  loadSchema,
  parseSchema,
  selectInputs,
  inferEmbeddingDim,
  poolingWeights,
  type SchemaColumn,
  type InputSpec,
  type ListPooling,
} from "./schema.js";
export { fit, scheduledRate, type FitOptions, type Trainable } from "./train.js";
export { evaluateTopK, listMetrics, topK, auc, logLoss, type TopKMetrics } from "./metrics.js";
export { comparisonChartSvg, retrievalReport, rankingReport } from "./evaluate.js";
export * from "./session/index.js";
