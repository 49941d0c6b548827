// The answer of an online read, column-oriented as Feast's: join keys first, then features.

import { isoUtc } from "../registry/time.js";
import type { ResolvedView } from "./references.js";
import type { OnlineRecord } from "./types.js";

export type FeatureStatus = "PRESENT" | "NOT_FOUND" | "OUTSIDE_MAX_AGE";

export interface FeastOnlineResponse {
  metadata: { feature_names: string[] };
  results: Array<{ values: unknown[]; statuses: FeatureStatus[]; event_timestamps: string[] }>;
}

const EPOCH = "1970-01-01T00:00:00Z";

export class OnlineResponse {
  constructor(
    /** entity columns echoed from the request */
    private readonly entityColumns: Array<{ name: string; values: unknown[] }>,
    private readonly views: ResolvedView[],
    /** per view, per entity row */
    private readonly records: Array<Array<OnlineRecord | null>>,
    private readonly rowCount: number,
    /** read time, ms: TTL is applied against it */
    private readonly now: number,
  ) {}

  get featureNames(): string[] {
    return [...this.entityColumns.map((c) => c.name), ...this.views.flatMap((v) => v.features.map((f) => f.outputName))];
  }

  /** Column-wise values: `{ user_id: [1, 2], age: [31, null] }`. */
  toObject(): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    for (const c of this.entityColumns) out[c.name] = c.values;
    this.views.forEach((v, vi) => {
      const recs = this.records[vi];
      for (const f of v.features) {
        const col = new Array(this.rowCount);
        for (let i = 0; i < this.rowCount; i++) {
          const r = recs[i];
          const x = r ? r.values[f.name] : undefined;
          col[i] = x === undefined ? null : x;
        }
        out[f.outputName] = col;
      }
    });
    return out;
  }

  /** Row-wise values, one object per entity row. */
  toRows(): Array<Record<string, unknown>> {
    const cols = this.toObject();
    const names = Object.keys(cols);
    return Array.from({ length: this.rowCount }, (_, i) => Object.fromEntries(names.map((n) => [n, cols[n][i]])));
  }

  statusOf(viewIndex: number, row: number): FeatureStatus {
    const r = this.records[viewIndex][row];
    if (!r) return "NOT_FOUND";
    const ttl = this.views[viewIndex].view.ttlSeconds;
    return ttl > 0 && r.eventTs < this.now - ttl * 1000 ? "OUTSIDE_MAX_AGE" : "PRESENT";
  }

  /** Feast's feature server response. */
  toFeastJSON(): FeastOnlineResponse {
    const n = this.rowCount;
    const results: FeastOnlineResponse["results"] = [];
    const epochs = new Array<string>(n).fill(EPOCH);
    const present = new Array<FeatureStatus>(n).fill("PRESENT");
    for (const c of this.entityColumns) results.push({ values: c.values, statuses: present, event_timestamps: epochs });
    this.views.forEach((v, vi) => {
      const recs = this.records[vi];
      // statuses and timestamps are per (view, row): compute once, share across the view's features
      const statuses = new Array<FeatureStatus>(n);
      const stamps = new Array<string>(n);
      for (let i = 0; i < n; i++) {
        const r = recs[i];
        statuses[i] = this.statusOf(vi, i);
        stamps[i] = r ? isoUtc(r.eventTs) : EPOCH;
      }
      for (const f of v.features) {
        const values = new Array(n);
        for (let i = 0; i < n; i++) {
          const r = recs[i];
          const x = r ? r.values[f.name] : undefined;
          values[i] = x === undefined ? null : x;
        }
        results.push({ values, statuses, event_timestamps: stamps });
      }
    });
    return { metadata: { feature_names: this.featureNames }, results };
  }
}
