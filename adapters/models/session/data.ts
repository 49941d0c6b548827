// Sessions from the session ETL's output (parquet + schema.json, e.g. rees46SessionWorkflow's): which columns
// hold the item sequence, the day and the per-event side features (chosen by schema tags), read into flat typed
// arrays (CSR: offsets + values), with every malformed value given a defined meaning instead of an error.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { ValidationError, errorMessage } from "../../../common/errors.js";
import { ident, openDuckDB, sqlString } from "../../../common/duckdb.js";
import { parseSchema, type SchemaColumn } from "../schema.js";

export interface SessionCategorical {
  name: string;
  cardinality: number;
  /** the index an unknown or malformed value maps to */
  oovIndex: number;
  /** the index a missing value (a list shorter than the item list) maps to */
  nullIndex: number;
}

/** What the session models read, chosen from schema.json tags. */
export interface SessionInputs {
  /** the categorical list column tagged item_id: the item sequence */
  itemColumn: string;
  itemCardinality: number;
  /** unknown items (not in the vocabulary, or not seen in training) map here */
  oovIndex: number;
  /** indices below this are padding, null and out-of-vocabulary: never recommended */
  firstItemIndex: number;
  /** the session's day (integer), e.g. day_index */
  dayColumn: string;
  /** per-event categorical side features (lists aligned with the items) */
  categorical: SessionCategorical[];
  /** per-event continuous side features (lists aligned with the items) */
  continuous: string[];
}

/** Sessions as flat arrays: session s holds items[offsets[s] .. offsets[s + 1]), side features aligned. */
export interface Sessions {
  length: number;
  day: Int32Array;
  offsets: Int32Array;
  items: Int32Array;
  /** per SessionInputs.categorical entry, aligned with `items` */
  categorical: Int32Array[];
  /** per SessionInputs.continuous entry, aligned with `items` */
  continuous: Float32Array[];
}

/** What loading did with malformed input: nothing is dropped silently. */
export interface LoadReport {
  rows: number;
  /** sessions with no items (kept: they count as sessions, train nothing, are not evaluable) */
  emptySessions: number;
  /** item values that were null, not integers or outside [0, cardinality): mapped to the OOV index */
  malformedItems: number;
  /** side-feature lists of another length than the item list: padded with null / cut to the item list */
  misalignedSideLists: number;
  /** side values that were malformed (categorical: mapped to OOV; continuous: 0) */
  malformedSideValues: number;
}

export interface SelectSessionOptions {
  /** side features to use (column names); default: categorical lists tagged item and every continuous list */
  features?: string[];
  /** the day column; default: the integer column tagged time named day_index, else the only one tagged time */
  dayColumn?: string;
}

interface RawProps {
  oovIndex?: unknown;
  nullIndex?: unknown;
}

function intProp(v: unknown, fallback: number): number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : fallback;
}

/** Read and check schema.json; also keeps the raw properties (oovIndex, nullIndex) parseSchema leaves out. */
export function readSessionSchema(path: string): { columns: SchemaColumn[]; raw: Map<string, RawProps> } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ValidationError(`cannot read schema file ${path}: ${errorMessage(e)}`);
  }
  const columns = parseSchema(raw, `schema file ${path}`);
  const list = (Array.isArray(raw) ? raw : (raw as { columns: unknown[] }).columns) as Array<{
    name: string;
    properties?: RawProps;
  }>;
  return { columns, raw: new Map(list.map((c) => [c.name, c.properties ?? {}])) };
}

/** The model inputs of a session schema: the item list, the day and the side-feature lists. */
export function selectSessionInputs(
  columns: SchemaColumn[],
  raw: Map<string, RawProps> = new Map(),
  opts: SelectSessionOptions = {},
  where = "schema",
): SessionInputs {
  const item = columns.find((c) => c.isList && c.tags.includes("item_id") && c.tags.includes("categorical"));
  if (!item) throw new ValidationError(`${where}: no categorical list column tagged item_id (the item sequence)`);
  const card = item.properties.cardinality as number;
  const start = item.properties.startIndex ?? 0;
  const itemProps = raw.get(item.name) ?? {};
  const oovIndex = intProp(itemProps.oovIndex, start + 1);
  const nullIndex = intProp(itemProps.nullIndex, start);
  const firstItemIndex = Math.max(oovIndex, nullIndex) + 1;
  if (card <= firstItemIndex)
    throw new ValidationError(`${where}: item column "${item.name}" has cardinality ${card}: no items in it`);
  let dayColumn = opts.dayColumn;
  if (dayColumn) {
    if (!columns.some((c) => c.name === dayColumn))
      throw new ValidationError(`${where}: day column "${dayColumn}" is not in the schema`);
  } else {
    const timed = columns.filter((c) => c.tags.includes("time") && !c.isList);
    dayColumn = (timed.find((c) => c.name === "day_index") ?? (timed.length === 1 ? timed[0] : undefined))?.name;
    if (!dayColumn)
      throw new ValidationError(
        `${where}: no day column (a column tagged time named day_index, or the only one tagged time); have ${columns.map((c) => c.name).join(", ")}`,
      );
  }
  const lists = columns.filter((c) => c.isList && c.name !== item.name);
  let chosen: SchemaColumn[];
  if (opts.features) {
    chosen = opts.features.map((name) => {
      const c = lists.find((x) => x.name === name);
      if (!c)
        throw new ValidationError(
          `${where}: side feature "${name}" is not a list column of the schema (have ${lists.map((x) => x.name).join(", ")})`,
        );
      if (!c.tags.includes("categorical") && !c.tags.includes("continuous"))
        throw new ValidationError(`${where}: side feature "${name}" is tagged neither categorical nor continuous`);
      return c;
    });
  } else {
    chosen = lists.filter(
      (c) =>
        (c.tags.includes("categorical") && c.tags.includes("item") && !c.tags.includes("item_id")) ||
        c.tags.includes("continuous"),
    );
  }
  const categorical: SessionCategorical[] = [];
  const continuous: string[] = [];
  for (const c of chosen) {
    if (c.tags.includes("categorical")) {
      const s = c.properties.startIndex ?? 0;
      const p = raw.get(c.name) ?? {};
      categorical.push({
        name: c.name,
        cardinality: c.properties.cardinality as number,
        oovIndex: intProp(p.oovIndex, s + 1),
        nullIndex: intProp(p.nullIndex, s),
      });
    } else continuous.push(c.name);
  }
  return {
    itemColumn: item.name,
    itemCardinality: card,
    oovIndex,
    firstItemIndex,
    dayColumn,
    categorical,
    continuous,
  };
}

function listOf(v: unknown): unknown[] | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v as unknown[];
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<unknown>);
  return null;
}

function asInt(v: unknown): number | null {
  const x = typeof v === "bigint" ? Number(v) : v;
  return typeof x === "number" && Number.isInteger(x) ? x : null;
}

/** Builds Sessions from rows (objects keyed by column name), counting what was malformed. */
export class SessionBuilder {
  readonly inputs: SessionInputs;
  readonly report: LoadReport = {
    rows: 0,
    emptySessions: 0,
    malformedItems: 0,
    misalignedSideLists: 0,
    malformedSideValues: 0,
  };
  private day: number[] = [];
  private offsets: number[] = [0];
  private items: number[] = [];
  private cat: number[][];
  private cont: number[][];

  constructor(inputs: SessionInputs) {
    this.inputs = inputs;
    this.cat = inputs.categorical.map(() => []);
    this.cont = inputs.continuous.map(() => []);
  }

  /** Adds one session row; `where` names it in the one error a row can raise (a day that is not an integer). */
  add(row: Record<string, unknown>, where: string): void {
    const inp = this.inputs;
    const day = asInt(row[inp.dayColumn]);
    if (day === null)
      throw new ValidationError(
        `${where}: column "${inp.dayColumn}" must be an integer day, got ${JSON.stringify(String(row[inp.dayColumn]))}`,
      );
    this.report.rows++;
    const list = listOf(row[inp.itemColumn]) ?? [];
    const n = list.length;
    if (n === 0) this.report.emptySessions++;
    for (const v of list) {
      const x = asInt(v);
      if (x === null || x < 0 || x >= inp.itemCardinality) {
        this.report.malformedItems++;
        this.items.push(inp.oovIndex);
      } else this.items.push(x);
    }
    inp.categorical.forEach((c, j) => {
      const side = listOf(row[c.name]) ?? [];
      if (side.length !== n) this.report.misalignedSideLists++;
      for (let k = 0; k < n; k++) {
        if (k >= side.length) {
          this.cat[j].push(c.nullIndex);
          continue;
        }
        const x = asInt(side[k]);
        if (x === null || x < 0 || x >= c.cardinality) {
          this.report.malformedSideValues++;
          this.cat[j].push(c.oovIndex);
        } else this.cat[j].push(x);
      }
    });
    inp.continuous.forEach((name, j) => {
      const side = listOf(row[name]) ?? [];
      if (side.length !== n) this.report.misalignedSideLists++;
      for (let k = 0; k < n; k++) {
        const raw = k < side.length ? side[k] : 0;
        const x = typeof raw === "bigint" ? Number(raw) : raw;
        if (typeof x !== "number" || !Number.isFinite(x)) {
          if (k < side.length) this.report.malformedSideValues++;
          this.cont[j].push(0);
        } else this.cont[j].push(x);
      }
    });
    this.day.push(day);
    this.offsets.push(this.items.length);
  }

  build(): Sessions {
    return {
      length: this.day.length,
      day: Int32Array.from(this.day),
      offsets: Int32Array.from(this.offsets),
      items: Int32Array.from(this.items),
      categorical: this.cat.map((a) => Int32Array.from(a)),
      continuous: this.cont.map((a) => Float32Array.from(a)),
    };
  }
}

export interface LoadedSessions {
  dir: string;
  inputs: SessionInputs;
  sessions: Sessions;
  report: LoadReport;
}

/**
 * Reads every parquet file under `dir` (any layout the ETL writes: flat, day folders, train/valid/test
 * splits), ordered by day, then by the session's first event time when a column holds it, then by session id.
 */
export async function loadSessionData(dir: string, opts: SelectSessionOptions = {}): Promise<LoadedSessions> {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new ValidationError(`session data ${dir}: no such folder (expected the session ETL's output folder)`);
  const schemaPath = join(root, "schema.json");
  if (!existsSync(schemaPath))
    throw new ValidationError(`session data ${dir}: no schema.json (expected the session ETL's output folder)`);
  const { columns, raw } = readSessionSchema(schemaPath);
  const inputs = selectSessionInputs(columns, raw, opts, `schema file ${schemaPath}`);
  const order = [ident(inputs.dayColumn)];
  const first = columns.find((c) => c.dtype === "unix_timestamp" && !c.isList);
  if (first) order.push(ident(first.name));
  const sid = columns.find((c) => c.tags.includes("session_id") && !c.isList);
  if (sid) order.push(ident(sid.name));
  const names = [inputs.dayColumn, inputs.itemColumn, ...inputs.categorical.map((c) => c.name), ...inputs.continuous];
  const glob = join(root, "**", "*.parquet");
  const duck = await openDuckDB();
  const builder = new SessionBuilder(inputs);
  try {
    let reader;
    try {
      reader = await duck.connection.runAndReadAll(
        `SELECT ${names.map(ident).join(", ")}, filename FROM read_parquet(${sqlString(glob)}, union_by_name = true, filename = true, hive_partitioning = false) ORDER BY ${order.join(", ")}`,
      );
    } catch (e) {
      throw new ValidationError(`session data ${dir}: cannot read ${glob}: ${errorMessage(e)}`);
    }
    for (const row of reader.getRowObjectsJS())
      builder.add(row, `session data ${typeof row.filename === "string" ? row.filename : glob}`);
  } finally {
    duck.close();
  }
  return { dir: root, inputs, sessions: builder.build(), report: builder.report };
}

/** The distinct days of the sessions, ascending. */
export function daysOf(s: Sessions): number[] {
  return [...new Set(s.day)].sort((a, b) => a - b);
}

/** Indices of the sessions of the given days. */
export function sessionsOfDays(s: Sessions, days: ReadonlySet<number>): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) if (days.has(s.day[i])) out.push(i);
  return Int32Array.from(out);
}

/**
 * A scorer's query from one session row as the ETL writes it (batch parquet, or `workflow.transformRows` of the
 * session's raw events at request time): the item list and the model's side-feature lists. Malformed values
 * get the meanings SessionBuilder gives them.
 */
export function queryFromRow(
  row: Record<string, unknown>,
  inputs: SessionInputs,
): { items: Int32Array; categorical: Int32Array[]; continuous: Float32Array[] } {
  const b = new SessionBuilder({ ...inputs, dayColumn: "__day" });
  b.add({ ...row, __day: 0 }, "session row");
  const s = b.build();
  return { items: s.items, categorical: s.categorical, continuous: s.continuous };
}
