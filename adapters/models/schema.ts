// Model inputs from an ETL `schema.json` (DESIGN.md "Data produced by ETL"): which columns feed the query (user)
// tower, the candidate (item) tower and the ranking model, with embedding tables sized from cardinalities.
import { readFileSync } from "node:fs";
import { ValidationError } from "../../common/errors.js";

export const SCHEMA_TAGS = [
  "categorical",
  "continuous",
  "user",
  "item",
  "user_id",
  "item_id",
  "session_id",
  "target",
  "binary_classification",
  "regression",
  "time",
  "list",
] as const;
export type SchemaTag = (typeof SCHEMA_TAGS)[number];

export interface SchemaColumn {
  name: string;
  dtype: string;
  isList: boolean;
  tags: SchemaTag[];
  properties: {
    cardinality?: number;
    embeddingDim?: number;
    /** `name` shares one embedding table between the columns that give it (Merlin's domain name) */
    domain?: { min: number; max: number; name?: string };
    startIndex?: number;
    /** how a list column's embeddings are pooled (default "mean") */
    pooling?: ListPooling;
  };
}

/**
 * How a list input becomes one vector: "mean" of its rows, or "recency", a weighted mean in which the item k
 * places from the end (lists ordered oldest first) weighs 1/k, so a history leans on what came last.
 */
export type ListPooling = "mean" | "recency";
export const LIST_POOLINGS: readonly ListPooling[] = ["mean", "recency"];

/** The pooling weights of a list of `n` values into out[offset ..offset+n) (they sum to 1). */
export function poolingWeights(pooling: ListPooling, n: number, out: Float32Array, offset = 0): void {
  if (n === 0) return;
  if (pooling === "mean") {
    out.fill(1 / n, offset, offset + n);
    return;
  }
  let sum = 0;
  for (let a = 1; a <= n; a++) sum += 1 / a;
  for (let k = 0; k < n; k++) out[offset + k] = 1 / (n - k) / sum;
}

export type Side = "user" | "item" | "context";

export interface CategoricalInput {
  name: string;
  side: Side;
  cardinality: number;
  dim: number;
  isList: boolean;
  /** list inputs: how the embeddings are pooled (absent: mean) */
  pooling?: ListPooling;
  /** the embedding table's name when it is not the column's: inputs naming one table share it (domain.name) */
  table?: string;
}

export interface ContinuousInput {
  name: string;
  side: Side;
}

/** What a model reads: every column it needs, by side, plus the id and target columns. */
export interface InputSpec {
  categorical: CategoricalInput[];
  continuous: ContinuousInput[];
  /** the encoded (categorical) user id column, when tagged */
  userIdColumn?: string;
  /** the encoded (categorical) item id column: the catalogue key */
  itemIdColumn?: string;
  targetColumn?: string;
}

/** NVTabular's rule for inferred embedding sizes: 1.6 * cardinality^0.56, within [16, 512]. */
export function inferEmbeddingDim(cardinality: number): number {
  return Math.max(16, Math.min(512, Math.round(1.6 * Math.pow(cardinality, 0.56))));
}

/** Parse and check a schema (an array of columns, or `{ columns: [...] }`); `where` names the source in errors. */
export function parseSchema(raw: unknown, where = "schema"): SchemaColumn[] {
  const list = Array.isArray(raw)
    ? raw
    : raw && typeof raw === "object" && Array.isArray((raw as { columns?: unknown }).columns)
      ? (raw as { columns: unknown[] }).columns
      : null;
  if (!list) throw new ValidationError(`${where}: expected an array of columns or an object with a "columns" array`);
  const seen = new Set<string>();
  return list.map((c, i) => {
    if (!c || typeof c !== "object") throw new ValidationError(`${where}: column #${i} is not an object`);
    const o = c as Record<string, unknown>;
    const name = o.name;
    if (typeof name !== "string" || name === "")
      throw new ValidationError(`${where}: column #${i} has no "name" string`);
    if (seen.has(name)) throw new ValidationError(`${where}: column "${name}" appears twice`);
    seen.add(name);
    const tagsRaw = o.tags ?? [];
    if (!Array.isArray(tagsRaw))
      throw new ValidationError(`${where}: column "${name}": "tags" must be an array of strings`);
    const tags = tagsRaw.map((t) => {
      const s = String(t).toLowerCase();
      if (!(SCHEMA_TAGS as readonly string[]).includes(s))
        throw new ValidationError(
          `${where}: column "${name}": unknown tag "${String(t)}" (expected one of ${SCHEMA_TAGS.join(", ")})`,
        );
      return s as SchemaTag;
    });
    const props = (o.properties ?? {}) as Record<string, unknown>;
    if (typeof props !== "object")
      throw new ValidationError(`${where}: column "${name}": "properties" must be an object`);
    const properties: SchemaColumn["properties"] = {};
    for (const k of ["cardinality", "embeddingDim", "startIndex"] as const) {
      const v = props[k];
      if (v === undefined || v === null) continue;
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
        throw new ValidationError(
          `${where}: column "${name}": properties.${k} must be a non-negative integer, got ${JSON.stringify(v)}`,
        );
      properties[k] = v;
    }
    const dom = props.domain as { min?: unknown; max?: unknown; name?: unknown } | undefined;
    if (dom && typeof dom.min === "number" && typeof dom.max === "number")
      properties.domain = { min: dom.min, max: dom.max };
    if (dom?.name !== undefined && (typeof dom.name !== "string" || dom.name === ""))
      throw new ValidationError(
        `${where}: column "${name}": properties.domain.name must be a non-empty string, got ${JSON.stringify(dom.name)}`,
      );
    const domainName = dom?.name;
    const isListColumn = o.isList === true || tags.includes("list");
    if (props.pooling !== undefined) {
      if (!(LIST_POOLINGS as readonly unknown[]).includes(props.pooling))
        throw new ValidationError(
          `${where}: column "${name}": properties.pooling must be one of ${LIST_POOLINGS.join(", ")}, got ${JSON.stringify(props.pooling)}`,
        );
      if (!isListColumn)
        throw new ValidationError(`${where}: column "${name}": properties.pooling applies to list columns only`);
      properties.pooling = props.pooling as ListPooling;
    }
    if (tags.includes("categorical")) {
      const card = properties.cardinality ?? (properties.domain ? properties.domain.max + 1 : undefined);
      if (!card || card < 1)
        throw new ValidationError(
          `${where}: categorical column "${name}" needs properties.cardinality (or domain.max) >= 1`,
        );
      properties.cardinality = card;
      if (domainName) properties.domain = { min: 0, max: card - 1, ...properties.domain, name: domainName };
    } else if (domainName)
      throw new ValidationError(
        `${where}: column "${name}": properties.domain.name applies to categorical columns only`,
      );
    return {
      name,
      dtype: typeof o.dtype === "string" ? o.dtype : "unknown",
      isList: isListColumn,
      tags,
      properties,
    };
  });
}

export function loadSchema(path: string): SchemaColumn[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ValidationError(`cannot read schema file ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ValidationError(`schema file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseSchema(raw, `schema file ${path}`);
}

function sideOf(c: SchemaColumn): Side {
  if (c.tags.includes("user") || c.tags.includes("user_id")) return "user";
  if (c.tags.includes("item") || c.tags.includes("item_id")) return "item";
  return "context";
}

export interface SelectOptions {
  /** columns to leave out even when tagged */
  exclude?: string[];
  /** one embedding dimension for every table (DLRM); otherwise the schema's or the inferred one */
  embeddingDim?: number;
  /** cap on inferred dims (big tables train slowly on wasm) */
  maxEmbeddingDim?: number;
}

/**
 * Model inputs as Merlin selects them: categorical and continuous columns become inputs; a column tagged
 * user_id/item_id without `categorical` is a raw id and is excluded, as are target, time and untagged columns.
 */
export function selectInputs(schema: SchemaColumn[], opts: SelectOptions = {}): InputSpec {
  const exclude = new Set(opts.exclude ?? []);
  const spec: InputSpec = { categorical: [], continuous: [] };
  for (const c of schema) {
    if (c.tags.includes("target") && !spec.targetColumn) spec.targetColumn = c.name;
    if (exclude.has(c.name) || c.tags.includes("target")) continue;
    const side = sideOf(c);
    if (c.tags.includes("categorical")) {
      const cardinality = c.properties.cardinality as number;
      let dim = opts.embeddingDim ?? c.properties.embeddingDim ?? inferEmbeddingDim(cardinality);
      if (opts.maxEmbeddingDim && !opts.embeddingDim) dim = Math.min(dim, opts.maxEmbeddingDim);
      const input: CategoricalInput = { name: c.name, side, cardinality, dim, isList: c.isList };
      if (c.isList && c.properties.pooling && c.properties.pooling !== "mean") input.pooling = c.properties.pooling;
      if (c.properties.domain?.name) input.table = c.properties.domain.name;
      spec.categorical.push(input);
      if (c.tags.includes("user_id") && !spec.userIdColumn) spec.userIdColumn = c.name;
      if (c.tags.includes("item_id") && !spec.itemIdColumn) spec.itemIdColumn = c.name;
    } else if (c.tags.includes("continuous")) {
      if (c.isList) throw new ValidationError(`column "${c.name}": continuous list features are not supported`);
      spec.continuous.push({ name: c.name, side });
    }
  }
  return spec;
}

/** The inputs of one side (towers) or of several (ranking). */
export function inputsOf(
  spec: InputSpec,
  sides: Side[],
): { categorical: CategoricalInput[]; continuous: ContinuousInput[] } {
  return {
    categorical: spec.categorical.filter((c) => sides.includes(c.side)),
    continuous: spec.continuous.filter((c) => sides.includes(c.side)),
  };
}

/** Every column name a model with these inputs reads. */
export function inputColumns(inputs: { categorical: CategoricalInput[]; continuous: ContinuousInput[] }): string[] {
  return [...inputs.categorical.map((c) => c.name), ...inputs.continuous.map((c) => c.name)];
}
