// Appending pushed events to an online view's list features (e.g. a live session's items so far): each key's
// stored lists are read, the new events appended in event-time order, the latest `maxLength` kept, and the
// result written as one row per key. The store's rule still holds: the written row carries the newest event
// time seen, so it never replaces a newer row. Appends are serialized within a process by the caller; two
// processes appending to the same key at once may lose one event (route a key's events to one writer).
import { ValidationError } from "../common/errors.js";
import type { FeatureViewSpec } from "../registry/types.js";
import type { OnlineStore, OnlineWriteBatch } from "./types.js";

/** The default number of latest values an appended list keeps. */
export const DEFAULT_APPEND_MAX_LENGTH = 50;

/** Wraps each event's scalar values of the view's list features as one-element lists, so rows check as usual. */
export function eventsAsLists(
  view: FeatureViewSpec,
  columns: Record<string, unknown[]>,
  what: string,
): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = { ...columns };
  for (const f of view.features) {
    if (!f.dtype.endsWith("[]"))
      throw new ValidationError(
        `${what}: append needs every feature of view "${view.name}" to be a list, but "${f.name}" is ${f.dtype}`,
      );
    const col = columns[f.name];
    if (col) out[f.name] = col.map((v) => (Array.isArray(v) || v === null || v === undefined ? v : [v]));
  }
  return out;
}

/** The batch to write: per key, the stored lists with the batch's events appended, cut to the latest maxLength. */
export async function appendToStored(
  online: OnlineStore,
  project: string,
  view: FeatureViewSpec,
  batch: OnlineWriteBatch,
  maxLength: number,
  now = Date.now(),
): Promise<OnlineWriteBatch> {
  if (!Number.isInteger(maxLength) || maxLength < 1)
    throw new ValidationError(`append: maxLength must be a positive integer, got ${maxLength}`);
  const keyNames = view.entityColumns.map((c) => c.name);
  const featureNames = view.features.map((f) => f.name);
  // rows of each key in event-time order (stable for equal times: the order pushed)
  const order = Array.from({ length: batch.length }, (_, i) => i).sort(
    (a, b) => Number(batch.eventTs[a]) - Number(batch.eventTs[b]) || a - b,
  );
  const byKey = new Map<string, number[]>();
  for (const i of order) {
    const k = JSON.stringify(keyNames.map((n) => keyText(batch.keys[n][i])));
    const rows = byKey.get(k);
    if (rows) rows.push(i);
    else byKey.set(k, [i]);
  }
  const firsts = [...byKey.values()].map((rows) => rows[0]);
  const [[stored]] = await online.read(project, [
    {
      entityKeys: firsts.map((i) => keyNames.map((n) => batch.keys[n][i])),
      views: [{ view, features: featureNames }],
    },
  ]);
  const out: OnlineWriteBatch = {
    length: firsts.length,
    keys: Object.fromEntries(keyNames.map((n) => [n, firsts.map((i) => batch.keys[n][i])])),
    features: Object.fromEntries(featureNames.map((n) => [n, new Array<unknown>(firsts.length)])),
    eventTs: new Float64Array(firsts.length),
    createdTs: new Float64Array(firsts.length).fill(now),
  };
  let r = 0;
  for (const rows of byKey.values()) {
    const storedTs = stored.eventTs[r];
    let ts = Number.isNaN(storedTs) ? -Infinity : storedTs;
    for (const n of featureNames) {
      const list = Number.isNaN(storedTs) ? [] : [...((stored.values[n]?.[r] as unknown[] | null) ?? [])];
      for (const i of rows) {
        const v = batch.features[n]?.[i];
        if (Array.isArray(v)) list.push(...(v as unknown[]));
        else if (v !== null && v !== undefined) list.push(v);
      }
      (out.features[n] as unknown[])[r] = list.length > maxLength ? list.slice(list.length - maxLength) : list;
    }
    for (const i of rows) ts = Math.max(ts, Number(batch.eventTs[i]));
    (out.eventTs as Float64Array)[r] = ts;
    r++;
  }
  return out;
}

function keyText(v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}
