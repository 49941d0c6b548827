// The answer of an online read, column-oriented as Feast's: join keys first, then features.

import { isoUtc } from "../common/time.js";
import { type BufferPool, JsonBytes, asciiBytes } from "../server/json_bytes.js";
import type { ResolvedView } from "./references.js";
import type { OnlineReadResult } from "./types.js";

export type FeatureStatus = "PRESENT" | "NOT_FOUND" | "OUTSIDE_MAX_AGE";

export interface FeastOnlineResponse {
  metadata: { feature_names: string[] };
  results: Array<{ values: unknown[]; statuses: FeatureStatus[]; event_timestamps: string[] }>;
}

const EPOCH = "1970-01-01T00:00:00Z";
/** What the response needs of a resolved view. */
type ResponseView = Pick<ResolvedView, "view" | "features">;

const featureNamesBytes = new WeakMap<ResponseView[], Map<string, Uint8Array>>();

export class OnlineResponse {
  constructor(
    /** entity columns echoed from the request */
    private readonly entityColumns: Array<{ name: string; values: unknown[] }>,
    private readonly views: ResponseView[],
    /** per view, column-wise */
    private readonly results: OnlineReadResult[],
    private readonly rowCount: number,
    /** read time, ms: TTL is applied against it */
    private readonly now: number,
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

  /**
   * `JSON.stringify(toFeastJSON())` as UTF-8 bytes, written straight from the read columns into one buffer
   * (server/json_bytes.ts): no per-feature result objects, no string parts, and a view's statuses and
   * event timestamps are rendered once and copied into each of its features. Int64 values beyond 2^53
   * (bigint) are written as exact JSON numbers. This is what the feature server sends; it passes its
   * `pool` and gives the buffer back (pool.give) once the socket has written it.
   */
  toFeastJSONBuffer(pool?: BufferPool): Buffer {
    const n = this.rowCount;
    const features = this.views.reduce((s, v) => s + v.features.length, 0);
    const names = this.namesBytes();
    // numbers take at most 24 characters and a comma, a row's status and time about 36; JsonBytes grows
    // past this estimate when strings or lists are longer
    const out = new JsonBytes(names.length + 64 + (this.entityColumns.length + features) * (80 + n * 61), pool);
    out.bytes(HEAD);
    out.bytes(names);
    out.bytes(RESULTS);
    let first = true;
    // a tail (statuses and event timestamps) is written once, after the first column it follows, and
    // copied from there after each further column that shares it; `tailOf` is whose it is (-1: entities')
    let tailOf = -2;
    let tailAt = -1;
    let tailEnd = -1;
    const stampBytes = new Map<number, Uint8Array>();
    const column = (values: ArrayLike<unknown>, viewIndex: number) => {
      out.bytes(first ? FIRST_VALUES : NEXT_VALUES);
      first = false;
      writeValues(out, values, n);
      if (tailOf === viewIndex) return out.copyOf(tailAt, tailEnd);
      tailOf = viewIndex;
      tailAt = out.length;
      this.writeTail(out, viewIndex, stampBytes);
      tailEnd = out.length;
    };
    for (const c of this.entityColumns) column(c.values, -1);
    this.views.forEach((v, vi) => {
      for (const f of v.features) column(this.column(vi, f.name), vi);
    });
    out.bytes(CLOSE);
    return out.finish();
  }

  /**
   * `],"statuses":[...],"event_timestamps":[...]}` of a view's rows, or of the entity columns (viewIndex
   * -1: always present, at the epoch); the `]` closes the values.
   */
  private writeTail(out: JsonBytes, viewIndex: number, stampBytes: Map<number, Uint8Array>): void {
    const n = this.rowCount;
    const ts = viewIndex < 0 ? undefined : this.results[viewIndex].eventTs;
    out.bytes(STATUSES);
    for (let i = 0; i < n; i++) {
      if (i) out.byte(COMMA);
      out.bytes(ts === undefined ? QUOTED_PRESENT : STATUS_BYTES[this.statusOf(viewIndex, i)]);
    }
    out.bytes(STAMPS);
    for (let i = 0; i < n; i++) {
      if (i) out.byte(COMMA);
      const t = ts === undefined ? NaN : ts[i];
      if (Number.isNaN(t)) {
        out.bytes(QUOTED_EPOCH);
        continue;
      }
      // a time's quoted text, as bytes: made once per answer, copied for every row that has it
      let bytes = stampBytes.get(t);
      if (bytes === undefined) stampBytes.set(t, (bytes = asciiBytes(JSON.stringify(isoUtc(t)))));
      out.bytes(bytes);
    }
    out.bytes(CLOSE);
  }

  /** toFeastJSONBuffer as text. */
  toFeastJSONText(): string {
    return this.toFeastJSONBuffer().toString("utf8");
  }

  /** feature_names as JSON bytes, cached per resolved-views array (memoised by the facade) and entity columns. */
  private namesBytes(): Uint8Array {
    let byEntities = featureNamesBytes.get(this.views);
    if (byEntities === undefined) featureNamesBytes.set(this.views, (byEntities = new Map<string, Uint8Array>()));
    const key =
      this.entityColumns.length === 1
        ? this.entityColumns[0].name
        : this.entityColumns.map((c) => c.name).join("\u0000");
    let bytes = byEntities.get(key);
    if (bytes === undefined) {
      bytes = Buffer.from(JSON.stringify(this.featureNames), "utf8");
      // bounded: entity column spellings come from requests
      if (byEntities.size >= 16) byEntities.clear();
      byEntities.set(key, bytes);
    }
    return bytes;
  }
}

const HEAD = asciiBytes('{"metadata":{"feature_names":');
const RESULTS = asciiBytes('},"results":[');
const FIRST_VALUES = asciiBytes('{"values":[');
const NEXT_VALUES = asciiBytes(',{"values":[');
const STATUSES = asciiBytes('],"statuses":[');
const STAMPS = asciiBytes('],"event_timestamps":[');
/** closes a column's object, and the results array with the whole answer */
const CLOSE = asciiBytes("]}");
const QUOTED_PRESENT = asciiBytes('"PRESENT"');
const QUOTED_EPOCH = asciiBytes(`"${EPOCH}"`);
const STATUS_BYTES: Record<FeatureStatus, Uint8Array> = {
  PRESENT: QUOTED_PRESENT,
  NOT_FOUND: asciiBytes('"NOT_FOUND"'),
  OUTSIDE_MAX_AGE: asciiBytes('"OUTSIDE_MAX_AGE"'),
};
const COMMA = 44;

/** A column's first n values, comma-separated (numbers digit by digit, see JsonBytes.number). */
function writeValues(out: JsonBytes, values: ArrayLike<unknown>, n: number): void {
  for (let i = 0; i < n; i++) {
    if (i) out.byte(COMMA);
    out.value(values[i]);
  }
}
