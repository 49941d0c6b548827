// Next-item answers for one live session: its raw events go through the saved ETL workflow (transformRows, the
// same row the batch path writes), the model scores the catalogue, and the answer is given in the caller's item
// ids. The model and workflow folders are read once; answering needs no TensorFlow.js.
import { ValidationError, quoteValue } from "../../../common/errors.js";
import { toEpochMs } from "../../../common/time.js";
import { Workflow, categorifiedColumns, decodeCategory, type Row, type Value } from "../../etl/index.js";
import { loadSessionModel, type SessionModelMeta } from "./artifacts.js";
import { queryFromRow } from "./data.js";
import { topKItems, type SessionScorer } from "./scorer.js";

/** A session as a request gives it: raw event columns of equal length, oldest event first or with event_time. */
export type SessionEvents = Record<string, unknown[]>;

export interface NextItemRequest {
  session: SessionEvents;
  topK: number;
  /** recommend items already in the session too (default false: they are excluded) */
  includeSeen?: boolean;
}

export interface NextItemAnswer {
  /** the recommended items in the caller's ids (the raw item column), best first */
  items: unknown[];
  scores: number[];
  /** "popularity" when the session had no usable events */
  fallback: "popularity" | null;
  /** events whose item the model does not know (scored as the out-of-vocabulary item, never an error) */
  unknownItems: number;
  /** the model's item indices of `items` */
  itemIndices: Int32Array;
  /** time spent in the ETL step and in scoring, in milliseconds */
  timing: { etlMs: number; modelMs: number };
}

export interface NextItemModelOptions {
  /** the model folder written by `fs train session` */
  model: string;
  /** the saved workflow folder of the session ETL (`fs etl run ... --save`) */
  workflow: string;
  /** the raw item id column of the events (default: the Categorify'd column the model's item list comes from) */
  itemColumn?: string;
}

/** The longest session a request may send; longer ones are refused rather than silently cut before the ETL. */
export const MAX_SESSION_EVENTS = 10_000;
/** Requests without a session id get this one: the workflow groups events by session. */
const REQUEST_SESSION = "__request__";

export class NextItemModel {
  private constructor(
    readonly meta: SessionModelMeta,
    readonly scorer: SessionScorer,
    readonly workflow: Workflow,
    readonly itemColumn: string,
    private readonly sessionColumn: string,
    private readonly inputColumns: string[],
  ) {}

  static async open(o: NextItemModelOptions): Promise<NextItemModel> {
    const { meta, scorer } = loadSessionModel(o.model);
    const workflow = await Workflow.load(o.workflow).prepareOnline();
    const encoded = categorifiedColumns(workflow);
    const itemColumn = o.itemColumn ?? encoded.find((c) => meta.session.itemColumn.startsWith(`${c}-`));
    if (!itemColumn || !encoded.includes(itemColumn))
      throw new ValidationError(
        `session model ${o.model}: cannot tell which raw column of workflow ${o.workflow} holds the item ids ` +
          `(model item list ${quoteValue(meta.session.itemColumn)}; encoded columns: ${encoded.join(", ")}); pass itemColumn`,
      );
    const sessionColumn = encoded.find((c) => c === "user_session" || c === "session_id") ?? "user_session";
    const inputs = (workflow.inputColumns ?? []).map((c) => c.name);
    return new NextItemModel(meta, scorer, workflow, itemColumn, sessionColumn, inputs);
  }

  /** The top-k next items for one session; an empty session gets the popularity answer. */
  recommend(req: NextItemRequest): NextItemAnswer {
    const k = req.topK;
    if (!Number.isInteger(k) || k < 1) throw new ValidationError(`top_k must be a positive integer, got ${k}`);
    const t0 = performance.now();
    const rows = eventRows(req.session, this.itemColumn, this.sessionColumn, this.inputColumns);
    const transformed = rows.length ? this.workflow.transformRows(rows) : [];
    const t1 = performance.now();
    const query =
      transformed.length === 0
        ? { items: new Int32Array(0), categorical: [], continuous: [] }
        : queryFromRow({ ...transformed[0], [this.meta.session.dayColumn]: 0 }, this.meta.session);
    const cat = this.scorer.catalogue;
    let unknownItems = 0;
    for (const it of query.items)
      if (!(it >= cat.firstItemIndex && it < cat.itemCardinality && cat.counts[it] > 0)) unknownItems++;
    const scores = this.scorer.scores(query);
    let top: { items: Int32Array; scores: Float32Array };
    let fallback: "popularity" | null = null;
    if (!scores) {
      top = topKItems(cat.counts, cat, k);
      fallback = "popularity";
    } else {
      if (!req.includeSeen) for (const it of query.items) if (it !== cat.oovIndex) scores[it] = -Infinity;
      top = topKItems(scores, cat, k);
      // excluded items score -Infinity; they never count as recommendations
      let n = top.items.length;
      while (n > 0 && top.scores[n - 1] === -Infinity) n--;
      top = { items: top.items.slice(0, n), scores: top.scores.slice(0, n) };
    }
    const items = Array.from(top.items, (i) => decodeCategory(this.workflow, this.itemColumn, i));
    return {
      items,
      scores: Array.from(top.scores),
      fallback,
      unknownItems,
      itemIndices: top.items,
      timing: { etlMs: t1 - t0, modelMs: performance.now() - t1 },
    };
  }
}

/**
 * Column-wise events to rows, checked: equal lengths, an item id on every event, a bounded size. Input columns
 * of the workflow the request leaves out are null (the ETL's null index or value); without `event_time` the
 * events are taken in the order given, one millisecond apart ending now.
 */
export function eventRows(
  session: SessionEvents,
  itemColumn: string,
  sessionColumn: string,
  inputColumns: readonly string[] = [],
): Row[] {
  if (!session || typeof session !== "object" || Array.isArray(session))
    throw new ValidationError(`session must be an object of event columns, e.g. {"${itemColumn}": [...]}`);
  const names = Object.keys(session);
  if (!names.includes(itemColumn))
    throw new ValidationError(`session: missing the item column "${itemColumn}" (got ${names.join(", ") || "none"})`);
  let n = -1;
  for (const name of names) {
    const col = session[name];
    if (!Array.isArray(col)) throw new ValidationError(`session.${name} must be an array, got ${quoteValue(col)}`);
    if (n >= 0 && col.length !== n)
      throw new ValidationError(
        `session.${name} has ${col.length} values, but session.${names[0]} has ${n}: every column needs one value per event`,
      );
    n = col.length;
  }
  if (n > MAX_SESSION_EVENTS)
    throw new ValidationError(`session has ${n} events, more than the ${MAX_SESSION_EVENTS} accepted`);
  const items = session[itemColumn];
  const missing = inputColumns.filter((c) => !(c in session) && c !== sessionColumn);
  const now = Date.now();
  const rows: Row[] = [];
  for (let i = 0; i < n; i++) {
    const v = items[i];
    if (typeof v !== "number" && typeof v !== "string" && typeof v !== "bigint")
      throw new ValidationError(`session.${itemColumn}[${i}] must be an item id, got ${quoteValue(v)}`);
    const row: Row = { [sessionColumn]: REQUEST_SESSION };
    for (const name of missing) row[name] = name === "event_time" ? new Date(now - (n - 1 - i)) : null;
    for (const name of names)
      row[name] = name === "event_time" ? eventTime(session[name][i], i) : scalar(session, name, i);
    rows.push(row);
  }
  return rows;
}

function eventTime(v: unknown, i: number): Date {
  if (typeof v !== "string" && !(v instanceof Date))
    throw new ValidationError(`session.event_time[${i}] must be an ISO date-time (UTC), got ${quoteValue(v)}`);
  return new Date(toEpochMs(v, `session.event_time[${i}]`));
}

function scalar(session: SessionEvents, name: string, i: number): Value {
  const v = session[name][i];
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean" || typeof v === "bigint")
    return v;
  throw new ValidationError(`session.${name}[${i}] must be a string, number, boolean or null, got ${quoteValue(v)}`);
}
