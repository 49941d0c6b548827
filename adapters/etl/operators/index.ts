// The operators, one file per family, and the registry that loads them from saved workflows. Each operator
// has its output columns and schema tags, its fit state (DuckDB queries; vocabularies and statistics tables as
// parquet under categories/), one SQL SELECT for the batch path and the same thing in JS for online rows.
export { Op, ProjectionOp } from "./base.js";
export type { FitContext, SqlContext, GroupPass, OpJson, Output, Projection } from "./base.js";
export { Categorify, type CategorifyOptions } from "./categorify.js";
export { Normalize, LogOp, FillMissing, Clip, type FillMissingOptions } from "./numeric.js";
export { Rename, Cast, Select, AddMetadata, AddTags, type RenameOptions } from "./reshape.js";
export { Expr, Filter } from "./expression.js";
export { TimeFeatures, DayIndex, TIME_FEATURES, type TimeFeature } from "./time.js";
export { JoinGroupby, TargetEncoding, GROUP_STATS, type GroupStat } from "./group_stats.js";
export { ListSlice } from "./lists.js";
export { Dropna, DedupeConsecutive, compareValues } from "./rows.js";
export { Groupby, AGGS, type Agg, type GroupbyOptions } from "./groupby.js";
export { OP_KINDS, opFromJSON } from "./kinds.js";
