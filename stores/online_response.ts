// The answer of an online read, column-oriented as Feast's: join keys first, then features.

import { isoUtc } from "../common/time.js";
import type { ResolvedView } from "./references.js";
import type { OnlineReadResult } from "./types.js";

export type FeatureStatus = "PRESENT" | "NOT_FOUND" | "OUTSIDE_MAX_AGE";

export interface FeastOnlineResponse {
  metadata: { feature_names: string[] };
  results: Array<{ values: unknown[]; statuses: FeatureStatus[]; event_timestamps: string[] }>;
}

/** The event timestamp of join-key columns and of values not found. */
export const EPOCH = "1970-01-01T00:00:00Z";
/** What the response needs of a resolved view. */
export type ResponseView = Pick<ResolvedView, "view" | "features">;

export class OnlineResponse {
  constructor(
    /** entity columns echoed from the request */
    readonly entityColumns: ReadonlyArray<{ name: string; values: unknown[] }>,
    /**
     * the views answered, each with its features (and their output names), in response order: from the
     * facade, one array for every answer to the same features while the registry is unchanged, so an
     * encoder may key what it derives from the names on it
     */
    readonly views: readonly ResponseView[],
    /** per view, column-wise */
    private readonly results: OnlineReadResult[],
    readonly rowCount: number,
    /** read time, ms: TTL is applied against it */
    readonly now: number,
  ) {}

  get featureNames(): string[] {
    return [
      ...this.entityColumns.map((c) => c.name),
      ...this.views.flatMap((v) => v.features.map((f) => f.outputName)),
    ];
  }

  /** Column-wise values: `{ user_id: [1, 2], age: [31, null] }` (the arrays are the response's own). */
  toObject(): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    for (const c of this.entityColumns) out[c.name] = c.values;
    this.views.forEach((v, vi) => {
      for (const f of v.features) out[f.outputName] = this.column(vi, f.name);
    });
    return out;
  }

  /** The values of a feature of `views[viewIndex]`, one per entity row (the response's own array). */
  column(viewIndex: number, feature: string): unknown[] {
    return this.results[viewIndex].values[feature] ?? new Array<unknown>(this.rowCount).fill(null);
  }

  /** Row-wise values, one object per entity row. */
  toRows(): Array<Record<string, unknown>> {
    const cols = this.toObject();
    const names = Object.keys(cols);
    return Array.from({ length: this.rowCount }, (_, i) => Object.fromEntries(names.map((n) => [n, cols[n][i]])));
  }

  /** The event time (ms) of each entity row's value of `views[viewIndex]`; NaN where none was found. */
  eventTsOf(viewIndex: number): Float64Array {
    return this.results[viewIndex].eventTs;
  }

  statusOf(viewIndex: number, row: number): FeatureStatus {
    const ts = this.results[viewIndex].eventTs[row];
    if (Number.isNaN(ts)) return "NOT_FOUND";
    const ttl = this.views[viewIndex].view.ttlSeconds;
    return ttl > 0 && ts < this.now - ttl * 1000 ? "OUTSIDE_MAX_AGE" : "PRESENT";
  }

  /** Status and event timestamp text of each row of a view; `stampText` caches formatted times. */
  private viewStatuses(
    viewIndex: number,
    stampText: Map<number, string>,
  ): { statuses: FeatureStatus[]; stamps: string[] } {
    const n = this.rowCount;
    const ts = this.results[viewIndex].eventTs;
    const statuses = new Array<FeatureStatus>(n);
    const stamps = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      statuses[i] = this.statusOf(viewIndex, i);
      const t = ts[i];
      if (Number.isNaN(t)) {
        stamps[i] = EPOCH;
        continue;
      }
      let text = stampText.get(t);
      if (text === undefined) stampText.set(t, (text = isoUtc(t)));
      stamps[i] = text;
    }
    return { statuses, stamps };
  }

  /** Feast's feature server response. */
  toFeastJSON(): FeastOnlineResponse {
    const n = this.rowCount;
    const results: FeastOnlineResponse["results"] = [];
    const epochs = new Array<string>(n).fill(EPOCH);
    const present = new Array<FeatureStatus>(n).fill("PRESENT");
    for (const c of this.entityColumns) results.push({ values: c.values, statuses: present, event_timestamps: epochs });
    const stampText = new Map<number, string>();
    this.views.forEach((v, vi) => {
      // statuses and timestamps are per (view, row): compute once, share across the view's features
      const { statuses, stamps } = this.viewStatuses(vi, stampText);
      for (const f of v.features) results.push({ values: this.column(vi, f.name), statuses, event_timestamps: stamps });
    });
    return { metadata: { feature_names: this.featureNames }, results };
  }
}
