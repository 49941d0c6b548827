// REES46-like e-commerce events (the columns of notebook 004) and the notebook's session workflow.
// Synthetic events carry planted sequential patterns: within a session, after a view of item i the next
// distinct item is most often i's successor in a hidden item order (product ids are a scrambled bijection of
// that order), so a next-item model can learn transitions that popularity cannot; about 15% of events are
// consecutive repeats of the previous item (add to cart after a view), which the workflow removes.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ValidationError } from "../../common/errors.js";
import { parseTimeText } from "../../common/time.js";
import {
  Categorify,
  DayIndex,
  DedupeConsecutive,
  Expr,
  Filter,
  Groupby,
  JoinGroupby,
  ListSlice,
  LogOp,
  Normalize,
  Rename,
  Select,
  TimeFeatures,
  AddTags,
} from "../etl/operators/index.js";
import { openDuckDB, sqlString } from "../../common/duckdb.js";
import { exec, queryRows } from "../etl/sql.js";
import { Workflow } from "../etl/workflow.js";

export interface Rees46Options {
  /** number of sessions (events are about 6.5 per session, repeats included) */
  sessions: number;
  users?: number;
  items?: number;
  categories?: number;
  seed?: number;
  /** first day, UTC (default 2019-10-01) */
  start?: string;
  days?: number;
  /** probability that the next item follows the planted order */
  followProbability?: number;
  format?: "parquet" | "csv";
}

export const CATEGORY_CODES = [
  "electronics.smartphone",
  "appliances.kitchen.refrigerators",
  "computers.notebook",
  "apparel.shoes",
  "furniture.living_room.sofa",
  "electronics.audio.headphone",
  "auto.accessories.player",
  "kids.toys",
];

/** The hidden order's successor of item index i among n items, as a product id: 1000000 + (i * 7919) mod n. */
export function rees46ProductId(index: number, items: number): number {
  return 1_000_000 + ((index * 7919) % items);
}

/** Writes the synthetic events to `out` (a .parquet or .csv file); returns the number of events. */
export async function generateRees46(
  out: string,
  o: Rees46Options,
): Promise<{ path: string; events: number; sessions: number }> {
  const S = o.sessions;
  if (!Number.isInteger(S) || S < 1)
    throw new ValidationError(`generateRees46: sessions must be a positive integer, got ${S}`);
  const U = o.users ?? Math.max(10, Math.round(S / 3));
  const I = o.items ?? Math.max(50, Math.round(Math.sqrt(S) * 20));
  if (I % 7919 === 0) throw new ValidationError("generateRees46: items must not be a multiple of 7919");
  const C = o.categories ?? Math.max(5, Math.round(I / 200));
  const seed = o.seed ?? 42;
  const days = o.days ?? 7;
  const follow = o.followProbability ?? 0.7;
  const start = o.start ?? "2019-10-01";
  if (!/^\d{4}-\d\d-\d\d$/.test(start))
    throw new ValidationError(`generateRees46: start ${JSON.stringify(start)} is not a date (YYYY-MM-DD)`);
  const startMs = parseTimeText(start, "generateRees46: start");
  const path = resolve(out);
  const format = o.format ?? (path.endsWith(".csv") ? "csv" : "parquet");
  mkdirSync(dirname(path), { recursive: true });
  const u = (tag: string, ...keys: string[]) =>
    `((hash(${seed}, '${tag}', ${keys.join(", ")}) % 1000000007) / 1000000007.0)`;
  const duck = await openDuckDB();
  try {
    const sql = `
WITH sessions AS (
  SELECT range AS s,
         CAST(floor(${u("user", "range")} * ${U}) AS BIGINT) AS uidx,
         make_timestamp(${startMs * 1000} + CAST(floor(${u("start", "range")} * ${days * 86400 - 3600}) AS BIGINT) * 1000000) AS t0,
         CASE WHEN ${u("long", "range")} < 0.05 THEN 20 + CAST(floor(${u("len", "range")} * 20) AS INTEGER)
              ELSE 1 + CAST(floor(pow(${u("len", "range")}, 1.5) * 10) AS INTEGER) END AS len
  FROM range(${S})
),
steps AS (
  SELECT s, uidx, t0, k, ${u("jump", "s", "k")} >= ${follow} OR k = 0 AS jump FROM sessions, LATERAL (SELECT unnest(range(len)) AS k)
),
segs AS (
  SELECT *, max(CASE WHEN jump THEN k END) OVER (PARTITION BY s ORDER BY k ROWS UNBOUNDED PRECEDING) AS seg FROM steps
),
items AS (
  SELECT s, uidx, t0, k,
         -- a segment starts at a popularity-skewed item and walks the hidden order
         (CAST(floor(pow(${u("item", "s", "seg")}, 2.0) * ${I}) AS BIGINT) + (k - seg)) % ${I} AS iidx
  FROM segs
),
events AS (
  SELECT s, uidx, iidx, t0 + to_seconds(k * 60 + CAST(floor(${u("gap", "s", "k")} * 40) AS BIGINT)) AS t,
         CASE WHEN ${u("buy", "s", "k")} < 0.02 THEN 'purchase' ELSE 'view' END AS event_type
  FROM items
  UNION ALL
  SELECT s, uidx, iidx, t0 + to_seconds(k * 60 + 50) AS t, 'cart' AS event_type FROM items WHERE ${u("repeat", "s", "k")} < 0.15
)
SELECT strftime(t, '%Y-%m-%d %H:%M:%S') || ' UTC' AS event_time_text, t AS event_time, event_type,
       CAST(1000000 + (iidx * 7919) % ${I} AS BIGINT) AS product_id,
       CAST(2053013552326770000 AS BIGINT) + CAST(floor(iidx * ${C} / ${I}) AS BIGINT) AS category_id,
       CASE WHEN CAST(floor(iidx * ${C} / ${I}) AS BIGINT) % 3 = 2 THEN NULL
            ELSE list_extract(${`[${CATEGORY_CODES.map((c) => sqlString(c)).join(", ")}]`}, 1 + CAST(floor(iidx * ${C} / ${I}) AS BIGINT) % ${CATEGORY_CODES.length}) END AS category_code,
       CASE WHEN iidx % 10 = 9 THEN NULL ELSE 'brand' || (iidx % 97) END AS brand,
       round(2 + ${u("price", "iidx")} * 500, 2) AS price,
       CAST(500000000 + uidx AS BIGINT) AS user_id,
       substr(md5('${seed}-' || s), 1, 8) || '-' || substr(md5('${seed}-' || s), 9, 4) || '-' || substr(md5('${seed}-' || s), 13, 4) || '-' || substr(md5('${seed}-' || s), 17, 4) || '-' || substr(md5('${seed}-' || s), 21, 12) AS user_session
FROM events ORDER BY t, s`;
    const cols =
      format === "csv"
        ? "event_time_text AS event_time, event_type, product_id, category_id, category_code, brand, price, user_id, user_session"
        : "* EXCLUDE (event_time_text)";
    await exec(
      duck.connection,
      `COPY (SELECT ${cols} FROM (${sql})) TO ${sqlString(path)} (FORMAT ${format === "csv" ? "csv, HEADER true" : "parquet"})`,
      `generating REES46-like events into ${path}`,
    );
    const from = format === "csv" ? `read_csv(${sqlString(path)}, header = true)` : `read_parquet(${sqlString(path)})`;
    const [r] = await queryRows(duck.connection, `SELECT count(*) AS n FROM ${from}`, `reading ${path}`);
    return { path, events: Number(r.n), sessions: S };
  } finally {
    duck.close();
  }
}

export interface SessionWorkflowOptions {
  /**
   * lists keep a session's latest this many events (20, as notebook 004's length; the notebook keeps the first
   * 20, but a session's next item follows its latest events, and a live session's row must keep changing)
   */
  maxLength?: number;
  /** sessions shorter than this are dropped (notebook 004: 2) */
  minLength?: number;
}

export const SESSION_LIST_FEATURES = [
  "product_id",
  "category_code",
  "event_type",
  "brand",
  "category_id",
  "et_dayofweek_sin",
  "et_dayofweek_cos",
  "price_log_norm",
  "relative_price_to_avg_categ_id",
  "product_recency_days_log_norm",
];

/**
 * Notebook 004's preprocessing: drop null sessions, remove consecutive repeats, categorify (start index 1),
 * weekday sin/cos, item recency (days since the item's first event, log, normalised), log-normalised price,
 * price relative to the category mean, group by session sorted by time, keep the latest events, day index, drop short
 * sessions. Outputs user_session, product_id-count, day_index and `<feature>-list_seq` lists.
 */
export function rees46SessionWorkflow(o: SessionWorkflowOptions = {}): Workflow {
  const maxLength = o.maxLength ?? 20;
  const minLength = o.minLength ?? 2;
  const lists = SESSION_LIST_FEATURES.map((f) => `${f}-list`);
  return new Workflow([
    new Filter("user_session IS NOT NULL"),
    new DedupeConsecutive({ session: "user_session", item: "product_id", sortBy: ["event_time"] }),
    new Expr("event_time_ts", "epoch(event_time)"),
    new JoinGroupby("product_id", { cont: ["event_time_ts"], stats: ["min"] }),
    new Expr("product_recency_days_log_norm", "greatest((event_time_ts - product_id_event_time_ts_min) / 86400, 0)"),
    new LogOp("product_recency_days_log_norm"),
    new Normalize("product_recency_days_log_norm"),
    new JoinGroupby("category_id", { cont: ["price"], stats: ["mean"] }),
    new Expr(
      "relative_price_to_avg_categ_id",
      "CASE WHEN category_id_price_mean > 0 THEN (price - category_id_price_mean) / (category_id_price_mean + 0.00001) ELSE 0 END",
      { tags: ["continuous"] },
    ),
    new Rename("price", { name: "price_log_norm", keep: true }),
    new LogOp("price_log_norm"),
    new Normalize("price_log_norm"),
    new TimeFeatures("event_time", { features: ["weekday_sin", "weekday_cos"] }),
    new Rename("event_time_weekday_sin", { name: "et_dayofweek_sin" }),
    new Rename("event_time_weekday_cos", { name: "et_dayofweek_cos" }),
    new Categorify(["user_session", "category_code", "brand", "user_id", "product_id", "category_id", "event_type"], {
      startIndex: 1,
    }),
    new AddTags("user_session", ["session_id"]),
    new AddTags("product_id", ["item_id", "item"]),
    new AddTags(["category_code", "brand", "category_id"], ["item"]),
    new AddTags("user_id", ["user_id", "user"]),
    new Groupby({
      groupBy: ["user_session"],
      sortBy: ["event_time"],
      aggs: {
        user_id: ["first"],
        product_id: ["list", "count"],
        category_code: ["list"],
        event_type: ["list"],
        brand: ["list"],
        category_id: ["list"],
        event_time_ts: ["first"],
        event_time: ["first"],
        et_dayofweek_sin: ["list"],
        et_dayofweek_cos: ["list"],
        price_log_norm: ["list"],
        relative_price_to_avg_categ_id: ["list"],
        product_recency_days_log_norm: ["list"],
      },
      sep: "-",
    }),
    new ListSlice(lists, -maxLength),
    new Rename(lists, { postfix: "_seq" }),
    new DayIndex("event_time-first"),
    new Filter(`"product_id-count" >= ${minLength}`, { online: false }),
    new Select([
      "user_session",
      "user_id-first",
      "product_id-count",
      "event_time-first",
      "day_index",
      ...lists.map((l) => `${l}_seq`),
    ]),
  ]);
}
