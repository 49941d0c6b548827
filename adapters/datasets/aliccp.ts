// A synthetic Ali-CCP-like data set (the raw columns of notebook 001) whose clicks come from planted latent
// preferences: every user has a taste cluster, every item belongs to a cluster, and a click is much more likely
// when they match. Item popularity is skewed too, so popularity is a fair baseline that a personalised model
// (which can learn the user-cluster/item-cluster match from ids and features) measurably beats.
// Generated in one DuckDB query from hashes of (seed, row): deterministic for a seed, fast, larger than memory.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { ValidationError } from "../../common/errors.js";
import { toEpochMs } from "../../common/time.js";
import { AddTags, Categorify, Dropna, Rename } from "../etl/operators/index.js";
import { openDuckDB, sqlString } from "../../common/duckdb.js";
import { exec, queryRows } from "../etl/sql.js";
import { Workflow } from "../etl/workflow.js";

export interface AliccpOptions {
  rows: number;
  users?: number;
  items?: number;
  /** number of latent taste clusters */
  clusters?: number;
  seed?: number;
  /** fraction of rows written to valid/ (notebook 001: 0.3) */
  validFraction?: number;
  /** event timestamps fall in [end - spanDays, end) (default end: 2024-06-01T00:00:00Z, spanDays 3) */
  end?: Date | string;
  spanDays?: number;
}

export interface AliccpResult {
  dir: string;
  train: string;
  valid: string;
  rows: { train: number; valid: number };
  users: number;
  items: number;
  /** overall click rate */
  clickRate: number;
}

export const ALICCP_USER_COLUMNS = [
  "user_shops",
  "user_profile",
  "user_group",
  "user_gender",
  "user_age",
  "user_consumption_1",
  "user_consumption_2",
  "user_is_occupied",
  "user_geography",
  "user_intentions",
  "user_brands",
  "user_categories",
];
export const ALICCP_ITEM_COLUMNS = ["item_category", "item_shop", "item_intention", "item_brand"];

/** Writes DIR/train/part_0.parquet and DIR/valid/part_0.parquet. */
export async function generateAliccp(dir: string, o: AliccpOptions): Promise<AliccpResult> {
  const N = o.rows;
  if (!Number.isInteger(N) || N < 10)
    throw new ValidationError(`generateAliccp: rows must be an integer >= 10, got ${N}`);
  const U = o.users ?? Math.max(50, Math.round(N / 100));
  const I = o.items ?? Math.max(50, Math.round(N / 200));
  const K = o.clusters ?? 8;
  if (I < K) throw new ValidationError(`generateAliccp: items (${I}) must be at least clusters (${K})`);
  const seed = o.seed ?? 42;
  const valid = o.validFraction ?? 0.3;
  const endMs = toEpochMs(o.end ?? "2024-06-01T00:00:00Z", "generateAliccp: end");
  const spanS = Math.round((o.spanDays ?? 3) * 86400);
  const out = resolve(dir);
  const u = (tag: string, key: string) => `((hash(${seed}, '${tag}', ${key}) % 1000000007) / 1000000007.0)`;
  const h = (tag: string, key: string, m: number) => `CAST(hash(${seed}, '${tag}', ${key}) % ${m} AS BIGINT)`;
  const perCluster = Math.floor(I / K);
  const sql = `
WITH imp AS (
  SELECT range AS r,
         -- users: mildly skewed activity
         CAST(floor(pow(${u("user", "range")}, 1.3) * ${U}) AS BIGINT) AS uidx,
         ${u("own", "range")} < 0.5 AS own,
         pow(${u("pop", "range")}, 2.2) AS pop
  FROM range(${N})
),
picked AS (
  SELECT r, uidx, ${h("taste", "uidx", K)} AS taste,
         CASE WHEN own THEN least(CAST(floor(pop * ${perCluster}) AS BIGINT) * ${K} + ${h("taste", "uidx", K)}, ${I - 1})
              ELSE CAST(floor(pop * ${I}) AS BIGINT) END AS iidx
  FROM imp
),
scored AS (
  SELECT *, iidx % ${K} AS cluster,
         -- logit: a bias, the planted match, and a popularity term (low item index = popular)
         1 / (1 + exp(-(-2.2 + 2.6 * CAST(iidx % ${K} = taste AS INTEGER) + 0.8 * (1 - iidx / ${I})))) AS p
  FROM picked
)
SELECT
  CAST(uidx + 1 AS BIGINT) AS user_id,
  CAST(iidx + 1 AS BIGINT) AS item_id,
  CAST(cluster * 3 + ${h("icat", "iidx", 3)} + 1 AS INTEGER) AS item_category,
  CAST(${h("ishop", "iidx", Math.max(2, Math.round(I / 4)))} + 1 AS INTEGER) AS item_shop,
  CAST(cluster + 1 AS INTEGER) AS item_intention,
  CAST(${h("ibrand", "iidx", Math.max(2, Math.round(I / 8)))} + 1 AS INTEGER) AS item_brand,
  CAST(${h("ushops", "uidx", Math.max(2, Math.round(U / 2)))} + 1 AS INTEGER) AS user_shops,
  CAST(${h("uprof", "uidx", 50)} + 1 AS INTEGER) AS user_profile,
  CAST(CASE WHEN ${u("ugrp", "uidx")} < 0.8 THEN taste ELSE ${h("ugrp2", "uidx", K)} END + 1 AS INTEGER) AS user_group,
  CAST(${h("ugender", "uidx", 2)} + 1 AS INTEGER) AS user_gender,
  CAST(${h("uage", "uidx", 7)} + 1 AS INTEGER) AS user_age,
  CAST(${h("ucons1", "uidx", 3)} + 1 AS INTEGER) AS user_consumption_1,
  CAST(${h("ucons2", "uidx", 3)} + 1 AS INTEGER) AS user_consumption_2,
  CAST(${h("uocc", "uidx", 2)} + 1 AS INTEGER) AS user_is_occupied,
  CAST(${h("ugeo", "uidx", 4)} + 1 AS INTEGER) AS user_geography,
  CAST(taste * 4 + ${h("uint", "uidx", 4)} + 1 AS INTEGER) AS user_intentions,
  CAST(${h("ubrand", "uidx", Math.max(2, Math.round(U / 3)))} + 1 AS INTEGER) AS user_brands,
  CAST(taste * 3 + ${h("ucat", "uidx", 3)} + 1 AS INTEGER) AS user_categories,
  CAST(${u("click", "r")} < p AS INTEGER) AS click,
  CAST(${u("click", "r")} < p AND ${u("conv", "r")} < 0.05 + 0.25 * CAST(cluster = taste AS INTEGER) AS INTEGER) AS conversion,
  make_timestamp(${endMs * 1000} - CAST(floor(${u("ts", "r")} * ${spanS}) AS BIGINT) * 1000000 - 1000000) AS event_timestamp,
  ${u("split", "r")} < ${valid} AS __valid
FROM scored`;
  const duck = await openDuckDB();
  try {
    await exec(duck.connection, `CREATE TEMP TABLE aliccp AS ${sql}`, "generating Ali-CCP-like data");
    const counts: Record<string, number> = {};
    for (const [name, cond] of [
      ["train", "NOT __valid"],
      ["valid", "__valid"],
    ] as const) {
      mkdirSync(join(out, name), { recursive: true });
      await exec(
        duck.connection,
        `COPY (SELECT * EXCLUDE (__valid) FROM aliccp WHERE ${cond}) TO ${sqlString(join(out, name, "part_0.parquet"))} (FORMAT parquet)`,
        `writing ${join(out, name)}`,
      );
      const [r] = await queryRows(duck.connection, `SELECT count(*) AS n FROM aliccp WHERE ${cond}`, "count");
      counts[name] = Number(r.n);
    }
    const [c] = await queryRows(duck.connection, `SELECT avg(click)::DOUBLE AS c FROM aliccp`, "click rate");
    return {
      dir: out,
      train: join(out, "train"),
      valid: join(out, "valid"),
      rows: { train: counts.train, valid: counts.valid },
      users: U,
      items: I,
      clickRate: Number(c.c),
    };
  } finally {
    duck.close();
  }
}

/**
 * Notebook 001's ETL: raw id copies (user_id_raw, item_id_raw), categorified ids and user/item features,
 * tags (user_id, item_id, user, item, target), click as the binary target, event_timestamp as time; Dropna.
 */
export function aliccpWorkflow(): Workflow {
  return new Workflow([
    new Rename(["user_id", "item_id"], { postfix: "_raw", keep: true }),
    new AddTags("user_id_raw", ["user"]),
    new AddTags("item_id_raw", ["item"]),
    new Categorify(["user_id", "item_id", ...ALICCP_ITEM_COLUMNS, ...ALICCP_USER_COLUMNS]),
    new AddTags("user_id", ["user_id", "user"]),
    new AddTags("item_id", ["item_id", "item"]),
    new AddTags(ALICCP_ITEM_COLUMNS, ["item"]),
    new AddTags(ALICCP_USER_COLUMNS, ["user"]),
    new AddTags("click", ["binary_classification", "target"]),
    new AddTags("conversion", ["binary_classification"]),
    new AddTags("event_timestamp", ["time"]),
    new Dropna(),
  ]);
}
