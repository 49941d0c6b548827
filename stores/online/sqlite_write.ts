// The SQLite online store's writes: batches encoded and framed before the transaction, then upserted
// several rows per statement, in primary-key order, never over a newer row.

import type { FeatureViewSpec } from "../../registry/types.js";
import type { OnlineViewBatch, OnlineWriteBatch } from "../types.js";
import { type PayloadSchema, encodeRows } from "./payload.js";
import { COLON, type SqliteSchema, type Statement, quoteIdent } from "./sqlite_schema.js";
import type { SqliteVectors } from "./sqlite_vectors.js";

/** rows per multi-row upsert statement (5 parameters each) */
const ROWS_PER_INSERT = 32;
/** room left before each payload for `<length>:` (7 digits: payloads up to ~10 MB are framed in place) */
const LENGTH_ROOM = 8;

/** One batch of a write, encoded and framed: what upsertInKeyOrder needs of it. */
interface PreparedWrite {
  table: string;
  view: string;
  n: number;
  /** entity keys as stored */
  keys: string[];
  schema: PayloadSchema;
  eventTs: ArrayLike<number>;
  createdTs: ArrayLike<number>;
  /** row r's frame, `<view>:<length>:<payload>` */
  frame: (row: number) => Uint8Array;
}

/**
 * Several views' batches in one transaction; the rows written per batch. Materialize hands over the rows of
 * many views of a key range at once, and they go in in primary-key order (key, then view): the table then
 * grows at its end, where view after view each batch would split pages all over it.
 */
export function writeViews(
  schema: SqliteSchema,
  project: string,
  batches: OnlineViewBatch[],
  vectors?: SqliteVectors,
): number[] {
  // everything that can fail on bad input happens before the transaction
  const prepared = batches.map(({ view, batch }) =>
    batch.length === 0 ? undefined : prepareWrite(schema, project, view, batch),
  );
  const staged = batches.map(({ view, batch }) => (batch.length === 0 ? undefined : vectors?.stage(view, batch)));
  const touched: ReturnType<SqliteVectors["record"]> = [];
  const written = batches.map(() => 0);
  const byTable = new Map<string, number[]>();
  prepared.forEach((p, i) => {
    if (p === undefined) return;
    const list = byTable.get(p.table);
    if (list) list.push(i);
    else byTable.set(p.table, [i]);
  });
  if (byTable.size === 0) return written;
  try {
    schema.db.transaction(() => {
      for (const p of prepared) if (p !== undefined) schema.saveSchema(p.schema);
      for (const [table, idx] of byTable) upsertInKeyOrder(schema, table, idx, prepared as PreparedWrite[], written);
      staged.forEach((st, i) => {
        const p = prepared[i];
        if (st && p && vectors) touched.push(...vectors.record(project, st, p.keys, storedRows(schema, p)));
      });
    })();
  } catch (e) {
    // a schema row saved inside the rolled-back transaction is gone: save it again next time
    for (const p of prepared) if (p !== undefined) schema.schemaRolledBack(p.schema);
    throw e;
  }
  if (vectors && touched.length) vectors.committed(touched);
  return written;
}

/** Which rows of a batch are now the stored ones (a row older than the stored one was skipped). */
function storedRows(schema: SqliteSchema, p: PreparedWrite): Uint8Array {
  const stamps = schema.stmt(
    `SELECT event_ts, created_ts FROM ${quoteIdent(p.table)} WHERE entity_key = ? AND view = ?`,
  );
  const won = new Uint8Array(p.n);
  for (let r = 0; r < p.n; r++) {
    const s = stamps.get(p.keys[r], p.view) as { event_ts: number; created_ts: number } | undefined;
    won[r] = s !== undefined && s.event_ts === p.eventTs[r] && s.created_ts === (p.createdTs[r] || 0) ? 1 : 0;
  }
  return won;
}

/** A batch's keys as stored and its framed rows, ready to upsert. */
function prepareWrite(
  schema: SqliteSchema,
  project: string,
  spec: FeatureViewSpec,
  batch: OnlineWriteBatch,
): PreparedWrite {
  const n = batch.length;
  const view = schema.view(project, spec);
  const keys = view.codec.keysOfColumns(batch.keys, n);
  const { buf, starts, ends } = encodeRows(spec, view.schema, batch, view.frame.length + LENGTH_ROOM);
  const table = schema.ensureView(project, spec);
  const frameStarts = new Float64Array(n);
  /** frames of payloads too long to be framed in place (10 MB and more), by row */
  let moved: Map<number, Buffer> | undefined;
  for (let r = 0; r < n; r++) {
    const at = frameInPlace(buf, starts[r], ends[r] - starts[r], view.frame);
    if (at >= 0) frameStarts[r] = at;
    else
      (moved ??= new Map()).set(
        r,
        Buffer.concat([view.frame, Buffer.from(`${ends[r] - starts[r]}:`), buf.subarray(starts[r], ends[r])]),
      );
  }
  const ab = buf.buffer;
  const base = buf.byteOffset;
  return {
    table,
    view: spec.name,
    n,
    keys,
    schema: view.schema,
    eventTs: batch.eventTs,
    createdTs: batch.createdTs,
    // a plain Uint8Array view is cheaper to make than Buffer.subarray; SQLite copies the bytes
    frame: (r) => moved?.get(r) ?? new Uint8Array(ab, base + frameStarts[r], ends[r] - frameStarts[r]),
  };
}

/**
 * Writes `<frame><length>:` into the room before the payload at `at` (`len` bytes); returns where the
 * framed row starts, or -1 when its length has too many digits for the room.
 */
function frameInPlace(b: Buffer, at: number, len: number, frame: Buffer): number {
  if (len >= 10 ** (LENGTH_ROOM - 1)) return -1;
  let p = at;
  b[--p] = COLON;
  do {
    const q = Math.floor(len / 10);
    b[--p] = 48 + (len - q * 10);
    len = q;
  } while (len > 0);
  p -= frame.length;
  frame.copy(b, p);
  return p;
}

/**
 * Upserts the batches `idx` of one table, their rows merged by key, then view (each batch comes sorted by
 * key from materialize; in any other order every row is still written once, just less tidily). Several
 * rows per statement: the JS -> SQLite call, not the B-tree, is most of a row's cost.
 */
function upsertInKeyOrder(
  schema: SqliteSchema,
  table: string,
  idx: number[],
  prepared: PreparedWrite[],
  written: number[],
): void {
  const ps = idx.map((i) => prepared[i]);
  const order = ps.map((_, j) => j).sort((a, b) => (ps[a].view < ps[b].view ? -1 : ps[a].view > ps[b].view ? 1 : 0));
  const next = new Int32Array(ps.length);
  const many = upsert(schema, table, ROWS_PER_INSERT);
  const params = new Array<unknown>(ROWS_PER_INSERT * 5);
  const fromBatch = new Int32Array(ROWS_PER_INSERT);
  const fromRow = new Int32Array(ROWS_PER_INSERT);
  let fill = 0;
  const add = (j: number, r: number) => {
    const p = ps[j];
    const o = fill * 5;
    params[o] = p.keys[r];
    params[o + 1] = p.view;
    params[o + 2] = p.eventTs[r];
    params[o + 3] = p.createdTs[r] || 0;
    params[o + 4] = p.frame(r);
    fromBatch[fill] = j;
    fromRow[fill] = r;
    if (++fill === ROWS_PER_INSERT) {
      countWritten(schema, table, many.run(...params).changes, ps, idx, fromBatch, fromRow, fill, written);
      fill = 0;
    }
  };
  if (ps.length === 1) {
    for (let r = 0; r < ps[0].n; r++) add(0, r);
  } else {
    for (;;) {
      let min: string | undefined;
      for (const j of order) {
        const r = next[j];
        if (r < ps[j].n && (min === undefined || ps[j].keys[r] < min)) min = ps[j].keys[r];
      }
      if (min === undefined) break;
      for (const j of order) {
        const r = next[j];
        if (r < ps[j].n && ps[j].keys[r] === min) {
          add(j, r);
          next[j] = r + 1;
        }
      }
    }
  }
  const one = upsert(schema, table, 1);
  for (let i = 0; i < fill; i++) {
    const p = ps[fromBatch[i]];
    const r = fromRow[i];
    written[idx[fromBatch[i]]] += one.run(p.keys[r], p.view, p.eventTs[r], p.createdTs[r] || 0, p.frame(r)).changes;
  }
}

/**
 * Credits a multi-row upsert's `changes` to the batches its rows came from. A row is skipped only when the
 * stored one is newer, so when some were skipped in a statement of several batches, a row was written if
 * the stored timestamps are now its own.
 */
function countWritten(
  schema: SqliteSchema,
  table: string,
  changes: number,
  ps: PreparedWrite[],
  idx: number[],
  fromBatch: Int32Array,
  fromRow: Int32Array,
  rows: number,
  written: number[],
): void {
  let single = true;
  for (let i = 1; i < rows && single; i++) single = fromBatch[i] === fromBatch[0];
  if (single) {
    written[idx[fromBatch[0]]] += changes;
    return;
  }
  if (changes === rows) {
    for (let i = 0; i < rows; i++) written[idx[fromBatch[i]]]++;
    return;
  }
  const stamps = schema.stmt(`SELECT event_ts, created_ts FROM ${quoteIdent(table)} WHERE entity_key = ? AND view = ?`);
  for (let i = 0; i < rows; i++) {
    const p = ps[fromBatch[i]];
    const r = fromRow[i];
    const stored = stamps.get(p.keys[r], p.view) as { event_ts: number; created_ts: number } | undefined;
    if (stored !== undefined && stored.event_ts === p.eventTs[r] && stored.created_ts === (p.createdTs[r] || 0))
      written[idx[fromBatch[i]]]++;
  }
}

/** Upsert of `rows` rows at once; a row never replaces a newer one (ties: newer or equal created time). */
function upsert(schema: SqliteSchema, table: string, rows: number): Statement {
  const t = quoteIdent(table);
  return schema.stmt(
    `INSERT INTO ${t} (entity_key, view, event_ts, created_ts, frame) VALUES ${Array(rows).fill("(?, ?, ?, ?, ?)").join(", ")} ON CONFLICT(entity_key, view) DO UPDATE SET ` +
      `event_ts = excluded.event_ts, created_ts = excluded.created_ts, frame = excluded.frame ` +
      `WHERE excluded.event_ts > ${t}.event_ts OR (excluded.event_ts = ${t}.event_ts AND excluded.created_ts >= ${t}.created_ts)`,
  );
}
