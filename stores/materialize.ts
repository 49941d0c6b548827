// Materialization: the latest row per entity of each view, from the offline store to the online store.
// Each batch is written atomically and no write replaces a newer value, so an interrupted run leaves
// the online store consistent and running it again is safe. The interval is recorded only at the end.

import type { FeatureViewSpec, MaterializationInterval } from "../registry/types.js";
import type { ColumnBatch, OfflineStore, OnlineStore, OnlineWriteBatch, ProgressSink } from "./types.js";

export interface MaterializeContext {
  project: string;
  offline: OfflineStore;
  online: OnlineStore;
  progress: ProgressSink;
  batchSize?: number;
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

export async function materializeViews(jobs: ViewJob[], ctx: MaterializeContext): Promise<MaterializeReport> {
  const report: MaterializeReport["views"] = [];
  for (const { view, startMs, endMs } of jobs) {
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
      }
    } finally {
      ctx.progress.stop();
    }
    ctx.recordInterval({ view: view.name, start: startMs, end: endMs, at: Date.now() });
    report.push({ view: view.name, start: startMs, end: endMs, rows, written, seconds: (performance.now() - t0) / 1000 });
  }
  return { views: report };
}
