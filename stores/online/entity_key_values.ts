// Entity keys back to join-key values: a search finds keys in an index and answers their join keys.

import type { FeatureViewSpec } from "../../registry/types.js";

/**
 * The join-key values of a key written by `EntityKeyCodec` without names, in `view.entityColumns`
 * order (int64 beyond 2^53 as a bigint, bytes as a Buffer).
 */
export function entityKeyValues(view: FeatureViewSpec, key: string): unknown[] {
  const cols = view.entityColumns;
  const out = new Array<unknown>(cols.length);
  let p = 0;
  for (let i = 0; i < cols.length; i++) {
    if (i > 0) p++; // the "," between parts
    const dtype = cols[i].dtype;
    if (dtype === "string") {
      let q = p + 1;
      while (key.charCodeAt(q) !== 34) q += key.charCodeAt(q) === 92 ? 2 : 1;
      out[i] = JSON.parse(key.slice(p, q + 1)) as string;
      p = q + 1;
      continue;
    }
    let q = key.indexOf(",", p);
    if (q < 0) q = key.length;
    const part = key.slice(p, q);
    p = q;
    switch (dtype) {
      case "int32":
      case "int64":
      case "unix_timestamp": {
        const n = Number(part);
        out[i] = Number.isSafeInteger(n) ? n : BigInt(part);
        break;
      }
      case "bool":
        out[i] = part === "true";
        break;
      case "bytes":
        out[i] = Buffer.from(part.slice(2), "hex");
        break;
      default:
        out[i] = Number(part);
    }
  }
  return out;
}
