// Batch recommendations (notebook 001's offline scoring, done through the serving pipeline): users in blocks,
// exact full-catalogue retrieval (blockedExactCandidates) in place of the ANN, then the rest of the pipeline as
// `store.recommend` runs it, and each block's lists written before the next is scored, so memory is bounded
// by the block and the catalogue, not by the number of users. A rerun replaces every list it writes.

import { ValidationError } from "../../common/errors.js";
import { openDuckDB, sqlString, ident } from "../../common/duckdb.js";
import { silentProgress, type ProgressSink } from "../../common/progress.js";
import { type FeatureViewSpec, viewIn } from "../../registry/types.js";
import type { FeatureStore } from "../../stores/feature_store.js";
import { toJsValue } from "../../stores/offline/read.js";
import { DEFAULT_KEY_PREFIX, precomputedTargetOf } from "../../stores/precomputed.js";
import { idKey } from "./batch.js";
import { blockedExactCandidates, type ItemMatrix } from "./exact_retrieval.js";
import { recommenderFor } from "./recommender.js";
import { openKeyValueSink, openParquetSink, type RecommendationSink, type SinkShape } from "./recommendation_sink.js";
import type { TypedPipeline } from "./typing.js";

export interface BatchRecommendOptions {
  pipeline: string;
  /** "all" (every entity of the QueryFeatures stage's first view), a parquet file with the join key, or keys */
  entities: string | ArrayLike<unknown>;
  to: "redis" | "sqlite" | "parquet";
  /** key of each list: prefix + entity id (default "USER:") */
  keyPrefix?: string;
  /** the parquet file (to: parquet; default data/recommendations.parquet in the repo) */
  output?: string;
  /** Redis connection string when the online store is not Redis (default 127.0.0.1:6379) */
  redis?: string;
  /** a parquet file of item embeddings (item join key + `embedding`); default the Retrieve stage's vector view */
  itemEmbeddings?: string;
  /** users scored at once (default 512) */
  blockSize?: number;
  topK?: number;
  seed?: number;
  progress?: ProgressSink;
}

export interface BatchRecommendReport {
  pipeline: string;
  users: number;
  items: number;
  /** lists answered by the popularity fallback */
  fallbacks: number;
  target: string;
  seconds: number;
  /** of which before the first user: reading the catalogue, listing users, opening the target */
  setupSeconds: number;
  /** events the pipeline counted (seen_dropped, filtered, missing features, ...) */
  events: Record<string, number>;
}

export const DEFAULT_BLOCK_SIZE = 512;

export async function recommendBatch(store: FeatureStore, o: BatchRecommendOptions): Promise<BatchRecommendReport> {
  const t0 = performance.now();
  const blockSize = o.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new ValidationError(`block size: expected an integer >= 1, got ${JSON.stringify(o.blockSize)}`);
  if (o.keyPrefix !== undefined && typeof o.keyPrefix !== "string")
    throw new ValidationError(`key prefix: expected a string, got ${JSON.stringify(o.keyPrefix)}`);
  const recommender = recommenderFor(store);
  const typed = await recommender.pipeline(o.pipeline);
  const retrieveStage = typed.stages.find((s) => s.vectors);
  if (!retrieveStage?.vectors || !typed.itemKey)
    throw new ValidationError(`pipeline "${o.pipeline}": batch recommendations need a Retrieve stage`);
  const items = o.itemEmbeddings
    ? await itemsFromParquet(o.itemEmbeddings, typed.itemKey)
    : await itemsFromView(store, viewNamed(store, retrieveStage.vectors.view), retrieveStage.vectors.feature);
  if (items.ids.length === 0)
    throw new ValidationError(
      `pipeline "${o.pipeline}": the item catalogue is empty (${o.itemEmbeddings ?? `view "${retrieveStage.vectors.view}"`})`,
    );
  const retrieve = blockedExactCandidates(items);
  const shape: SinkShape = {
    pipeline: o.pipeline,
    entityKey: typed.entityKey,
    entityDtype: typed.entityDtype,
    itemKey: typed.itemKey,
    itemDtype: typed.itemDtype,
  };
  const keys = await entityBlocks(store, typed, o.entities, blockSize);
  const sink = await openSink(store, o, shape);
  const progress = o.progress ?? silentProgress;
  const before = new Map(recommender.totals);
  const setupSeconds = (performance.now() - t0) / 1000;
  let users = 0;
  let fallbacks = 0;
  try {
    progress.start(`recommend batch ${o.pipeline} -> ${sink.describe}`, keys.total);
    let pending: Promise<void> = Promise.resolve();
    for await (const block of keys.blocks) {
      const res = await recommender.recommend(
        { pipeline: o.pipeline, entities: { [typed.entityKey]: block }, topK: o.topK, seed: o.seed },
        { retrieve },
      );
      for (const r of res.results) if (r.fallback) fallbacks++;
      // the previous block's write overlaps this block's scoring; at most one block waits to be written
      await pending;
      pending = sink.write(res.results);
      users += block.length;
      progress.tick(users);
    }
    await pending;
    await sink.finish();
  } finally {
    progress.stop();
    await sink.close();
    await recommender.flush(); // the pipeline's sampled feature logs, which store.close does not see from here
  }
  const events: Record<string, number> = {};
  for (const [k, v] of recommender.totals) {
    const [p, event] = k.split("\u0001");
    if (p === o.pipeline && v !== before.get(k)) events[event] = v - (before.get(k) ?? 0);
  }
  return {
    pipeline: o.pipeline,
    users,
    items: items.ids.length,
    fallbacks,
    target: sink.describe,
    seconds: (performance.now() - t0) / 1000,
    setupSeconds,
    events,
  };
}

function openSink(store: FeatureStore, o: BatchRecommendOptions, shape: SinkShape): Promise<RecommendationSink> {
  if (o.to === "parquet")
    return openParquetSink(o.output ?? `${store.config.repoPath}/data/recommendations.parquet`, shape);
  if (o.to !== "redis" && o.to !== "sqlite")
    throw new ValidationError(`--to: expected redis, sqlite or parquet, got ${JSON.stringify(o.to)}`);
  if (o.output !== undefined) throw new ValidationError(`--output names a parquet file: it goes with --to parquet`);
  return openKeyValueSink(precomputedTargetOf(store.config, o.to, o.redis), shape, o.keyPrefix ?? DEFAULT_KEY_PREFIX);
}

function viewNamed(store: FeatureStore, name: string): FeatureViewSpec {
  const v = store.contents().featureViews.find((f) => f.name === name);
  if (!v) throw new ValidationError(`feature view "${name}" is not in the registry`);
  return v;
}

/** The latest embedding of every item the view's offline source holds (what materialize puts online). */
async function itemsFromView(store: FeatureStore, view: FeatureViewSpec, feature: string): Promise<ItemMatrix> {
  const offline = await store.offlineStore();
  const narrow = { ...viewIn(view, store.config.repoPath), features: view.features.filter((f) => f.name === feature) };
  const key = view.entityColumns[0].name;
  const pulled = await offline.pullLatest(narrow, 0, Date.now());
  const ids: unknown[] = [];
  const rows: ArrayLike<number>[] = [];
  for await (const b of pulled.batches) {
    const k = b.columns[key];
    const e = b.columns[feature];
    for (let i = 0; i < b.length; i++) {
      const v = e[i] as ArrayLike<number> | null;
      if (v == null || v.length === 0) continue; // an item without a vector cannot be retrieved
      ids.push(k[i]);
      rows.push(v);
    }
  }
  return matrixOf(ids, rows, `feature view "${view.name}" feature "${feature}"`);
}

async function itemsFromParquet(path: string, itemKey: string): Promise<ItemMatrix> {
  const db = await openDuckDB();
  try {
    const r = await db.connection.runAndReadAll(
      `SELECT ${ident(itemKey)}, embedding FROM read_parquet(${sqlString(path)}) WHERE embedding IS NOT NULL`,
    );
    const ids: unknown[] = [];
    const rows: ArrayLike<number>[] = [];
    for (const [id, e] of r.getRowsJS() as Array<[unknown, number[]]>) {
      ids.push(typeof id === "bigint" ? idKey(id) : id);
      rows.push(e);
    }
    return matrixOf(ids, rows, path);
  } catch (e) {
    if (e instanceof ValidationError) throw e;
    throw new ValidationError(
      `--item-embeddings ${path}: expected a parquet file with columns "${itemKey}" and "embedding" (${String(e)})`,
    );
  } finally {
    db.close();
  }
}

function matrixOf(ids: unknown[], rows: ArrayLike<number>[], what: string): ItemMatrix {
  const dim = rows.length ? rows[0].length : 0;
  const embeddings = new Float32Array(rows.length * dim);
  rows.forEach((v, i) => {
    if (v.length !== dim)
      throw new ValidationError(`${what}: item ${String(ids[i])} has ${v.length} values, the first item ${dim}`);
    embeddings.set(v, i * dim);
  });
  return { ids, embeddings, dim };
}

interface EntityBlocks {
  total: number;
  blocks: AsyncIterable<unknown[]>;
}

async function entityBlocks(
  store: FeatureStore,
  typed: TypedPipeline,
  entities: BatchRecommendOptions["entities"],
  blockSize: number,
): Promise<EntityBlocks> {
  const key = typed.entityKey;
  if (typeof entities !== "string") {
    const all = Array.from(entities);
    return {
      total: all.length,
      blocks: (async function* () {
        for (let s = 0; s < all.length; s += blockSize) yield all.slice(s, s + blockSize);
      })(),
    };
  }
  if (entities === "all") {
    const q = typed.stages.find((s) => s.spec.kind === "query_features");
    const view = q?.resolved?.views[0]?.view;
    if (!view)
      throw new ValidationError(
        `pipeline "${typed.spec.name}": --entities all needs a QueryFeatures stage to list users`,
      );
    const offline = await store.offlineStore();
    const pulled = await offline.pullLatest({ ...viewIn(view, store.config.repoPath), features: [] }, 0, Date.now(), {
      batchSize: blockSize,
    });
    return { total: pulled.total, blocks: rebatch(pulled.batches, key, blockSize) };
  }
  return parquetKeys(entities, key, blockSize);
}

async function* rebatch(
  batches: AsyncIterable<{ length: number; columns: Record<string, ArrayLike<unknown>> }>,
  key: string,
  blockSize: number,
): AsyncGenerator<unknown[]> {
  let block: unknown[] = [];
  for await (const b of batches) {
    const col = b.columns[key];
    for (let i = 0; i < b.length; i++) {
      block.push(col[i]);
      if (block.length === blockSize) {
        yield block;
        block = [];
      }
    }
  }
  if (block.length) yield block;
}

/** The join key column of a parquet file, streamed. */
async function parquetKeys(path: string, key: string, blockSize: number): Promise<EntityBlocks> {
  const db = await openDuckDB();
  const rel = `read_parquet(${sqlString(path)})`;
  let total: number;
  try {
    const cols = (await db.connection.runAndReadAll(`DESCRIBE SELECT * FROM ${rel}`)).getRowsJS() as unknown[][];
    if (!cols.some((c) => c[0] === key))
      throw new ValidationError(
        `--entities ${path}: no column "${key}" (the pipeline's join key); columns: ${cols.map((c) => String(c[0])).join(", ")}`,
      );
    total = Number((await db.connection.runAndReadAll(`SELECT count(*) FROM ${rel}`)).getRows()[0][0]);
  } catch (e) {
    db.close();
    if (e instanceof ValidationError) throw e;
    throw new ValidationError(`--entities ${path}: not a readable parquet file (${String(e)})`);
  }
  async function* blocks(): AsyncGenerator<unknown[]> {
    try {
      const result = await db.connection.stream(`SELECT ${ident(key)} FROM ${rel} WHERE ${ident(key)} IS NOT NULL`);
      let block: unknown[] = [];
      for (;;) {
        const chunk = await result.fetchChunk();
        if (!chunk || chunk.rowCount === 0) break;
        for (const v of chunk.getColumnValues(0)) {
          block.push(toJsValue(v));
          if (block.length === blockSize) {
            yield block;
            block = [];
          }
        }
      }
      if (block.length) yield block;
    } finally {
      db.close();
    }
  }
  return { total, blocks: blocks() };
}
