// Reading DuckDB results into column batches: chunk by chunk (stream + fetchChunk), numbers into typed
// arrays, timestamps as ms numbers. Much faster than row objects (getRowObjectsJS) for big results.
import {
  DuckDBBlobValue,
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBListValue,
  DuckDBArrayValue,
  DuckDBStructValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBConnection,
  type DuckDBDataChunk,
  type DuckDBValue,
} from "@duckdb/node-api";
import { ident } from "../../common/duckdb.js";
import { takeTurn } from "../../common/turns.js";
import type { ColumnBatch } from "../types.js";
import type { ColumnInfo, OfflineDuckDB } from "./db.js";
import { typeFamily } from "./duck_types.js";

/** How a column is read: numbers land in typed arrays, the rest in plain arrays. */
export type ReadKind = "f64" | "f32" | "i32" | "i64" | "ts" | "string" | "bool" | "bytes" | "list" | "other";

export interface ReadColumn {
  name: string;
  kind: ReadKind;
  /** the column's DuckDB type before conversion (DESCRIBE spelling) */
  duckType: string;
  /** SQL producing the value as read */
  expr: string;
}

const I32_TYPES = new Set(["TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT"]);

/** The read plan of one column: what SQL expression to select and how to decode it. */
export function readColumn(col: ColumnInfo): ReadColumn {
  const q = ident(col.name);
  const t = col.type;
  const fam = typeFamily(t);
  const plain = (kind: ReadKind, expr = q): ReadColumn => ({
    name: col.name,
    kind,
    duckType: t,
    expr: `${expr} AS ${q}`,
  });
  switch (fam) {
    case "timestamp":
    case "date":
      // ms since the epoch, as a DOUBLE so reading needs no bigint
      return plain("ts", `CAST(epoch_ms(CAST(${q} AS TIMESTAMP)) AS DOUBLE)`);
    case "float":
      return t === "FLOAT" ? plain("f32") : plain("f64", t === "DOUBLE" ? q : `CAST(${q} AS DOUBLE)`);
    case "int":
      if (I32_TYPES.has(t)) return plain("i32", `CAST(${q} AS INTEGER)`);
      return plain("i64", t === "BIGINT" ? q : `CAST(${q} AS BIGINT)`);
    case "string":
      return plain("string");
    case "bool":
      return plain("bool");
    case "bytes":
      return plain("bytes");
    case "list":
      return plain("list");
    default:
      return plain("other", `CAST(${q} AS VARCHAR)`);
  }
}

export function readPlan(cols: ColumnInfo[]): ReadColumn[] {
  return cols.map(readColumn);
}

/** The SELECT that reads `relation` (a table, view or parenthesised query) according to `plan`. */
export function readSql(plan: ReadColumn[], relation: string): string {
  return `SELECT ${plan.map((c) => c.expr).join(", ")} FROM ${relation}`;
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** BIGINT as a number when it is exactly representable, else kept as bigint. */
function bigintToJs(v: bigint): number | bigint {
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

/** A DuckDB value as a plain JS value: timestamps as ms, BIGINT as number when safe, lists as arrays. */
export function toJsValue(v: DuckDBValue): unknown {
  if (v === null || typeof v === "number" || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "bigint") return bigintToJs(v);
  if (v instanceof DuckDBListValue || v instanceof DuckDBArrayValue) return v.items.map(toJsValue);
  if (v instanceof DuckDBTimestampValue || v instanceof DuckDBTimestampTZValue) return Number(v.micros) / 1000;
  if (v instanceof DuckDBTimestampMillisecondsValue) return Number(v.millis);
  if (v instanceof DuckDBTimestampSecondsValue) return Number(v.seconds) * 1000;
  if (v instanceof DuckDBTimestampNanosecondsValue) return Number(v.nanos / 1000n) / 1000;
  if (v instanceof DuckDBDateValue) return v.days * 86_400_000;
  if (v instanceof DuckDBBlobValue) return v.bytes;
  if (v instanceof DuckDBDecimalValue) return v.toDouble();
  if (v instanceof DuckDBStructValue) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v.entries)) o[k] = toJsValue(x);
    return o;
  }
  return String(v);
}

/** Accumulates one column of a batch. Numbers go to a typed array; nulls and unsafe bigints fall back. */
class ColumnBuilder {
  private nums: Float64Array | Float32Array | Int32Array | null;
  private values: unknown[] | null;
  private nullAt: number[] = [];
  private bigAt: Array<[number, bigint]> = [];

  constructor(
    readonly col: ReadColumn,
    private readonly capacity: number,
  ) {
    this.nums = null;
    this.values = null;
    this.reset();
  }

  reset(): void {
    const k = this.col.kind;
    this.nums =
      k === "f64" || k === "ts" || k === "i64"
        ? new Float64Array(this.capacity)
        : k === "f32"
          ? new Float32Array(this.capacity)
          : k === "i32"
            ? new Int32Array(this.capacity)
            : null;
    this.values = this.nums ? null : new Array<unknown>(this.capacity);
    this.nullAt = [];
    this.bigAt = [];
  }

  /** Copy rows [from, from+n) of the chunk column into positions [pos, pos+n). */
  fill(chunk: DuckDBDataChunk, colIndex: number, from: number, n: number, pos: number): void {
    const vec = chunk.getColumnVector(colIndex);
    const nums = this.nums;
    const kind = this.col.kind;
    if (nums) {
      for (let i = 0; i < n; i++) {
        const v = vec.getItem(from + i);
        if (v === null) {
          this.nullAt.push(pos + i);
        } else if (typeof v === "bigint") {
          const x = bigintToJs(v);
          if (typeof x === "bigint") this.bigAt.push([pos + i, x]);
          else nums[pos + i] = x;
        } else {
          nums[pos + i] = v as number;
        }
      }
      return;
    }
    const out = this.values as unknown[];
    if (kind === "string" || kind === "bool" || kind === "other") {
      for (let i = 0; i < n; i++) out[pos + i] = vec.getItem(from + i);
    } else if (kind === "bytes") {
      for (let i = 0; i < n; i++) {
        const v = vec.getItem(from + i) as DuckDBBlobValue | null;
        out[pos + i] = v === null ? null : v.bytes;
      }
    } else {
      for (let i = 0; i < n; i++) out[pos + i] = toJsValue(vec.getItem(from + i));
    }
  }

  /** The finished column of `length` rows. */
  take(length: number): ArrayLike<unknown> {
    if (this.nums) {
      const nums = this.nums.subarray(0, length);
      // reset() allocates a fresh buffer, so handing this one out is safe
      if (this.nullAt.length === 0 && this.bigAt.length === 0) return nums;
      const arr: unknown[] = Array.from(nums);
      for (const i of this.nullAt) arr[i] = null;
      for (const [i, b] of this.bigAt) arr[i] = b;
      return arr;
    }
    const vals = this.values as unknown[];
    return vals.length === length ? vals : vals.slice(0, length);
  }
}

/** Cut a sequence of DuckDB chunks into batches of up to `batchSize` rows. */
async function* chunksToBatches(
  nextChunk: () => Promise<DuckDBDataChunk | null>,
  plan: ReadColumn[],
  batchSize: number,
): AsyncGenerator<ColumnBatch> {
  const builders = plan.map((c) => new ColumnBuilder(c, batchSize));
  let filled = 0;
  const flush = (): ColumnBatch => {
    const columns: Record<string, ArrayLike<unknown>> = {};
    for (const b of builders) {
      columns[b.col.name] = b.take(filled);
      b.reset();
    }
    const batch = { length: filled, columns };
    filled = 0;
    return batch;
  };
  // the next chunk is fetched (in DuckDB's threads) while this one is converted and its batches consumed
  let pending = nextChunk();
  try {
    for (;;) {
      const chunk = await pending;
      if (!chunk || chunk.rowCount === 0) break;
      pending = nextChunk();
      // a consumer that stops early leaves this fetch unawaited: keep its failure from going unhandled
      pending.catch(() => undefined);
      // one chunk per turn of the event loop (see takeTurn): other work gets in while DuckDB fetches the next
      await takeTurn();
      const rows = chunk.rowCount;
      let from = 0;
      while (from < rows) {
        const n = Math.min(rows - from, batchSize - filled);
        for (let j = 0; j < builders.length; j++) builders[j].fill(chunk, j, from, n, filled);
        filled += n;
        from += n;
        if (filled === batchSize) yield flush();
      }
    }
    if (filled > 0) yield flush();
  } finally {
    // the fetch ahead is done before the caller ends the query on this connection (see release)
    await pending.catch(() => undefined);
  }
}

/**
 * Stream `sql` (built with readSql from `plan`) on a connection of its own, yielding batches of up to
 * `batchSize` rows. Numeric columns without nulls come as Float64Array / Float32Array / Int32Array;
 * columns with nulls as plain arrays.
 */
export async function* streamBatches(
  duck: OfflineDuckDB,
  sql: string,
  plan: ReadColumn[],
  batchSize = 65_536,
): AsyncGenerator<ColumnBatch> {
  const conn: DuckDBConnection = await duck.connect();
  try {
    const result = await conn.stream(sql);
    yield* chunksToBatches(() => result.fetchChunk(), plan, batchSize);
  } finally {
    await release(conn);
  }
}

/**
 * Closes a stream's connection and frees what its query held. Closing alone is not enough: a streaming
 * result keeps its connection's context (the query's hash tables and sort runs, the temp tables) alive
 * until node's GC finalizes the result, which would leave DuckDB short of memory for the next query after
 * an abandoned or failed read. A new statement on the connection ends the streaming query (DuckDB invalidates
 * a stream when its connection runs another statement); `teardown` drops what `setup` made.
 */
async function release(conn: DuckDBConnection, teardown: string[] = []): Promise<void> {
  for (const stmt of [...teardown, "SELECT 1"]) {
    try {
      await conn.run(stmt);
    } catch {
      // the connection is being closed anyway; what could not be freed goes with the GC
    }
  }
  conn.closeSync();
}

/**
 * Run the `setup` statements (e.g. a temp table of the rows to read) and `countSql` on a connection of
 * its own, then stream `sql` from it: the row count is known up front (for progress) and the rows are
 * still streamed, overlapping DuckDB's work with the consumer's. The connection, and with it any temp
 * table, is closed when the batches are done (or abandoned).
 */
export async function countedBatches(
  duck: OfflineDuckDB,
  setup: string[],
  countSql: string,
  sql: string,
  plan: ReadColumn[],
  batchSize = 65_536,
  teardown: string[] = [],
): Promise<{ total: number; batches: AsyncGenerator<ColumnBatch> }> {
  const conn = await duck.connect();
  let total: number;
  try {
    for (const stmt of setup) await conn.run(stmt);
    const counted = await conn.runAndReadAll(countSql);
    total = Number(counted.getRows()[0][0]);
  } catch (e) {
    await release(conn, teardown);
    throw e;
  }
  async function* batches(): AsyncGenerator<ColumnBatch> {
    try {
      const result = await conn.stream(sql);
      yield* chunksToBatches(() => result.fetchChunk(), plan, batchSize);
    } finally {
      await release(conn, teardown);
    }
  }
  return { total, batches: batches() };
}
