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
const featureNamesText = new WeakMap<ResolvedView[], string>();

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

  /** featureNames as JSON; the features' part is cached per resolved-views array (memoised by the facade) */
  private featureNamesJSON(): string {
    let features = featureNamesText.get(this.views);
    if (features === undefined) {
      features = this.views.flatMap((v) => v.features.map((f) => JSON.stringify(f.outputName))).join(",");
      featureNamesText.set(this.views, features);
    }
    const entities = this.entityColumns.map((c) => JSON.stringify(c.name)).join(",");
    return `[${entities}${entities && features ? "," : ""}${features}]`;
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
  /**
   * `JSON.stringify(toFeastJSON())`, written straight from the records: no per-feature result objects,
   * and a view's statuses and event timestamps are rendered once and shared by its features. Int64
   * values beyond 2^53 (bigint) are written as exact JSON numbers.
   */
  toFeastJSONText(): string {
    const n = this.rowCount;
    const repeat = (item: string) => (n === 0 ? "[]" : `[${`${item},`.repeat(n - 1)}${item}]`);
    const entityTail = `,"statuses":${repeat('"PRESENT"')},"event_timestamps":${repeat(`"${EPOCH}"`)}}`;
    const parts: string[] = [`{"metadata":{"feature_names":${this.featureNamesJSON()}},"results":[`];
    let first = true;
    for (const c of this.entityColumns) {
      parts.push(`${first ? "" : ","}{"values":${jsonList(c.values, n)}${entityTail}`);
      first = false;
    }
    const stampText = new Map<number, string>();
    this.views.forEach((v, vi) => {
      const recs = this.records[vi];
      let statuses = "[";
      let stamps = "[";
      for (let i = 0; i < n; i++) {
        const r = recs[i];
        const sep = i ? "," : "";
        statuses += `${sep}"${this.statusOf(vi, i)}"`;
        if (!r) {
          stamps += `${sep}"${EPOCH}"`;
          continue;
        }
        let t = stampText.get(r.eventTs);
        if (t === undefined) {
          t = `"${isoUtc(r.eventTs)}"`;
          stampText.set(r.eventTs, t);
        }
        stamps += sep + t;
      }
      const tail = `,"statuses":${statuses}],"event_timestamps":${stamps}]}`;
      const values = new Array<unknown>(n);
      for (const f of v.features) {
        // JSON.stringify of a whole array runs in V8's native serializer: ~2x faster than concatenating
        // each value's text here, and far fewer intermediate strings (GC pauses)
        let big = false;
        for (let i = 0; i < n; i++) {
          const r = recs[i];
          const x = r ? r.values[f.name] : null;
          if (typeof x === "bigint" || (Array.isArray(x) && x.some((e) => typeof e === "bigint"))) big = true;
          values[i] = x === undefined ? null : x;
        }
        parts.push(`${first ? "" : ","}{"values":${big ? jsonList(values, n) : JSON.stringify(values)}${tail}`);
        first = false;
      }
    });
    parts.push("]}");
    return parts.join("");
  }
}

function jsonValue(x: unknown): string {
  if (x === null || x === undefined) return "null";
  if (typeof x === "number") return Number.isFinite(x) ? String(x) : "null";
  if (typeof x === "bigint") return x.toString();
  if (typeof x === "boolean") return x ? "true" : "false";
  if (Array.isArray(x) && x.some((e) => typeof e === "bigint")) return `[${x.map(jsonValue).join(",")}]`;
  return JSON.stringify(x) ?? "null";
}

function jsonList(values: ArrayLike<unknown>, n: number): string {
  let out = "[";
  for (let i = 0; i < n; i++) out += (i ? "," : "") + jsonValue(values[i]);
  return out + "]";
}
