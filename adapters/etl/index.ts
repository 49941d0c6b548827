// The ETL: a DuckDB-backed preprocessing workflow (fit on training data, saved, applied identically to batch
// parquet and to online rows) and the feature tables it hands to the feature store.
export { Workflow, isWorkflow, WORKFLOW_FILE, decodeCategory, categorifiedColumns } from "./workflow.js";
export type { TransformOptions, TransformResult, Splits } from "./transform.js";
export {
  Categorify,
  Normalize,
  LogOp,
  FillMissing,
  Clip,
  Rename,
  Cast,
  Expr,
  TimeFeatures,
  DayIndex,
  JoinGroupby,
  TargetEncoding,
  ListSlice,
  AddMetadata,
  AddTags,
  Select,
  Filter,
  Dropna,
  DedupeConsecutive,
  Groupby,
  opFromJSON,
} from "./operators/index.js";
export type {
  CategorifyOptions,
  FillMissingOptions,
  RenameOptions,
  GroupbyOptions,
  Agg,
  GroupStat,
  TimeFeature,
} from "./operators/index.js";
export { Op } from "./operators/index.js";
export { TAGS, SCHEMA_FILE, embeddingDim } from "./columns.js";
export type { TaggedColumn, ColumnInfo, Selector, Tag, SchemaEntry } from "./columns.js";
export { parseExpr, evalExpr, exprToSql } from "./expr.js";
export type { ExprNode } from "./expr.js";
export type { Row, Value, Dataset } from "./sql.js";
export { uniqueRowsByFeatures } from "./features.js";
export type { UniqueRowsOptions, UniqueRowsResult } from "./features.js";
