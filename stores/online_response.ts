// The answer of an online read, column-oriented as Feast's: join keys first, then features.

import { isoUtc } from "../registry/time.js";
import type { ResolvedView } from "./references.js";
import type { OnlineReadResult } from "./types.js";

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
    /** per view, column-wise */
    private readonly results: OnlineReadResult[],
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

  /** Column-wise values: `{ user_id: [1, 2], age: [31, null] }` (the arrays are the response's own). */
  toObject(): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    for (const c of this.entityColumns) out[c.name] = c.values;
    this.views.forEach((v, vi) => {
      for (const f of v.features) out[f.outputName] = this.column(vi, f.name);
    });
    return out;
  }

  private column(viewIndex: number, feature: string): unknown[] {
    return this.results[viewIndex].values[feature] ?? new Array<unknown>(this.rowCount).fill(null);
  }

  /** Row-wise values, one object per entity row. */
  toRows(): Array<Record<string, unknown>> {
    const cols = this.toObject();
    const names = Object.keys(cols);
    return Array.from({ length: this.rowCount }, (_, i) => Object.fromEntries(names.map((n) => [n, cols[n][i]])));
  }

  statusOf(viewIndex: number, row: number): FeatureStatus {
    const ts = this.results[viewIndex].eventTs[row];
    if (Number.isNaN(ts)) return "NOT_FOUND";
    const ttl = this.views[viewIndex].view.ttlSeconds;
    return ttl > 0 && ts < this.now - ttl * 1000 ? "OUTSIDE_MAX_AGE" : "PRESENT";
  }

  /** Status and event timestamp text of each row of a view; `stampText` caches formatted times. */
  private viewStatuses(viewIndex: number, stampText: Map<number, string>): { statuses: FeatureStatus[]; stamps: string[] } {
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

  /**
   * `JSON.stringify(toFeastJSON())`, written straight from the read columns: no per-feature result objects,
   * and a view's statuses and event timestamps are rendered once and shared by its features. Int64
   * values beyond 2^53 (bigint) are written as exact JSON numbers.
   */
  toFeastJSONText(): string {
    return this.feastJSONParts().join("");
  }

  /** toFeastJSONText as UTF-8 bytes. */
  toFeastJSONBuffer(): Buffer {
    const body = this.toFeastJSONBody();
    return typeof body === "string" ? Buffer.from(body) : body;
  }

  /**
   * What the feature server sends. An answer under 128 K characters is toFeastJSONText: node writes a
   * string body and the headers in one write, where a buffer costs a copy more and a second iovec (1 x 250
   * features, 24 KB: 42 against 60 us). A larger one is UTF-8 bytes, the parts written into one buffer in
   * 16 KB chunks: joining them into one string and encoding that again cost 2-4 ms of the 100 x 250
   * answer (1 MB) on the bench machine.
   */
  toFeastJSONBody(): string | Buffer {
    const parts = this.feastJSONParts();
    let length = 0;
    for (const p of parts) length += p.length;
    if (length < 131_072) return parts.join("");
    // parts coalesced into ~16 KB strings: one byteLength and one write per chunk, not per (small) part
    const chunks: string[] = [];
    let chunk = "";
    for (const p of parts) {
      chunk += p;
      if (chunk.length >= 16_384) {
        chunks.push(chunk);
        chunk = "";
      }
    }
    chunks.push(chunk);
    let size = 0;
    for (const c of chunks) size += Buffer.byteLength(c);
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    for (const c of chunks) o += out.write(c, o);
    return out;
  }

  /** The pieces of the Feast response JSON, in order. */
  private feastJSONParts(): string[] {
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
      const { statuses, stamps } = this.viewStatuses(vi, stampText);
      // arrays of strings through the native serializer, once per view
      const tail = `,"statuses":${JSON.stringify(statuses)},"event_timestamps":${JSON.stringify(stamps)}}`;
      for (const f of v.features) {
        const values = this.column(vi, f.name);
        // JSON.stringify of a whole array runs in V8's native serializer: ~2x faster than concatenating
        // each value's text here; it throws on bigint (int64 beyond 2^53), which gets the slow path
        let big = false;
        for (let i = 0; i < n; i++) {
          const x = values[i];
          if (typeof x === "bigint" || (Array.isArray(x) && x.some((e) => typeof e === "bigint"))) {
            big = true;
            break;
          }
        }
        // (a call of the serializer costs more than writing one or two values here)
        parts.push(`${first ? "" : ","}{"values":${big || n <= 2 ? jsonList(values, n) : JSON.stringify(values)}${tail}`);
        first = false;
      }
    });
    parts.push("]}");
    return parts;
  }
}

function jsonValue(x: unknown): string {
  if (x === null || x === undefined) return "null";
  // JSON.stringify, not String: String(x) puts each new text in V8's number-string cache, which keeps it
  // alive through the next scavenge; 250 numbers per answer made every scavenge copy thousands of them
  // (1.5-2 ms pauses, the p99 of 1-row reads). Non-finite numbers come out as null, as JSON has it.
  if (typeof x === "number") return JSON.stringify(x);
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
