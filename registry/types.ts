// Plain-data specs: what the registry stores and what every store works from.
// Definition classes (definitions.ts) compile down to these at apply time.

import { isAbsolute, join } from "node:path";

export const VALUE_TYPES = [
  "int32",
  "int64",
  "float32",
  "float64",
  "string",
  "bool",
  "bytes",
  "unix_timestamp",
] as const;
export type ValueType = (typeof VALUE_TYPES)[number];
export type Dtype = ValueType | `${ValueType}[]`;

export function isDtype(s: unknown): s is Dtype {
  if (typeof s !== "string") return false;
  const base = s.endsWith("[]") ? s.slice(0, -2) : s;
  return (VALUE_TYPES as readonly string[]).includes(base);
}

export function isListDtype(d: Dtype): boolean {
  return d.endsWith("[]");
}

export function baseType(d: Dtype): ValueType {
  return (d.endsWith("[]") ? d.slice(0, -2) : d) as ValueType;
}

export const VECTOR_METRICS = ["cosine", "inner_product", "l2"] as const;
export type VectorMetric = (typeof VECTOR_METRICS)[number];

export interface FieldSpec {
  name: string;
  dtype: Dtype;
  description?: string;
  tags?: Record<string, string>;
  /** an ANN index over this list-of-float field (Feast's vector_index) */
  vectorIndex?: boolean;
  /** the length every vector of the field has */
  vectorLength?: number;
  vectorSearchMetric?: VectorMetric;
}

/** The vector-indexed fields of a view. */
export function vectorFields(view: { features: FieldSpec[] }): FieldSpec[] {
  return view.features.filter((f) => f.vectorIndex === true);
}

export interface EntitySpec {
  name: string;
  joinKeys: string[];
  valueType: ValueType;
  description: string;
  tags: Record<string, string>;
  owner: string;
}

export interface FileSourceSpec {
  type: "file";
  name: string;
  /**
   * A parquet file, a folder of parquet files, or a glob, as the definition wrote it: the registry keeps
   * relative paths relative, so a copied repo reads its own files (see withRepoPaths).
   */
  path: string;
  timestampField: string;
  createdTimestampColumn?: string;
  /** raw column name in the file -> feature (or join key) name */
  fieldMapping: Record<string, string>;
  description: string;
  tags: Record<string, string>;
}

export interface PushSourceSpec {
  type: "push";
  name: string;
  batchSource: FileSourceSpec;
  description: string;
  tags: Record<string, string>;
}

export type DataSourceSpec = FileSourceSpec | PushSourceSpec;

export interface FeatureViewSpec {
  name: string;
  /** entity names */
  entities: string[];
  /** join key columns, in entity order, with their value types */
  entityColumns: FieldSpec[];
  features: FieldSpec[];
  /** 0 means no limit */
  ttlSeconds: number;
  source: DataSourceSpec;
  online: boolean;
  tags: Record<string, string>;
  description: string;
  owner: string;
}

export interface FeatureServiceSpec {
  name: string;
  /** each projection names a view and the features taken from it */
  projections: Array<{ view: string; features: string[] }>;
  tags: Record<string, string>;
  description: string;
  owner: string;
}

/** One stage of a serving pipeline, as the registry stores it (model paths as written: relative to the repo). */
export type StageSpec =
  | { kind: "query_features"; name: string; features: string[] | string }
  | { kind: "query_tower"; name: string; model: string }
  | { kind: "retrieve"; name: string; vectors: string; topK: number }
  | { kind: "filter_seen"; name: string; feature: string }
  | { kind: "filter"; name: string; expression: string }
  | { kind: "item_features"; name: string; features: string[] | string; missing: "defaults" | "drop" }
  | { kind: "rank"; name: string; model: string }
  | {
      kind: "session_model";
      name: string;
      /** a `fs train session` model folder */
      model: string;
      /** the saved session ETL workflow folder the model's data came from */
      workflow: string;
      /** the online view holding each session's events as lists, read by the session id (optional) */
      view?: string;
      /** candidates the model hands to the next stage */
      candidates: number;
      /** keep items already in the session among the candidates */
      includeSeen: boolean;
    }
  | {
      kind: "order";
      name: string;
      topK: number;
      strategy: "greedy" | "softmax";
      temperature: number;
      diversity?: { feature: string; maxPerValue: number };
    };

export type StageKind = StageSpec["kind"];

export interface PipelineSpec {
  name: string;
  /** the entity whose rows a request gives */
  entity: string;
  stages: StageSpec[];
  /** what a row the store does not know gets */
  fallback: "popularity" | "none";
  /** served features appended as parquet files under `destination` (absolute), a `sampleRate` share of requests */
  logging?: { destination: string; sampleRate: number };
  tags: Record<string, string>;
  description: string;
}

export interface MaterializationInterval {
  view: string;
  /** ms since epoch, UTC */
  start: number;
  end: number;
  /** when the run finished */
  at: number;
}

/** Everything the registry holds for one project. */
export interface RegistryContents {
  project: string;
  entities: EntitySpec[];
  dataSources: DataSourceSpec[];
  featureViews: FeatureViewSpec[];
  featureServices: FeatureServiceSpec[];
  pipelines: PipelineSpec[];
  materializations: MaterializationInterval[];
  lastUpdated: number | null;
}

/** A file source with a relative path resolved against the repo folder; absolute paths stay as they are. */
export function fileSourceIn(source: FileSourceSpec, repoPath: string): FileSourceSpec {
  return isAbsolute(source.path) ? source : { ...source, path: join(repoPath, source.path) };
}

/** A data source with its file paths resolved against the repo folder. */
export function dataSourceIn(source: DataSourceSpec, repoPath: string): DataSourceSpec {
  return source.type === "push"
    ? { ...source, batchSource: fileSourceIn(source.batchSource, repoPath) }
    : fileSourceIn(source, repoPath);
}

/** A view whose source paths are resolved against the repo folder. */
export function viewIn(view: FeatureViewSpec, repoPath: string): FeatureViewSpec {
  return { ...view, source: dataSourceIn(view.source, repoPath) };
}

/** A pipeline whose model folders and logging destination are resolved against the repo folder. */
export function pipelineIn(p: PipelineSpec, repoPath: string): PipelineSpec {
  const at = (path: string) => (isAbsolute(path) ? path : join(repoPath, path));
  const stages = p.stages.map((s) =>
    s.kind === "query_tower" || s.kind === "rank"
      ? { ...s, model: at(s.model) }
      : s.kind === "session_model"
        ? { ...s, model: at(s.model), workflow: at(s.workflow) }
        : s,
  );
  return { ...p, stages, ...(p.logging ? { logging: { ...p.logging, destination: at(p.logging.destination) } } : {}) };
}

/** Registry contents as a repo at `repoPath` uses them: every source path resolved against that folder. */
export function withRepoPaths(contents: RegistryContents, repoPath: string): RegistryContents {
  return {
    ...contents,
    dataSources: contents.dataSources.map((s) => dataSourceIn(s, repoPath)),
    featureViews: contents.featureViews.map((v) => viewIn(v, repoPath)),
    pipelines: contents.pipelines.map((p) => pipelineIn(p, repoPath)),
  };
}

/** The file source a view reads offline: its own, or the batch source behind a push source. */
export function batchSourceOf(view: FeatureViewSpec): FileSourceSpec {
  return view.source.type === "push" ? view.source.batchSource : view.source;
}
