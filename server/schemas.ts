// Request validation with JSON schemas (ajv), compiled once: the request shapes are static; the schemas
// that depend on the registry (known features, entity key types, push columns) are compiled per registry
// snapshot and per distinct request shape (see plans.ts), so a request pays a Map lookup, not a compile.

import { Ajv, type AnySchemaObject, type ErrorObject, type SchemaValidateFunction, type ValidateFunction } from "ajv";
import { errorMessage, quoteValue } from "../common/errors.js";
import { TIME_TEXT_HELP, parseTimeText } from "../common/time.js";
import { baseType, isListDtype, type Dtype, type ValueType } from "../registry/types.js";

export type JsonSchema = AnySchemaObject;

/** Every column (entity key or df column) holds the same number of values. */
const sameLength: SchemaValidateFunction = (schema: boolean, data: unknown, _parent, dataCxt): boolean => {
  if (!schema || typeof data !== "object" || data === null) return true;
  let first = "";
  let n = -1;
  for (const [k, v] of Object.entries(data)) {
    if (!Array.isArray(v)) continue;
    if (n < 0) {
      n = v.length;
      first = k;
    } else if (v.length !== n) {
      // instancePath names the column at fault
      const instancePath = `${dataCxt?.instancePath ?? ""}/${k}`;
      sameLength.errors = [
        {
          keyword: "sameLength",
          instancePath,
          message: `has ${v.length} values but "${shortName(first)}" has ${n}: every column must have the same length`,
          params: { column: k },
        },
      ];
      return false;
    }
  }
  return true;
};

function isTimestamp(s: string): boolean {
  try {
    parseTimeText(s);
    return true;
  } catch {
    return false;
  }
}

export function newAjv(): Ajv {
  const ajv = new Ajv({
    allErrors: false,
    verbose: true,
    strict: true,
    strictRequired: false,
    allowUnionTypes: true,
    coerceTypes: false,
  });
  ajv.addKeyword({ keyword: "sameLength", schemaType: "boolean", errors: true, validate: sameLength });
  ajv.addFormat("fs-timestamp", { type: "string", validate: isTimestamp });
  return ajv;
}

/** Times arrive as text, read by the CLI's parser: a bare JSON number could be seconds, ms or a year. */
export const TIMESTAMP_SCHEMA: JsonSchema = {
  type: "string",
  format: "fs-timestamp",
  description: `a time is ${TIME_TEXT_HELP}`,
};

/** The JSON type a value of this dtype arrives as. */
export function valueSchema(t: ValueType): JsonSchema {
  switch (t) {
    case "int32":
      return { type: "integer", minimum: -(2 ** 31), maximum: 2 ** 31 - 1 };
    case "int64":
      // past 2^53 JSON.parse rounds to a neighbour, so such ids cannot be read exactly
      return { type: "integer", minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER };
    case "float32":
    case "float64":
      return { type: "number" };
    case "bool":
      return { type: "boolean" };
    case "string":
    case "bytes":
      return { type: "string" };
    case "unix_timestamp":
      return TIMESTAMP_SCHEMA;
  }
}

/** A df column of `dtype` (nulls allowed unless a key), described for error messages. */
export function columnSchema(dtype: Dtype, what: string, nullable: boolean): JsonSchema {
  const base = valueSchema(baseType(dtype));
  let item: JsonSchema;
  if (isListDtype(dtype)) {
    item = {
      type: nullable ? ["array", "null"] : "array",
      items: { ...base, description: `elements of ${what} (${dtype})` },
    };
  } else if (nullable) {
    const t = base.type as string | string[];
    item = { ...base, type: [...(Array.isArray(t) ? t : [t]), "null"] };
  } else item = base;
  return {
    type: "array",
    items: { ...item, description: `${what} (${dtype})` },
    description: `${what}: a list of ${dtype} values`,
  };
}

const ENTITIES: JsonSchema = {
  type: "object",
  minProperties: 1,
  additionalProperties: {
    type: "array",
    minItems: 1,
    description: "entity columns are lists of values, one per entity row",
  },
  sameLength: true,
  description: 'entities are columns: {"user_id": [1, 2]}',
};

export const GET_ONLINE_FEATURES: JsonSchema = {
  type: "object",
  properties: {
    features: {
      type: "array",
      minItems: 1,
      items: { type: "string", pattern: "^[^:]+:[^:]+$", description: 'feature references are "view:feature"' },
      description: 'a list of "view:feature" references',
    },
    feature_service: { type: "string", minLength: 1, description: "the name of a feature service" },
    entities: ENTITIES,
    full_feature_names: { type: "boolean" },
  },
  required: ["entities"],
  if: { required: ["features"] },
  then: {
    not: { required: ["feature_service"] },
    description: 'give either "features" or "feature_service", not both',
  },
  else: {
    required: ["feature_service"],
    description: 'a request names "features" (a list of "view:feature") or a "feature_service"',
  },
};

export const RECOMMEND: JsonSchema = {
  type: "object",
  properties: {
    pipeline: { type: "string", minLength: 1, description: "the name of a registered pipeline" },
    entities: ENTITIES,
    session: {
      type: "object",
      additionalProperties: { type: "array" },
      description: 'a live session\'s events as columns: {"product_id": [...], "event_time": [...]}',
    },
    top_k: { type: "integer", minimum: 1, maximum: 10000 },
    seed: { type: "integer", description: "the same seed gives the same lists" },
    debug: { type: "boolean" },
  },
  required: ["pipeline"],
  additionalProperties: false,
};

const DF: JsonSchema = {
  type: "object",
  minProperties: 1,
  additionalProperties: { type: "array" },
  sameLength: true,
  description: 'df is columns: {"user_id": [1], "event_timestamp": ["2024-01-01T00:00:00Z"], ...}',
};

export const PUSH: JsonSchema = {
  type: "object",
  properties: {
    push_source_name: { type: "string", minLength: 1 },
    df: DF,
    to: { enum: ["online", "offline", "online_and_offline"] },
    mode: { enum: ["replace", "append"] },
    max_length: { type: "integer", minimum: 1, maximum: 100000 },
    allow_registry_cache: { type: "boolean" },
  },
  required: ["push_source_name", "df"],
};

export const WRITE_TO_ONLINE_STORE: JsonSchema = {
  type: "object",
  properties: {
    feature_view_name: { type: "string", minLength: 1 },
    df: DF,
    allow_registry_cache: { type: "boolean" },
  },
  required: ["feature_view_name", "df"],
};

/** Feast's /search (retrieve_online_documents_v2) body, plus fstore's exclude, filter and exact. */
export const SEARCH: JsonSchema = {
  type: "object",
  properties: {
    features: {
      type: "array",
      minItems: 1,
      items: { type: "string", pattern: "^[^:]+:[^:]+$", description: 'feature references are "view:feature"' },
      description: 'a list of "view:feature" references, one of them a field with a vector index',
    },
    query: {
      type: "array",
      maxItems: 65536,
      items: { type: "number" },
      description: "the query vector, a list of numbers",
    },
    top_k: { type: "integer", description: "how many of the nearest entities to answer" },
    distance_metric: { enum: ["cosine", "inner_product", "l2"] },
    api_version: { type: "integer" },
    exclude: { type: "array", maxItems: 100000, description: "entity keys never to answer" },
    filter: { type: "string", description: "an expression over the answered columns" },
    exact: { type: "boolean" },
  },
  required: ["features", "query", "top_k"],
};

const VIEW_NAMES: JsonSchema = {
  type: "array",
  items: { type: "string", minLength: 1 },
  description: "a list of feature view names",
};

export const MATERIALIZE: JsonSchema = {
  type: "object",
  properties: { start_ts: TIMESTAMP_SCHEMA, end_ts: TIMESTAMP_SCHEMA, feature_views: VIEW_NAMES },
  required: ["start_ts", "end_ts"],
};

export const MATERIALIZE_INCREMENTAL: JsonSchema = {
  type: "object",
  properties: { end_ts: TIMESTAMP_SCHEMA, feature_views: VIEW_NAMES },
  required: ["end_ts"],
};

/** A request value in an error: a short prefix, whatever its size or depth. */
const show = (v: unknown): string => quoteValue(v);

/** A property name from a request: names are the caller's too, so a long one is cut. */
function shortName(name: string): string {
  return name.length > 80 ? `${name.slice(0, 80)}… (${name.length} chars)` : name;
}

/** "/entities/user_id/1" -> "entities.user_id[1]" (the field as a caller writes it). */
export function fieldPath(instancePath: string, prefix = ""): string {
  let out = prefix;
  for (const raw of instancePath.split("/").slice(1)) {
    const p = shortName(raw.replace(/~1/g, "/").replace(/~0/g, "~"));
    out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  }
  return out || "body";
}

function joinPath(where: string, prop: string): string {
  return where === "body" ? prop : `${where}.${prop}`;
}

/** One sentence naming the field at fault, what it holds and what was expected. */
export function describeError(e: ErrorObject, prefix = ""): string {
  const where = fieldPath(e.instancePath, prefix);
  const desc = typeof e.parentSchema?.description === "string" ? ` (${e.parentSchema.description})` : "";
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "required":
      return `${joinPath(where, shortName(String(p.missingProperty)))} is required${desc}`;
    case "additionalProperties":
      return `${joinPath(where, shortName(String(p.additionalProperty)))} is not expected${desc}`;
    case "type":
      return `${where}: expected ${Array.isArray(p.type) ? p.type.join(" or ") : String(p.type)}, got ${show(e.data)}${desc}`;
    case "enum":
      return `${where}: ${show(e.data)} is not one of ${show(p.allowedValues)}${desc}`;
    case "not":
    case "if":
      return `${where}: ${desc ? desc.slice(2, -1) : e.message}`;
    case "format":
      return timeError(e.data, where);
    case "minimum":
    case "maximum": {
      const ps = e.parentSchema as { minimum?: number; maximum?: number } | undefined;
      return `${where}: ${show(e.data)} is out of range: expected an integer from ${ps?.minimum} to ${ps?.maximum}${desc}`;
    }
    case "pattern":
      return `${where}: ${show(e.data)} does not match ${String(p.pattern)}${desc}`;
    default:
      return `${where}: ${e.message ?? e.keyword}${desc}`;
  }
}

/** Why text is not a time, in the words of the parser the CLI uses too. */
function timeError(data: unknown, where: string): string {
  try {
    parseTimeText(String(data), where);
  } catch (e) {
    return errorMessage(e);
  }
  return `${where}: ${show(data)} is not a timestamp`;
}

/** Validate `data`; undefined when valid, else the message of the first error. */
export function check(validate: ValidateFunction, data: unknown, prefix = ""): string | undefined {
  if (validate(data)) return undefined;
  const errs = validate.errors ?? [];
  return errs.length ? describeError(errs[0], prefix) : `${prefix || "body"}: invalid`;
}
