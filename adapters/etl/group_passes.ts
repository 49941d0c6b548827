// Group-by passes: DuckDB cannot spill list aggregates, so a group by too big for memory runs in several
// passes, each over the groups with hash(key) % passes = i. A parquet source is filtered by that hash at the
// scan when the key comes straight from the input (rereading the input costs less than writing it out in
// buckets); a CSV source is parsed once into parquet buckets by the hash and each pass reads its bucket;
// otherwise each pass filters its groups at the group by. README.md has the measurements behind the figures.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ident, parseByteSize, sqlString } from "../../common/duckdb.js";
import { errorMessage } from "../../common/errors.js";
import type { TaggedColumn } from "./columns.js";
import type { Op } from "./operators/base.js";
import { type Chain, compile, groupKeysAtSource, sqlContext } from "./plan.js";
import { exec, queryRows } from "./sql.js";

/**
 * Input rows one group-by pass takes per GiB of DuckDB memory_limit: list aggregates cannot spill, and near the
 * limit DuckDB evicts and rereads, so this keeps a margin below what fits.
 */
export const ROWS_PER_GROUP_PASS_PER_GIB = 3_000_000;

/** passes are never made smaller than this by default (each rescans the input) */
const MIN_ROWS_PER_GROUP_PASS = 100_000;

/** a transform that runs out of memory doubles its passes while they keep at least this many rows */
const MIN_ROWS_PER_RETRIED_PASS = 10_000;

export function hasGroupby(ops: readonly Op[]): boolean {
  return ops.some((o) => o.kind === "Groupby");
}

/** DuckDB's memory_limit setting ("953.6 MiB") in bytes; null when it cannot be read. */
export function parseMemory(text: string): number | null {
  return parseByteSize(text) ?? null;
}

/** Input rows per group-by pass under the connection's memory limit. */
async function groupPassRows(conn: DuckDBConnection): Promise<number> {
  const [{ m }] = await queryRows(conn, "SELECT current_setting('memory_limit') AS m", "reading memory_limit");
  const bytes = parseMemory(String(m)) ?? 2 ** 30;
  return Math.max(MIN_ROWS_PER_GROUP_PASS, Math.floor((bytes / 2 ** 30) * ROWS_PER_GROUP_PASS_PER_GIB));
}

/** The pass count a transform starts with: the one given, else an estimate from the memory limit; 1 without a group by. */
export async function firstGroupPasses(
  conn: DuckDBConnection,
  ops: readonly Op[],
  inputRows: number,
  given: number | undefined,
): Promise<number> {
  if (!hasGroupby(ops)) return 1;
  return Math.max(1, Math.floor(given ?? Math.ceil(inputRows / (await groupPassRows(conn)))));
}

/**
 * Whether a transform that failed in `passes` passes starts over with twice as many: only when the pass count
 * was an estimate and the group by ran out of memory (wide rows, long lists).
 */
export function retryWithMorePasses(
  e: unknown,
  ops: readonly Op[],
  passes: number,
  inputRows: number,
  given: number | undefined,
): boolean {
  return (
    given === undefined &&
    hasGroupby(ops) &&
    /out of memory/i.test(errorMessage(e)) &&
    inputRows / (passes * 2) >= MIN_ROWS_PER_RETRIED_PASS
  );
}

/** The rows of one pass: what the pass's query reads and how it learns its share of the groups. */
export interface PassSources {
  /** a folder of parquet buckets `__bucket=<i>/` (a CSV source with several passes), else null */
  buckets: string | null;
  /** the query of pass i, or null when its bucket is empty */
  sql(pass: number): Promise<string | null>;
}

/**
 * Prepares `passes` passes over the source: with one pass the compiled query itself; a CSV source with several
 * is first written to parquet buckets by hash(key) under `spill`.
 */
export async function passSources(
  conn: DuckDBConnection,
  chain: Chain,
  source: string,
  input: TaggedColumn[],
  compiled: string,
  o: { passes: number; training: boolean; spill: string; dataset: string },
): Promise<PassSources> {
  const { passes, training } = o;
  const bucketKeys = passes > 1 && source.includes("read_csv(") ? groupKeysAtSource(chain.ops, input) : null;
  const buckets = bucketKeys ? join(o.spill, `buckets-${passes}`) : null;
  if (buckets && bucketKeys) {
    await exec(
      conn,
      `COPY (SELECT *, hash(${bucketKeys.map(ident).join(", ")}) % ${passes} AS __bucket FROM ${source}) TO ${sqlString(buckets)} (FORMAT parquet, PARTITION_BY (__bucket))`,
      `transform of ${o.dataset}: bucketing by ${bucketKeys.join(", ")}`,
    );
  }
  const atSource = passes > 1 && !buckets && groupKeysAtSource(chain.ops, input) !== null;
  return {
    buckets,
    async sql(pass: number): Promise<string | null> {
      if (buckets) {
        const bucket = join(buckets, `__bucket=${pass}`);
        if (!existsSync(bucket)) return null;
        const from = `read_parquet(${sqlString(join(bucket, "*.parquet"))}, hive_partitioning = false)`;
        return (await compile(conn, chain.ops, from, input, chain.ops.length, sqlContext(chain, training), false)).sql;
      }
      if (passes <= 1) return compiled;
      const ctx = sqlContext(chain, training, { i: pass, n: passes, atSource });
      return (await compile(conn, chain.ops, source, input, chain.ops.length, ctx, false)).sql;
    },
  };
}
