// Feature tables for the store: one row per user (or item) with the columns carrying the wanted tags, an
// event timestamp and a created timestamp, ready to be a FileSource (Merlin's unique_rows_by_features plus the
// two columns notebook 000 adds before handing the table to Feast).
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ValidationError, errorMessage } from "../../common/errors.js";
import { SCHEMA_FILE, type SchemaEntry, checkTags } from "./columns.js";
import { ident, openDuckDB, sqlString } from "../../common/duckdb.js";
import { type Dataset, datasetSql, describeDataset, exec, queryRows } from "./sql.js";

export interface UniqueRowsOptions {
  /** the time column: the latest row per id wins and its time becomes event_timestamp (default: the first
   * column tagged "time" whose type is a timestamp or a number of epoch seconds) */
  timestampColumn?: string;
  /** unit of a numeric time column */
  timestampUnit?: "s" | "ms";
  /** event_timestamp for every row when the data has no time column */
  eventTimestamp?: Date | string;
  /** the created column (default: now) */
  created?: Date | string;
  /** the key column (default: the column tagged idTag, the categorical one first), e.g. a raw id column */
  idColumn?: string;
  /** the schema (default: schema.json in the dataset folder or beside the file) */
  schema?: SchemaEntry[];
}

export interface UniqueRowsResult {
  path: string;
  rows: number;
  idColumn: string;
  featureColumns: string[];
}

function readSchema(dataset: Dataset): SchemaEntry[] {
  const p = resolve(dataset);
  const candidates = [join(p, SCHEMA_FILE), join(dirname(p), SCHEMA_FILE), join(dirname(dirname(p)), SCHEMA_FILE)];
  const dir = existsSync(p) && statSync(p).isDirectory();
  for (const f of dir ? candidates.slice(0, 1) : candidates.slice(1)) {
    if (existsSync(f)) {
      try {
        const raw = JSON.parse(readFileSync(f, "utf8")) as { columns?: SchemaEntry[] } | SchemaEntry[];
        return Array.isArray(raw) ? raw : (raw.columns ?? []);
      } catch (e) {
        throw new ValidationError(`cannot read ${f}: ${errorMessage(e)}`);
      }
    }
  }
  throw new ValidationError(
    `uniqueRowsByFeatures: no ${SCHEMA_FILE} for dataset ${dataset}; pass options.schema or point at an ETL output folder`,
  );
}

function tsMs(t: Date | string, what: string): number {
  const ms =
    t instanceof Date ? t.getTime() : Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : `${t.replace(" ", "T")}Z`);
  if (Number.isNaN(ms)) throw new ValidationError(`uniqueRowsByFeatures: ${what} ${JSON.stringify(t)} is not a time`);
  return ms;
}

const tsLiteral = (ms: number) => `make_timestamp(${Math.round(ms * 1000)})`;

/**
 * Writes the unique rows of the columns tagged with any of `tags` per value of the column tagged `idTag`
 * (the latest row by time when there is a time column) to outPath, with event_timestamp and created.
 */
export async function uniqueRowsByFeatures(
  dataset: Dataset,
  tags: string | string[],
  idTag: string,
  outPath: string,
  opts: UniqueRowsOptions = {},
): Promise<UniqueRowsResult> {
  const want = checkTags(Array.isArray(tags) ? tags : [tags], "uniqueRowsByFeatures tags");
  const [id] = checkTags([idTag], "uniqueRowsByFeatures idTag");
  const schema = opts.schema ?? readSchema(dataset);
  const idCol = opts.idColumn
    ? schema.find((c) => c.name === opts.idColumn)
    : (schema.find((c) => c.tags.includes(id) && c.tags.includes("categorical")) ??
      schema.find((c) => c.tags.includes(id)));
  if (opts.idColumn && !idCol)
    throw new ValidationError(`uniqueRowsByFeatures: idColumn "${opts.idColumn}" is not in ${dataset}`);
  if (!idCol)
    throw new ValidationError(
      `uniqueRowsByFeatures: no column of ${dataset} is tagged "${id}" (columns: ${schema.map((c) => `${c.name}[${c.tags.join(",")}]`).join(" ")})`,
    );
  let tsCol = opts.timestampColumn;
  const duck = await openDuckDB();
  try {
    const types = new Map((await describeDataset(duck.connection, dataset)).map((c) => [c.name, c.type]));
    if (tsCol && !types.has(tsCol))
      throw new ValidationError(`uniqueRowsByFeatures: timestampColumn "${tsCol}" is not in ${dataset}`);
    if (!tsCol)
      tsCol = schema.find(
        (c) =>
          c.tags.includes("time") &&
          /^(TIMESTAMP|DATE|BIGINT|INTEGER|DOUBLE)/i.test(types.get(c.name) ?? "") &&
          !/_(weekday|hour|sin|cos)$/.test(c.name),
      )?.name;
    const features = schema
      .filter(
        (c) => c.name !== idCol.name && c.name !== tsCol && c.tags.some((t) => want.includes(t)) && types.has(c.name),
      )
      .map((c) => c.name);
    if (features.length === 0)
      throw new ValidationError(`uniqueRowsByFeatures: no column of ${dataset} is tagged ${want.join(" or ")}`);
    const created = opts.created ? tsMs(opts.created, "created") : Date.now();
    let eventTs: string;
    if (tsCol) {
      const t = types.get(tsCol) ?? "";
      const c = ident(tsCol);
      eventTs = /^(TIMESTAMP|DATE)/i.test(t)
        ? `CAST(${c} AS TIMESTAMP)`
        : opts.timestampUnit === "ms"
          ? `make_timestamp(CAST(${c} * 1000 AS BIGINT))`
          : `make_timestamp(CAST(${c} * 1000000 AS BIGINT))`;
    } else {
      if (!opts.eventTimestamp)
        throw new ValidationError(
          `uniqueRowsByFeatures: ${dataset} has no time column (tag one "time" or pass timestampColumn); pass eventTimestamp to stamp every row`,
        );
      eventTs = tsLiteral(tsMs(opts.eventTimestamp, "eventTimestamp"));
    }
    // max over a struct led by the time: the latest row per id, ties broken by the feature values (deterministic)
    const struct = `struct_pack(__ts := ${eventTs}, ${features.map((f) => `${ident(f)} := ${ident(f)}`).join(", ")})`;
    const out = resolve(outPath);
    mkdirSync(dirname(out), { recursive: true });
    await exec(
      duck.connection,
      `COPY (SELECT ${ident(idCol.name)}, ${features.map((f) => `r.${ident(f)} AS ${ident(f)}`).join(", ")}, r.__ts AS event_timestamp, ${tsLiteral(created)} AS created
             FROM (SELECT ${ident(idCol.name)}, max(${struct}) AS r FROM ${datasetSql(dataset)} WHERE ${ident(idCol.name)} IS NOT NULL GROUP BY 1) ORDER BY 1)
       TO ${sqlString(out)} (FORMAT parquet)`,
      `uniqueRowsByFeatures of ${dataset}`,
    );
    const [{ n }] = await queryRows(
      duck.connection,
      `SELECT count(*) AS n FROM read_parquet(${sqlString(out)})`,
      `reading ${out}`,
    );
    return { path: out, rows: Number(n), idColumn: idCol.name, featureColumns: features };
  } finally {
    duck.close();
  }
}
