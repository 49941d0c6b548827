// Where batch recommendations go: one JSON list per entity under "<prefix><id>" in Redis or the SQLite online
// store (each list replaced whole), or a parquet file (written as numbered parts, then one file renamed into
// place, so an interrupted run leaves the previous file as it was).

import { mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { openDuckDB, sqlString, type DuckDBHandle } from "../../common/duckdb.js";
import { ValidationError } from "../../common/errors.js";
import type { Dtype } from "../../registry/types.js";
import { copyToParquet, writeParquetWith } from "../../stores/offline/parquet.js";
import { openPrecomputed, type PrecomputedTarget } from "../../stores/precomputed.js";
import type { RecommendResult } from "../../stores/serving.js";

export interface RecommendationSink {
  /** "redis 127.0.0.1:6379", "sqlite <file>", "parquet <file>" */
  readonly describe: string;
  write(results: RecommendResult[]): Promise<void>;
  /** Make what was written visible (parquet: the file); the key-value sinks are visible as they go. */
  finish(): Promise<void>;
  /** Release the connection; without finish, a parquet sink removes its parts. */
  close(): Promise<void>;
}

export interface SinkShape {
  pipeline: string;
  entityKey: string;
  entityDtype: Dtype;
  itemKey: string;
  itemDtype: Dtype;
}

/** The stored JSON of one list: the /recommend result, with the pipeline and when it was computed. */
export function listJson(r: RecommendResult, pipeline: string, createdAt: string): string {
  const { debug: _debug, ...rest } = r;
  return JSON.stringify({ ...rest, pipeline, created_at: createdAt });
}

export async function openKeyValueSink(
  target: PrecomputedTarget,
  shape: SinkShape,
  keyPrefix: string,
): Promise<RecommendationSink> {
  const store = await openPrecomputed(target);
  const createdAt = new Date().toISOString();
  return {
    describe: target.type === "redis" ? `redis ${target.connectionString}` : `sqlite ${target.path}`,
    async write(results) {
      await store.write(
        results.map((r) => ({
          key: `${keyPrefix}${String(r[shape.entityKey])}`,
          json: listJson(r, shape.pipeline, createdAt),
        })),
      );
    },
    async finish() {},
    async close() {
      await store.close();
    },
  };
}

function scalarOf(d: Dtype): Dtype {
  if (d.endsWith("[]"))
    throw new ValidationError(`batch recommendations: a join key of list type ${d} is not supported`);
  return d;
}

export async function openParquetSink(path: string, shape: SinkShape): Promise<RecommendationSink> {
  const target = resolve(path);
  if (!target.endsWith(".parquet"))
    throw new ValidationError(`--output ${path}: expected a file name ending in .parquet`);
  const parts = `${target}.parts-${process.pid}`;
  rmSync(parts, { recursive: true, force: true });
  mkdirSync(parts, { recursive: true });
  mkdirSync(dirname(target), { recursive: true });
  let db: DuckDBHandle | null = await openDuckDB();
  let n = 0;
  const types = {
    [shape.entityKey]: scalarOf(shape.entityDtype),
    items: `${scalarOf(shape.itemDtype)}[]` as Dtype,
    scores: "float64[]" as Dtype,
    fallback: "string" as Dtype,
  };
  const done = () => {
    db?.close();
    db = null;
    rmSync(parts, { recursive: true, force: true });
  };
  const writePart = async (results: RecommendResult[]) => {
    if (!db) return;
    n += 1;
    await writeParquetWith(
      db.connection,
      join(parts, `part-${String(n).padStart(8, "0")}.parquet`),
      {
        length: results.length,
        columns: {
          [shape.entityKey]: results.map((r) => r[shape.entityKey]),
          items: results.map((r) => r.items.map((i) => i[shape.itemKey])),
          scores: results.map((r) => r.items.map((i) => i.score)),
          fallback: results.map((r) => r.fallback),
        },
      },
      types,
    );
  };
  return {
    describe: `parquet ${target}`,
    async write(results) {
      if (results.length > 0) await writePart(results);
    },
    async finish() {
      if (!db) return;
      if (n === 0) await writePart([]); // an empty file still has the columns
      const select = `SELECT * FROM read_parquet(${sqlString(join(parts, "part-*.parquet"))})`;
      await copyToParquet(db.connection, select, target);
      done();
    },
    async close() {
      done();
    },
  };
}
