// Materialization: the latest row per entity of each view, from the offline store to the online store.
// Each batch is written atomically and no write replaces a newer value, so an interrupted run leaves
// the online store consistent and running it again is safe. The interval is recorded only at the end.
// Views of the same entities are written together, a key range of all of them per write, when the online
// store can (OnlineStore.writeViews): SQLite keeps an entity's views side by side, and view by view each
// view's batches would rewrite pages all over its table.

import type { FeatureViewSpec, MaterializationInterval } from "../registry/types.js";
import { takeTurn } from "../common/turns.js";
import type { ProgressSink } from "../common/progress.js";
import type { ColumnBatch, OfflineStore, OnlineStore, OnlineWriteBatch } from "./types.js";

export interface MaterializeContext {
  project: string;
  offline: OfflineStore;
  online: OnlineStore;
  progress: ProgressSink;
  batchSize?: number;
  /** at most this many rows merged at once (default MERGE_ROWS) */
  mergeRows?: number;
  recordInterval: (interval: MaterializationInterval) => void;
}

export interface MaterializeReport {
  views: Array<{ view: string; start: number; end: number; rows: number; written: number; seconds: number }>;
}

export interface ViewJob {
  view: FeatureViewSpec;
  startMs: number;
  endMs: number;
}

/** Column batch from pullLatest -> online write batch; columns are shared, not copied. */
export function toWriteBatch(view: FeatureViewSpec, chunk: ColumnBatch): OnlineWriteBatch {
  const keys: Record<string, ArrayLike<unknown>> = {};
  for (const c of view.entityColumns) keys[c.name] = chunk.columns[c.name];
  const features: Record<string, ArrayLike<unknown>> = {};
  for (const f of view.features) features[f.name] = chunk.columns[f.name];
  return {
    length: chunk.length,
    keys,
    features,
    eventTs: chunk.columns.__event_ts as ArrayLike<number>,
    createdTs: chunk.columns.__created_ts as ArrayLike<number>,
  };
}

/** Rows per write when the materializer merges views (the offline store's default batch). */
const ROWS_PER_WRITE = 65_536;
/** At most this many rows merged at once: DuckDB holds each merged view's sorted rows until the merge is done. */
const MERGE_ROWS = 8_000_000;
/** DuckDB memory a merged row takes while its part is written, with headroom (measured: bench/README.md). */
const MERGE_BYTES_PER_ROW = 250;

/**
 * How many rows to merge at once: with the offline store's memory limited to `memoryBytes`, what fits in
 * it; without a limit (DuckDB takes up to 80% of RAM) MERGE_ROWS.
 */
export function defaultMergeRows(memoryBytes?: number): number {
  return memoryBytes === undefined ? MERGE_ROWS : Math.max(65_536, Math.floor(memoryBytes / MERGE_BYTES_PER_ROW));
}

export async function materializeViews(jobs: ViewJob[], ctx: MaterializeContext): Promise<MaterializeReport> {
  const byJob = new Map<ViewJob, MaterializeReport["views"][number]>();
  const writeViews = ctx.online.writeViews?.bind(ctx.online);
  for (const group of groupByEntityColumns(jobs)) {
    if (writeViews === undefined || group.length === 1) {
      for (const job of group) byJob.set(job, await materializeOne(job, ctx));
      continue;
    }
    // every view's winners are picked up front, together (DuckDB runs them in its own threads); the views
    // are then merged in parts of at most MERGE_ROWS rows, each part's sorted rows held by DuckDB at once
    const rowsPerWrite = ctx.batchSize ?? ROWS_PER_WRITE;
    const batchSize = Math.max(2048, Math.ceil(rowsPerWrite / group.length));
    const settled = await Promise.allSettled(
      group.map(({ view, startMs, endMs }) => ctx.offline.pullLatest(view, startMs, endMs, { batchSize })),
    );
    const pulls = settled.map((p) => (p.status === "fulfilled" ? p.value : undefined));
    let next = 0;
    try {
      const failed = settled.find((p): p is PromiseRejectedResult => p.status === "rejected");
      if (failed !== undefined) throw failed.reason;
      while (next < group.length) {
        let end = next + 1;
        let rows = pulls[next]!.total;
        while (end < group.length && rows + pulls[end]!.total <= (ctx.mergeRows ?? MERGE_ROWS))
          rows += pulls[end++]!.total;
        const part = group.slice(next, end);
        const streams = part.map((job, i) => openStream(job.view, pulls[next + i]!.batches));
        next = end;
        const done = await materializeMerged(part, streams, rows, rowsPerWrite, ctx, writeViews);
        part.forEach((job, i) => byJob.set(job, done[i]));
      }
    } catch (e) {
      // the pulls no part has started yet hold a DuckDB connection each: start them and close them
      await closeStreams(
        group
          .slice(next)
          .flatMap((job, i) => (pulls[next + i] ? [openStream(job.view, pulls[next + i]!.batches)] : [])),
      );
      throw e;
    }
  }
  return { views: jobs.map((job) => byJob.get(job)!) };
}

/** Jobs whose views have the same entity columns, in order of first appearance (one group per job if keys differ). */
function groupByEntityColumns(jobs: ViewJob[]): ViewJob[][] {
  const groups = new Map<string, ViewJob[]>();
  for (const job of jobs) {
    const key = job.view.entityColumns.map((c) => `${c.name}\u0000${c.dtype}`).join("\u0001");
    const g = groups.get(key);
    if (g) g.push(job);
    else groups.set(key, [job]);
  }
  return [...groups.values()];
}

async function materializeOne(
  { view, startMs, endMs }: ViewJob,
  ctx: MaterializeContext,
): Promise<MaterializeReport["views"][number]> {
  const t0 = performance.now();
  const pulled = await ctx.offline.pullLatest(view, startMs, endMs, { batchSize: ctx.batchSize });
  ctx.progress.start(view.name, pulled.total);
  let rows = 0;
  let written = 0;
  try {
    for await (const chunk of pulled.batches) {
      written += await ctx.online.write(ctx.project, view, toWriteBatch(view, chunk));
      rows += chunk.length;
      ctx.progress.tick(rows);
      // a write into SQLite is synchronous and the next batch is usually fetched already: without a turn here
      // a materialize inside a server (POST /materialize) held its event loop from one write to the next
      await takeTurn();
    }
  } finally {
    ctx.progress.stop();
  }
  ctx.recordInterval({ view: view.name, start: startMs, end: endMs, at: Date.now() });
  return { view: view.name, start: startMs, end: endMs, rows, written, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Views of the same entities, written together a key range at a time (see alignByKey). Each write is
 * atomic and never replaces a newer row, as view by view; the intervals are recorded once all are written.
 */
async function materializeMerged(
  jobs: ViewJob[],
  streams: KeyedStream[],
  total: number,
  rowsPerWrite: number,
  ctx: MaterializeContext,
  writeViews: NonNullable<OnlineStore["writeViews"]>,
): Promise<MaterializeReport["views"]> {
  const t0 = performance.now();
  const label =
    jobs.length <= 3
      ? jobs.map((j) => j.view.name).join(", ")
      : `${jobs.length} views of ${jobs[0].view.entityColumns.map((c) => c.name).join(", ")}`;
  ctx.progress.start(label, total);
  const rows = jobs.map(() => 0);
  const written = jobs.map(() => 0);
  let done = 0;
  try {
    for await (const slices of alignByKey(streams, rowsPerWrite)) {
      const counts = await writeViews(
        ctx.project,
        slices.map((s) => ({ view: jobs[s.stream].view, batch: toWriteBatch(jobs[s.stream].view, s.batch) })),
      );
      slices.forEach((s, i) => {
        rows[s.stream] += s.batch.length;
        written[s.stream] += counts[i];
        done += s.batch.length;
      });
      ctx.progress.tick(done);
      // a write into SQLite is synchronous and the next batch is usually fetched already: without a turn here
      // a materialize inside a server (POST /materialize) held its event loop from one write to the next
      await takeTurn();
    }
  } finally {
    ctx.progress.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  const at = Date.now();
  return jobs.map(({ view, startMs, endMs }, i) => {
    ctx.recordInterval({ view: view.name, start: startMs, end: endMs, at });
    return { view: view.name, start: startMs, end: endMs, rows: rows[i], written: written[i], seconds };
  });
}

/** A view's batches while they are merged with others'; the next batch is always being fetched. */
export interface KeyedStream {
  view: Pick<FeatureViewSpec, "entityColumns">;
  it: AsyncIterator<ColumnBatch>;
  next: Promise<IteratorResult<ColumnBatch>>;
}

/** Starts reading `batches` (an offline store's pull begins its query on the first request). */
export function openStream(
  view: Pick<FeatureViewSpec, "entityColumns">,
  batches: AsyncIterable<ColumnBatch>,
): KeyedStream {
  const it = batches[Symbol.asyncIterator]();
  return { view, it, next: handled(it.next()) };
}

/** `p`, marked handled: a fetch ahead that fails after the merge has stopped must not be an unhandled rejection. */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

async function closeStreams(streams: KeyedStream[]): Promise<void> {
  for (const s of streams) {
    await s.next.catch(() => undefined);
    await s.it.return?.(undefined).catch(() => undefined);
  }
}

/**
 * Merges views' batches into rounds of slices that cover one key range in every view, about `rowsPerRound`
 * rows in all. Offline pulls come sorted by the text of their keys; a round takes from each stream the rows up
 * to a bound key, so a store writes each range of its table once for all views. The order only matters for
 * speed: every row is yielded exactly once whatever the order of the input (the stream that sets the bound
 * always gives its share, so each round makes progress).
 */
export async function* alignByKey(
  streams: KeyedStream[],
  rowsPerRound: number,
): AsyncGenerator<Array<{ stream: number; batch: ColumnBatch }>> {
  const state = streams.map((s, stream) => ({
    s,
    stream,
    batch: undefined as ColumnBatch | undefined,
    keys: [] as string[],
    at: 0,
    done: false,
  }));
  try {
    for (;;) {
      for (const c of state) {
        while (!c.done && (c.batch === undefined || c.at >= c.batch.length)) {
          const r = await c.s.next;
          if (r.done) {
            c.done = true;
            break;
          }
          c.batch = r.value;
          c.keys = orderKeys(c.s.view, r.value);
          c.at = 0;
          c.s.next = handled(c.s.it.next());
        }
      }
      const live = state.filter((c) => !c.done);
      if (live.length === 0) return;
      const share = Math.max(1, Math.floor(rowsPerRound / live.length));
      let setter = live[0];
      let bound: string | undefined;
      for (const c of live) {
        const k = c.keys[Math.min(c.at + share, c.batch!.length) - 1];
        if (bound === undefined || k < bound) [bound, setter] = [k, c];
      }
      const round: Array<{ stream: number; batch: ColumnBatch }> = [];
      for (const c of live) {
        const len = c.batch!.length;
        let end = c.at;
        if (c === setter) end = Math.min(c.at + share, len);
        else while (end < len && c.keys[end] <= bound!) end++;
        if (end > c.at) round.push({ stream: c.stream, batch: sliceBatch(c.batch!, c.at, end) });
        c.at = end;
      }
      yield round;
    }
  } finally {
    await closeStreams(streams);
  }
}

/** Each row's join keys as text, the order the offline store sorts pulls in (CAST AS VARCHAR, key by key). */
function orderKeys(view: Pick<FeatureViewSpec, "entityColumns">, batch: ColumnBatch): string[] {
  const cols = view.entityColumns.map((c) => batch.columns[c.name]);
  const out = new Array<string>(batch.length);
  for (let i = 0; i < batch.length; i++)
    out[i] = cols.length === 1 ? String(cols[0][i]) : cols.map((c) => String(c[i])).join("\u0000");
  return out;
}

type Sliceable = ArrayLike<unknown> & { subarray?: (start: number, end: number) => ArrayLike<unknown> };

/** Rows [start, end) of a batch; typed-array columns are views, not copies. */
export function sliceBatch(batch: ColumnBatch, start: number, end: number): ColumnBatch {
  if (start === 0 && end === batch.length) return batch;
  const columns: Record<string, ArrayLike<unknown>> = {};
  for (const [name, col] of Object.entries(batch.columns) as Array<[string, Sliceable]>) {
    columns[name] =
      ArrayBuffer.isView(col) && col.subarray ? col.subarray(start, end) : Array.prototype.slice.call(col, start, end);
  }
  return { length: end - start, columns };
}
