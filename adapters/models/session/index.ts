// Session-based next-item models: GRU and transformer (TensorFlow.js), the popularity, V-SkNN and
// sequential-rules baselines, day-by-day evaluation, model folders and typed-array scorers for serving.
export {
  loadSessionData,
  selectSessionInputs,
  readSessionSchema,
  SessionBuilder,
  daysOf,
  queryFromRow,
  type SessionInputs,
  type Sessions,
  type LoadReport,
  type LoadedSessions,
  type SelectSessionOptions,
} from "./data.js";
export {
  SessionScorer,
  PopularityScorer,
  topKItems,
  emptyCatalogue,
  type SessionQuery,
  type TopKAnswer,
  type Catalogue,
  type SessionModelKind,
} from "./scorer.js";
export {
  PopularityTrainer,
  RulesTrainer,
  KnnTrainer,
  RulesScorer,
  KnnScorer,
  type SessionTrainer,
  type SessionArtifact,
} from "./baselines.js";
export { GruTrainer, TransformerTrainer } from "./models.js";
export { type NeuralOptions } from "./neural.js";
export { NeuralScorer, type NeuralWeights } from "./neural_scorer.js";
export {
  evaluateSessions,
  dayByDay,
  meanOverDays,
  rankMetrics,
  sessionQuery,
  SESSION_METRICS,
  type EvalResult,
  type DayResult,
  type SessionMetric,
} from "./evaluate.js";
export { saveSessionModel, loadSessionModel, type SessionModelMeta, type LoadedSessionModel } from "./artifacts.js";
export {
  trainSessionJob,
  SESSION_MODELS,
  type SessionModelName,
  type SessionJobOptions,
  type SessionJobResult,
} from "./job.js";
export { resultsTable, perDayChartSvg, meanChartSvg } from "./report.js";
export {
  NextItemModel,
  eventRows,
  MAX_SESSION_EVENTS,
  type NextItemModelOptions,
  type NextItemRequest,
  type NextItemAnswer,
  type SessionEvents,
} from "./serve.js";
