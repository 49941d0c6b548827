// The feature server's answer to /get-online-features: `JSON.stringify(response.toFeastJSON())` as UTF-8
// bytes, written straight from the read columns into one buffer (json_bytes.ts), with no result object per
// feature and no string parts. A view's statuses and event timestamps are written once, after its first
// feature, and copied after each further one. Int64 values beyond 2^53 (bigint) are exact JSON numbers.

import { EPOCH, type FeatureStatus, type OnlineResponse, type ResponseView } from "../stores/online_response.js";
import { type BufferPool, JsonBytes, asciiBytes } from "./json_bytes.js";

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

/**
 * The response as Feast's JSON, in bytes. The feature server passes its `pool` and gives the buffer back
 * (pool.give) once the socket has written it.
 */
export function feastJSONBytes(resp: OnlineResponse, pool?: BufferPool): Buffer {
  const n = resp.rowCount;
  const entities = resp.entityColumns;
  const features = resp.views.reduce((s, v) => s + v.features.length, 0);
  // a name takes about 20 bytes; numbers at most 24 characters and a comma, a row's status and time about
  // 36; JsonBytes grows past this estimate when strings or lists are longer
  const out = new JsonBytes(64 + (entities.length + features) * (100 + n * 61), pool);
  out.bytes(HEAD);
  out.bytes(featureNamesBytes(resp));
  out.bytes(RESULTS);
  let first = true;
  // a tail (statuses and event timestamps) is written once, after the first column it follows, and
  // copied from there after each further column that shares it; `tailOf` is whose it is (-1: entities')
  let tailOf = -2;
  let tailAt = -1;
  let tailEnd = -1;
  const column = (values: ArrayLike<unknown>, viewIndex: number) => {
    out.bytes(first ? FIRST_VALUES : NEXT_VALUES);
    first = false;
    for (let i = 0; i < n; i++) {
      if (i) out.byte(COMMA);
      out.value(values[i]);
    }
    if (tailOf === viewIndex) return out.copyOf(tailAt, tailEnd);
    tailOf = viewIndex;
    tailAt = out.length;
    writeTail(out, resp, viewIndex);
    tailEnd = out.length;
  };
  for (const c of entities) column(c.values, -1);
  resp.views.forEach((v, vi) => {
    for (const f of v.features) column(resp.column(vi, f.name), vi);
  });
  out.bytes(CLOSE);
  return out.finish();
}

/**
 * feature_names as JSON bytes by response shape (OnlineResponse.views is one array for every answer to the
 * same features while the registry is unchanged), then by entity column names.
 * defended by: `npm run bench -- server` in process (no HTTP), 1 row x 250 features: read+JSON p50
 */
const namesBytes = new WeakMap<readonly ResponseView[], Map<string, Uint8Array>>();

function featureNamesBytes(resp: OnlineResponse): Uint8Array {
  let byEntities = namesBytes.get(resp.views);
  if (byEntities === undefined) namesBytes.set(resp.views, (byEntities = new Map<string, Uint8Array>()));
  const cols = resp.entityColumns;
  const key = cols.length === 1 ? cols[0].name : cols.map((c) => c.name).join("\u0000");
  let bytes = byEntities.get(key);
  if (bytes === undefined) {
    bytes = Buffer.from(JSON.stringify(resp.featureNames), "utf8");
    // bounded: entity column names come from requests
    if (byEntities.size >= 16) byEntities.clear();
    byEntities.set(key, bytes);
  }
  return bytes;
}

/** feastJSONBytes as text. */
export function feastJSONText(resp: OnlineResponse): string {
  return feastJSONBytes(resp).toString("utf8");
}

/**
 * `],"statuses":[...],"event_timestamps":[...]}` of a view's rows, or of the entity columns (viewIndex
 * -1: always present, at the epoch); the `]` closes the values.
 */
function writeTail(out: JsonBytes, resp: OnlineResponse, viewIndex: number): void {
  const n = resp.rowCount;
  const ts = viewIndex < 0 ? undefined : resp.eventTsOf(viewIndex);
  out.bytes(STATUSES);
  for (let i = 0; i < n; i++) {
    if (i) out.byte(COMMA);
    out.bytes(ts === undefined ? QUOTED_PRESENT : STATUS_BYTES[resp.statusOf(viewIndex, i)]);
  }
  out.bytes(STAMPS);
  for (let i = 0; i < n; i++) {
    if (i) out.byte(COMMA);
    const t = ts === undefined ? NaN : ts[i];
    if (Number.isNaN(t)) out.bytes(QUOTED_EPOCH);
    else out.isoTime(t);
  }
  out.bytes(CLOSE);
}
