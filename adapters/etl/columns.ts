// Column metadata carried through a workflow, selectors over it, and the schema.json written beside outputs.
import { ValidationError } from "../../common/errors.js";
import type { Value } from "./sql.js";

/** The schema file written beside a transform's parquet output: `{ "columns": SchemaEntry[] }`. */
export const SCHEMA_FILE = "schema.json";

/** The tags schema.json may carry (DESIGN.md "Data produced by ETL"). */
export const TAGS = [
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
export type Tag = (typeof TAGS)[number];

export function checkTags(tags: readonly string[], what: string): Tag[] {
  for (const t of tags) {
    if (!(TAGS as readonly string[]).includes(t))
      throw new ValidationError(`${what}: unknown tag "${t}" (expected one of ${TAGS.join(", ")})`);
  }
  return [...tags] as Tag[];
}

export interface ColumnProperties {
  cardinality?: number;
  embeddingDim?: number;
  /** `name` shares an embedding table between the columns giving it (e.g. a history list and the item id) */
  domain?: { min?: number; max?: number; name?: string };
  startIndex?: number;
  /** list columns: how models pool their embeddings, "mean" (default) or "recency" (1/age, latest last) */
  pooling?: "mean" | "recency";
  [k: string]: unknown;
}

/** A column as a workflow passes it from operator to operator: its name, schema tags and properties (no type). */
export interface TaggedColumn {
  name: string;
  tags: Tag[];
  properties: ColumnProperties;
}

/** @deprecated the old name of TaggedColumn (stores/offline has a ColumnInfo of its own) */
export type ColumnInfo = TaggedColumn;

/** Column names; `{ tags }` picks every column carrying any of the tags; "*" picks all. */
export type Selector = string | string[] | { tags: string[] };

export function selectorToJSON(s: Selector): Selector {
  return typeof s === "string" ? s : Array.isArray(s) ? [...s] : { tags: [...s.tags] };
}

/** The names a selector picks from `cols`, in the selector's order; a missing name is a clear error. */
export function resolveSelector(sel: Selector, cols: readonly TaggedColumn[], what: string): string[] {
  if (sel === "*") return cols.map((c) => c.name);
  if (typeof sel === "object" && !Array.isArray(sel)) {
    const tags = sel.tags;
    return cols.filter((c) => c.tags.some((t) => tags.includes(t))).map((c) => c.name);
  }
  const names = typeof sel === "string" ? [sel] : sel;
  const have = new Set(cols.map((c) => c.name));
  for (const n of names) {
    if (!have.has(n))
      throw new ValidationError(
        `${what}: column "${n}" is not in the input (have: ${cols.map((c) => c.name).join(", ")})`,
      );
  }
  return names;
}

export function withTags(c: TaggedColumn, add: readonly Tag[], remove: readonly Tag[] = []): TaggedColumn {
  const tags = c.tags.filter((t) => !remove.includes(t));
  for (const t of add) if (!tags.includes(t)) tags.push(t);
  return { name: c.name, tags, properties: { ...c.properties } };
}

/** Merlin's rule of thumb for an embedding width from a cardinality. */
export function embeddingDim(cardinality: number): number {
  return Math.min(512, Math.round(1.6 * Math.pow(cardinality, 0.56)));
}

/** The dtype names of registry/types.ts from DuckDB type text; lists end in []. */
export function dtypeOf(duckType: string): { dtype: string; isList: boolean } {
  let t = duckType.trim().toUpperCase();
  let isList = false;
  if (t.endsWith("[]")) {
    isList = true;
    t = t.slice(0, -2);
  }
  const base: Record<string, string> = {
    TINYINT: "int32",
    SMALLINT: "int32",
    INTEGER: "int32",
    UTINYINT: "int32",
    USMALLINT: "int32",
    BIGINT: "int64",
    UINTEGER: "int64",
    UBIGINT: "int64",
    HUGEINT: "int64",
    FLOAT: "float32",
    DOUBLE: "float64",
    VARCHAR: "string",
    BOOLEAN: "bool",
    BLOB: "bytes",
    TIMESTAMP: "unix_timestamp",
    "TIMESTAMP WITH TIME ZONE": "unix_timestamp",
    TIMESTAMP_MS: "unix_timestamp",
    TIMESTAMP_NS: "unix_timestamp",
    TIMESTAMP_S: "unix_timestamp",
    DATE: "unix_timestamp",
  };
  const d = base[t] ?? (t.startsWith("DECIMAL") ? "float64" : t.toLowerCase());
  return { dtype: isList ? `${d}[]` : d, isList };
}

export interface SchemaEntry {
  name: string;
  dtype: string;
  isList: boolean;
  tags: Tag[];
  properties: ColumnProperties;
}

export function schemaEntries(cols: readonly TaggedColumn[], types: ReadonlyMap<string, string>): SchemaEntry[] {
  return cols.map((c) => {
    const { dtype, isList } = dtypeOf(types.get(c.name) ?? "unknown");
    const tags = [...c.tags];
    if (isList && !tags.includes("list")) tags.push("list");
    return { name: c.name, dtype, isList, tags, properties: c.properties };
  });
}

/** A stable map key for a raw value: numbers and bigints of equal value share a key, strings never collide with them. */
export function valueKey(v: Value | undefined): string | null {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case "number":
      return Number.isNaN(v) ? "n:NaN" : `n:${v}`;
    case "bigint":
      return `n:${v}`;
    case "string":
      return `s:${v}`;
    case "boolean":
      return `b:${v}`;
  }
  if (v instanceof Date) return `d:${v.getTime()}`;
  return `l:${JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x))}`;
}
