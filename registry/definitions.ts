// The definitions API users write in their repo's .ts files. Each class validates on construction
// and compiles to a plain spec (types.ts) that the registry stores.
//
// Objects carry a `fstoreKind` brand rather than relying on `instanceof`: a repo's files may be loaded
// through a different module instance of this library (jiti), and the brand survives that.

import { ValidationError } from "../common/errors.js";
import { parseTtl } from "../common/time.js";
import { checkOptions } from "./options.js";
import type { Pipeline } from "./pipelines.js";
import {
  type DataSourceSpec,
  type Dtype,
  type EntitySpec,
  type FeatureServiceSpec,
  type FeatureViewSpec,
  type FieldSpec,
  type FileSourceSpec,
  type PushSourceSpec,
  type ValueType,
  type VectorMetric,
  VALUE_TYPES,
  VECTOR_METRICS,
  isDtype,
} from "./types.js";

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkName(kind: string, name: unknown): string {
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw new ValidationError(
      `${kind} name ${JSON.stringify(name)} must be an identifier (letters, digits, _; not starting with a digit)`,
    );
  }
  return name;
}

function checkTags(what: string, tags: unknown): Record<string, string> {
  if (tags === undefined) return {};
  if (typeof tags !== "object" || tags === null || Array.isArray(tags))
    throw new ValidationError(`${what}: tags must be an object of strings`);
  for (const [k, v] of Object.entries(tags)) {
    if (typeof v !== "string") throw new ValidationError(`${what}: tag "${k}" must be a string, got ${typeof v}`);
  }
  return { ...(tags as Record<string, string>) };
}

/** An optional string option (description, owner): absent is "", anything but a string is refused. */
function optString(what: string, key: string, v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw new ValidationError(`${what}: ${key} must be a string, got ${typeof v}`);
  return v;
}

// The options each class accepts; anything else is refused by checkOptions (add new options here).
export const FIELD_OPTIONS: readonly string[] = [
  "name",
  "dtype",
  "description",
  "tags",
  "vectorIndex",
  "vectorLength",
  "vectorSearchMetric",
];
export const ENTITY_OPTIONS: readonly string[] = ["name", "joinKeys", "valueType", "description", "tags", "owner"];
export const FILE_SOURCE_OPTIONS: readonly string[] = [
  "name",
  "path",
  "timestampField",
  "createdTimestampColumn",
  "fieldMapping",
  "description",
  "tags",
];
export const PUSH_SOURCE_OPTIONS: readonly string[] = ["name", "batchSource", "description", "tags"];
export const FEATURE_VIEW_OPTIONS: readonly string[] = [
  "name",
  "entities",
  "schema",
  "source",
  "ttl",
  "online",
  "tags",
  "description",
  "owner",
];
export const FEATURE_SERVICE_OPTIONS: readonly string[] = ["name", "features", "tags", "description", "owner"];

export interface FieldOptions {
  name: string;
  dtype: Dtype;
  description?: string;
  tags?: Record<string, string>;
  /** keep an ANN index over this field (a float32[] or float64[] of `vectorLength` numbers) */
  vectorIndex?: boolean;
  vectorLength?: number;
  /** default "cosine" */
  vectorSearchMetric?: VectorMetric;
}

export class Field {
  readonly fstoreKind = "field" as const;
  readonly name: string;
  readonly dtype: Dtype;
  readonly description: string;
  readonly tags: Record<string, string>;
  /** the vector index options, checked */
  readonly vector: Pick<FieldSpec, "vectorIndex" | "vectorLength" | "vectorSearchMetric">;
  constructor(o: FieldOptions) {
    checkOptions("Field", o?.name, o, FIELD_OPTIONS);
    this.name = checkName("Field", o.name);
    if (!isDtype(o.dtype)) {
      throw new ValidationError(
        `Field "${o.name}": dtype ${JSON.stringify(o.dtype)} is not one of ${VALUE_TYPES.join(", ")} (or a list of one, e.g. "int64[]")`,
      );
    }
    this.dtype = o.dtype;
    this.description = optString(`Field "${o.name}"`, "description", o.description);
    this.tags = checkTags(`Field "${o.name}"`, o.tags);
    this.vector = checkVectorOptions(this.name, this.dtype, o);
  }
  toSpec(): FieldSpec {
    const s: FieldSpec = { name: this.name, dtype: this.dtype };
    if (this.description) s.description = this.description;
    if (Object.keys(this.tags).length) s.tags = this.tags;
    return { ...s, ...this.vector };
  }
}

/** Feast's vector options: an index needs a list-of-float dtype and a positive length. */
function checkVectorOptions(
  name: string,
  dtype: Dtype,
  o: FieldOptions,
): Pick<FieldSpec, "vectorIndex" | "vectorLength" | "vectorSearchMetric"> {
  const what = `Field "${name}"`;
  if (o.vectorIndex !== undefined && typeof o.vectorIndex !== "boolean")
    throw new ValidationError(`${what}: vectorIndex must be true or false, got ${JSON.stringify(o.vectorIndex)}`);
  if (!o.vectorIndex) {
    if (o.vectorLength !== undefined || o.vectorSearchMetric !== undefined)
      throw new ValidationError(`${what}: vectorLength and vectorSearchMetric need vectorIndex: true`);
    return {};
  }
  if (dtype !== "float32[]" && dtype !== "float64[]")
    throw new ValidationError(`${what}: a vector index needs dtype "float32[]" or "float64[]", got "${dtype}"`);
  const len = o.vectorLength;
  if (typeof len !== "number" || !Number.isInteger(len) || len <= 0 || len > 65536)
    throw new ValidationError(
      `${what}: vectorLength must be an integer from 1 to 65536 (the length of every vector), got ${JSON.stringify(len)}`,
    );
  const metric = o.vectorSearchMetric ?? "cosine";
  if (!(VECTOR_METRICS as readonly string[]).includes(metric))
    throw new ValidationError(
      `${what}: vectorSearchMetric must be one of ${VECTOR_METRICS.join(", ")}, got ${JSON.stringify(metric)}`,
    );
  return { vectorIndex: true, vectorLength: len, vectorSearchMetric: metric };
}

export interface EntityOptions {
  name: string;
  joinKeys?: string[];
  valueType?: ValueType;
  description?: string;
  tags?: Record<string, string>;
  owner?: string;
}

export class Entity {
  readonly fstoreKind = "entity" as const;
  readonly name: string;
  readonly joinKeys: string[];
  readonly valueType: ValueType;
  readonly description: string;
  readonly tags: Record<string, string>;
  readonly owner: string;
  constructor(o: EntityOptions) {
    checkOptions("Entity", o?.name, o, ENTITY_OPTIONS);
    this.name = checkName("Entity", o.name);
    const keys = o.joinKeys ?? [o.name];
    if (!Array.isArray(keys) || keys.length !== 1) {
      throw new ValidationError(
        `Entity "${o.name}": joinKeys must hold exactly one column (a composite key is a feature view over several entities), got ${JSON.stringify(keys)}`,
      );
    }
    checkName(`Entity "${o.name}" join key`, keys[0]);
    this.joinKeys = [...keys];
    const vt = o.valueType ?? "int64";
    if (!(VALUE_TYPES as readonly string[]).includes(vt) || vt === "bytes") {
      throw new ValidationError(
        `Entity "${o.name}": valueType ${JSON.stringify(vt)} must be one of int32, int64, string, bool, float32, float64, unix_timestamp`,
      );
    }
    this.valueType = vt;
    this.description = optString(`Entity "${o.name}"`, "description", o.description);
    this.tags = checkTags(`Entity "${o.name}"`, o.tags);
    this.owner = optString(`Entity "${o.name}"`, "owner", o.owner);
  }
  toSpec(): EntitySpec {
    return {
      name: this.name,
      joinKeys: this.joinKeys,
      valueType: this.valueType,
      description: this.description,
      tags: this.tags,
      owner: this.owner,
    };
  }
}

export interface FileSourceOptions {
  name?: string;
  path: string;
  timestampField: string;
  createdTimestampColumn?: string;
  fieldMapping?: Record<string, string>;
  description?: string;
  tags?: Record<string, string>;
}

export class FileSource {
  readonly fstoreKind = "file_source" as const;
  readonly name: string;
  readonly path: string;
  readonly timestampField: string;
  readonly createdTimestampColumn?: string;
  readonly fieldMapping: Record<string, string>;
  readonly description: string;
  readonly tags: Record<string, string>;
  constructor(o: FileSourceOptions) {
    checkOptions("FileSource", o?.name ?? o?.path, o, FILE_SOURCE_OPTIONS);
    if (typeof o.path !== "string" || o.path.length === 0) {
      throw new ValidationError(
        `FileSource ${JSON.stringify(o?.name ?? "")}: path must be a non-empty string (a parquet file, folder or glob)`,
      );
    }
    this.name = checkName(
      "FileSource",
      o.name ??
        o.path
          .replace(/^.*[\\/]/, "")
          .replace(/\.parquet$/, "")
          .replace(/[^A-Za-z0-9_]/g, "_"),
    );
    this.path = o.path;
    if (typeof o.timestampField !== "string" || !o.timestampField) {
      throw new ValidationError(`FileSource "${this.name}": timestampField is required (the event timestamp column)`);
    }
    this.timestampField = o.timestampField;
    if (o.createdTimestampColumn !== undefined && typeof o.createdTimestampColumn !== "string")
      throw new ValidationError(`FileSource "${this.name}": createdTimestampColumn must be a column name`);
    this.createdTimestampColumn = o.createdTimestampColumn || undefined;
    this.fieldMapping = { ...(o.fieldMapping ?? {}) };
    for (const [k, v] of Object.entries(this.fieldMapping)) {
      if (typeof v !== "string" || !v)
        throw new ValidationError(`FileSource "${this.name}": fieldMapping["${k}"] must be a column name`);
    }
    this.description = optString(`FileSource "${this.name}"`, "description", o.description);
    this.tags = checkTags(`FileSource "${this.name}"`, o.tags);
  }
  /** Relative paths resolve against the repo folder. */
  toSpec(resolvePath: (p: string) => string = (p) => p): FileSourceSpec {
    const s: FileSourceSpec = {
      type: "file",
      name: this.name,
      path: resolvePath(this.path),
      timestampField: this.timestampField,
      fieldMapping: this.fieldMapping,
      description: this.description,
      tags: this.tags,
    };
    if (this.createdTimestampColumn) s.createdTimestampColumn = this.createdTimestampColumn;
    return s;
  }
}

export interface PushSourceOptions {
  name: string;
  batchSource: FileSource;
  description?: string;
  tags?: Record<string, string>;
}

export class PushSource {
  readonly fstoreKind = "push_source" as const;
  readonly name: string;
  readonly batchSource: FileSource;
  readonly description: string;
  readonly tags: Record<string, string>;
  constructor(o: PushSourceOptions) {
    checkOptions("PushSource", o?.name, o, PUSH_SOURCE_OPTIONS);
    this.name = checkName("PushSource", o.name);
    if (!isKind(o.batchSource, "file_source")) {
      throw new ValidationError(
        `PushSource "${o.name}": batchSource must be a FileSource (where pushed rows land offline)`,
      );
    }
    this.batchSource = o.batchSource;
    this.description = optString(`PushSource "${o.name}"`, "description", o.description);
    this.tags = checkTags(`PushSource "${o.name}"`, o.tags);
  }
  toSpec(resolvePath?: (p: string) => string): PushSourceSpec {
    return {
      type: "push",
      name: this.name,
      batchSource: this.batchSource.toSpec(resolvePath),
      description: this.description,
      tags: this.tags,
    };
  }
}

export interface FeatureViewOptions {
  name: string;
  entities: Entity[];
  schema: Field[];
  source: FileSource | PushSource;
  /** seconds, or "90s" | "15m" | "12h" | "7d"; 0 = no limit. Default 0. */
  ttl?: number | string;
  online?: boolean;
  tags?: Record<string, string>;
  description?: string;
  owner?: string;
}

export class FeatureView {
  readonly fstoreKind = "feature_view" as const;
  readonly name: string;
  readonly entities: Entity[];
  readonly schema: Field[];
  readonly source: FileSource | PushSource;
  readonly ttlSeconds: number;
  readonly online: boolean;
  readonly tags: Record<string, string>;
  readonly description: string;
  readonly owner: string;
  constructor(o: FeatureViewOptions) {
    checkOptions("FeatureView", o?.name, o, FEATURE_VIEW_OPTIONS);
    this.name = checkName("FeatureView", o.name);
    const what = `FeatureView "${o.name}"`;
    if (!Array.isArray(o.entities) || o.entities.length === 0)
      throw new ValidationError(`${what}: entities must list at least one Entity`);
    o.entities.forEach((e, i) => {
      if (!isKind(e, "entity")) throw new ValidationError(`${what}: entities[${i}] is not an Entity`);
    });
    const entNames = o.entities.map((e) => e.name);
    const dupEnt = entNames.find((n, i) => entNames.indexOf(n) !== i);
    if (dupEnt) throw new ValidationError(`${what}: entity "${dupEnt}" is listed twice`);
    this.entities = [...o.entities];
    if (!Array.isArray(o.schema) || o.schema.length === 0)
      throw new ValidationError(`${what}: schema must list at least one Field`);
    o.schema.forEach((f, i) => {
      if (!isKind(f, "field")) throw new ValidationError(`${what}: schema[${i}] is not a Field`);
    });
    const joinKeys = new Set(this.entities.flatMap((e) => e.joinKeys));
    // A schema may list the join keys (as Feast allows); they are not features.
    const features = o.schema.filter((f) => !joinKeys.has(f.name));
    if (features.length === 0) throw new ValidationError(`${what}: schema has no feature besides the join keys`);
    const names = features.map((f) => f.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) throw new ValidationError(`${what}: field "${dup}" is defined twice in the schema`);
    this.schema = [...o.schema];
    if (!isKind(o.source, "file_source") && !isKind(o.source, "push_source")) {
      throw new ValidationError(`${what}: source must be a FileSource or a PushSource`);
    }
    this.source = o.source;
    this.ttlSeconds = parseTtl(o.ttl ?? 0, what);
    if (o.online !== undefined && typeof o.online !== "boolean")
      throw new ValidationError(`${what}: online must be true or false, got ${JSON.stringify(o.online)}`);
    this.online = o.online ?? true;
    this.tags = checkTags(what, o.tags);
    this.description = optString(what, "description", o.description);
    this.owner = optString(what, "owner", o.owner);
  }

  /** The features of this view (schema minus the join keys). */
  get features(): Field[] {
    const joinKeys = new Set(this.entities.flatMap((e) => e.joinKeys));
    return this.schema.filter((f) => !joinKeys.has(f.name));
  }

  /** A projection of some of this view's features, for a FeatureService. */
  select(featureNames: string[]): FeatureViewProjection {
    const have = new Set(this.features.map((f) => f.name));
    for (const n of featureNames) {
      if (!have.has(n))
        throw new ValidationError(`FeatureView "${this.name}".select: no feature "${n}" (has ${[...have].join(", ")})`);
    }
    return new FeatureViewProjection(this, [...featureNames]);
  }

  toSpec(resolvePath?: (p: string) => string): FeatureViewSpec {
    const entityColumns: FieldSpec[] = [];
    for (const e of this.entities) {
      const declared = this.schema.find((f) => f.name === e.joinKeys[0]);
      entityColumns.push({ name: e.joinKeys[0], dtype: declared ? declared.dtype : e.valueType });
    }
    const source: DataSourceSpec = this.source.toSpec(resolvePath);
    return {
      name: this.name,
      entities: this.entities.map((e) => e.name),
      entityColumns,
      features: this.features.map((f) => f.toSpec()),
      ttlSeconds: this.ttlSeconds,
      source,
      online: this.online,
      tags: this.tags,
      description: this.description,
      owner: this.owner,
    };
  }
}

export class FeatureViewProjection {
  readonly fstoreKind = "feature_view_projection" as const;
  constructor(
    readonly view: FeatureView,
    readonly featureNames: string[],
  ) {}
}

export interface FeatureServiceOptions {
  name: string;
  features: Array<FeatureView | FeatureViewProjection>;
  tags?: Record<string, string>;
  description?: string;
  owner?: string;
}

export class FeatureService {
  readonly fstoreKind = "feature_service" as const;
  readonly name: string;
  readonly features: Array<FeatureView | FeatureViewProjection>;
  readonly tags: Record<string, string>;
  readonly description: string;
  readonly owner: string;
  constructor(o: FeatureServiceOptions) {
    checkOptions("FeatureService", o?.name, o, FEATURE_SERVICE_OPTIONS);
    this.name = checkName("FeatureService", o.name);
    if (!Array.isArray(o.features) || o.features.length === 0) {
      throw new ValidationError(
        `FeatureService "${o.name}": features must list at least one FeatureView or view.select([...])`,
      );
    }
    o.features.forEach((f, i) => {
      if (!isKind(f, "feature_view") && !isKind(f, "feature_view_projection")) {
        throw new ValidationError(
          `FeatureService "${o.name}": features[${i}] is not a FeatureView or a view.select([...])`,
        );
      }
    });
    this.features = [...o.features];
    this.tags = checkTags(`FeatureService "${o.name}"`, o.tags);
    this.description = optString(`FeatureService "${o.name}"`, "description", o.description);
    this.owner = optString(`FeatureService "${o.name}"`, "owner", o.owner);
  }
  toSpec(): FeatureServiceSpec {
    return {
      name: this.name,
      projections: this.features.map((f) =>
        isKind(f, "feature_view")
          ? { view: f.name, features: f.features.map((x) => x.name) }
          : { view: f.view.name, features: f.featureNames },
      ),
      tags: this.tags,
      description: this.description,
      owner: this.owner,
    };
  }
}

export type Definition = Entity | FileSource | PushSource | FeatureView | FeatureService | Pipeline;

interface KindMap {
  field: Field;
  entity: Entity;
  file_source: FileSource;
  push_source: PushSource;
  feature_view: FeatureView;
  feature_view_projection: FeatureViewProjection;
  feature_service: FeatureService;
  pipeline: Pipeline;
}

export function isKind<K extends keyof KindMap>(x: unknown, kind: K): x is KindMap[K] {
  return typeof x === "object" && x !== null && (x as { fstoreKind?: unknown }).fstoreKind === kind;
}

export function isDefinition(x: unknown): x is Definition {
  return (
    isKind(x, "entity") ||
    isKind(x, "file_source") ||
    isKind(x, "push_source") ||
    isKind(x, "feature_view") ||
    isKind(x, "feature_service") ||
    isKind(x, "pipeline")
  );
}
