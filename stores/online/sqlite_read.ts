// The SQLite online store's reads: one statement per table and up to 512 entities answers ONE blob, every
// asked view of every entity, walked in place and decoded straight into the answer's columns.

import type { OnlineReadGroup, OnlineReadResult } from "../types.js";
import type { EntityKeyCodec } from "./entity_keys.js";
import { payloadFingerprint } from "./payload.js";
import { ReadResults } from "./read_results.js";
import { COLON, type SqliteSchema, type SqliteView, type Statement, quoteIdent } from "./sqlite_schema.js";

/** keys per IN (...) statement; statement sizes are rounded up to a power of two (padded with a repeat) */
const MAX_IN = 512;
/** a read of one entity and up to this many views seeks each (entity, view) row instead of an IN list */
const MAX_POINT_VIEWS = 8;

/** Views of a group that read the same table with the same keys. */
interface Pass {
  table: string;
  codec: EntityKeyCodec;
  views: ViewMatcher;
}

export function readGroups(schema: SqliteSchema, project: string, groups: OnlineReadGroup[]): OnlineReadResult[][] {
  const results = new ReadResults(groups, schema.payloads, (spec) => schema.view(project, spec).schema);
  groups.forEach((group, g) => {
    if (group.entityKeys.length === 0) return;
    // the group's views by table and key spelling: one pass when they share their join keys
    const passes: Pass[] = [];
    group.views.forEach(({ view: spec }, v) => {
      const view = schema.view(project, spec);
      let pass = passes.find((p) => p.table === view.table && p.codec.spelling === view.codec.spelling);
      if (pass === undefined) passes.push((pass = { table: view.table, codec: view.codec, views: new ViewMatcher() }));
      pass.views.add(view, results.slot(g, v));
    });
    for (const pass of passes) if (schema.tableExists(pass.table)) readPass(schema, pass, group.entityKeys, results);
  });
  return results.finish();
}

function readPass(schema: SqliteSchema, pass: Pass, entityKeys: unknown[][], results: ReadResults): void {
  const keys = pass.codec.keysOfRows(entityKeys);
  /** rows asking for each distinct key */
  const rowsOf = new Map<string, number[]>();
  for (let row = 0; row < keys.length; row++) {
    const rows = rowsOf.get(keys[row]);
    if (rows) rows.push(row);
    else rowsOf.set(keys[row], [row]);
  }
  const distinct = [...rowsOf.keys()];
  const wanted = pass.views.names;
  // a read of some of the table's views seeks just those rows of each entity
  const viewNames = wanted.length < schema.viewsInTable(pass.table) ? wanted : [];
  for (let start = 0; start < distinct.length; start += MAX_IN) {
    const chunk = distinct.slice(start, start + MAX_IN);
    let size = 1;
    while (size < chunk.length) size <<= 1;
    while (chunk.length < size) chunk.push(chunk[0]);
    const select = selectFrames(schema, pass.table, size, viewNames.length);
    const blob = select.get(...selectParams(chunk, viewNames)) as Buffer | null;
    if (blob === null) continue;
    if (size === 1) decodeFrames(schema, chunk[0], blob, 0, blob.length, rowsOf.get(chunk[0])!, pass.views, results);
    else decodeEntities(schema, blob, rowsOf, pass.views, results);
  }
}

/** Whether selectFrames reads this shape by point lookups (one entity, a few of its views). */
function isPointRead(size: number, views: number): boolean {
  return size === 1 && views > 0 && views <= MAX_POINT_VIEWS;
}

/** Parameters of a selectFrames statement: for point lookups (key, view) per view, else the keys then the views. */
function selectParams(keys: string[], views: string[]): string[] {
  if (!isPointRead(keys.length, views.length)) return [...keys, ...views];
  const out: string[] = [];
  for (const v of views) out.push(keys[0], v);
  return out;
}

/**
 * The frames (`<view>:<payload length>:<payload>`) of the asked views (all of the table's when `views` is
 * 0) of `size` entities, as one blob: `<key length>:<key><frames length>:<frames>` per entity, built by two
 * nested group_concats (byte-exact on blobs in a UTF-8 database). One blob per read, not one value per
 * entity or per (entity, view). A one-entity read answers that entity's frames alone (the caller knows the
 * key); with a few views, as point lookups of the primary key (an IN list makes SQLite build an ephemeral
 * index). Parameters: selectParams.
 */
function selectFrames(schema: SqliteSchema, table: string, size: number, views: number): Statement {
  const t = quoteIdent(table);
  const ofViews = views === 0 ? "" : views === 1 ? " AND view = ?" : ` AND view IN (${"?,".repeat(views - 1)}?)`;
  let sql: string;
  if (isPointRead(size, views)) {
    const points = Array.from({ length: views }, () => `SELECT frame FROM ${t} WHERE entity_key = ? AND view = ?`);
    sql = `SELECT CAST(group_concat(frame, '') AS BLOB) FROM (${points.join(" UNION ALL ")})`;
  } else if (size === 1) {
    sql = `SELECT CAST(group_concat(frame, '') AS BLOB) FROM ${t} WHERE entity_key = ?${ofViews}`;
  } else {
    sql =
      `SELECT CAST(group_concat(octet_length(entity_key) || ':' || entity_key || octet_length(f) || ':' || f, '') AS BLOB) ` +
      `FROM (SELECT entity_key, group_concat(frame, '') AS f FROM ${t} WHERE entity_key IN (${"?,".repeat(size - 1)}?)${ofViews} GROUP BY entity_key)`;
  }
  return schema.stmt(sql).pluck(true);
}

/** Walks selectFrames' blob of several entities: each entity's frames go to the rows that asked for it. */
function decodeEntities(
  schema: SqliteSchema,
  b: Buffer,
  rowsOf: Map<string, number[]>,
  views: ViewMatcher,
  results: ReadResults,
): void {
  const end = b.length;
  let p = 0;
  while (p < end) {
    let keyLen = 0;
    for (; p < end && b[p] !== COLON; p++) keyLen = keyLen * 10 + (b[p] - 48);
    const keyAt = p + 1;
    const key = b.toString("utf8", keyAt, keyAt + keyLen);
    let framesLen = 0;
    for (p = keyAt + keyLen; p < end && b[p] !== COLON; p++) framesLen = framesLen * 10 + (b[p] - 48);
    const framesAt = p + 1;
    p = framesAt + framesLen;
    if (p > end) throw new Error(`online store ${schema.path}: corrupt read of entity ${key}`);
    const rows = rowsOf.get(key);
    if (rows !== undefined) decodeFrames(schema, key, b, framesAt, p, rows, views, results);
  }
}

/** Unpacks one entity's frames, b[start, end), into the rows that asked for it. */
function decodeFrames(
  schema: SqliteSchema,
  key: string,
  b: Buffer,
  start: number,
  end: number,
  rows: number[],
  views: ViewMatcher,
  results: ReadResults,
): void {
  let p = start;
  while (p < end) {
    // the view name, hashed as it is scanned (as nameHash does: no string per frame), then the payload length
    let h = 0;
    let q = p;
    for (; q < end && b[q] !== COLON; q++) h = (Math.imul(h, 31) + b[q]) | 0;
    let len = 0;
    let r = q + 1;
    for (; r < end && b[r] !== COLON; r++) len = len * 10 + (b[r] - 48);
    const at = r + 1;
    if (r >= end || at + len > end) throw new Error(`online store ${schema.path}: corrupt row for entity ${key}`);
    const slots = views.match(h, b, p, q);
    p = at + len;
    if (slots === undefined) continue;
    for (const row of rows) {
      for (const s of slots) {
        if (results.decode(s, row, b, at)) continue;
        // written with a schema this process has not seen: load it, then decode
        schema.loadSchema(payloadFingerprint(b, at));
        results.decode(s, row, b, at);
      }
    }
  }
}

/** The views of one pass, found by the hash of their name's bytes (checked byte for byte). */
class ViewMatcher {
  private readonly byHash = new Map<number, Array<{ view: SqliteView; slots: number[] }>>();
  /** the view names added */
  readonly names: string[] = [];

  add(view: SqliteView, slot: number): void {
    const list = this.byHash.get(view.hash);
    const entry = list?.find((e) => e.view.name === view.name);
    if (entry !== undefined) {
      entry.slots.push(slot);
      return;
    }
    this.names.push(view.name);
    // (made with its element: an empty array grows to 17 slots on its first push)
    if (list === undefined) this.byHash.set(view.hash, [{ view, slots: [slot] }]);
    else list.push({ view, slots: [slot] });
  }

  /** The slots of the view named by b[start, end) with name hash `h`. */
  match(h: number, b: Buffer, start: number, end: number): number[] | undefined {
    const list = this.byHash.get(h);
    if (list === undefined) return undefined;
    for (const e of list) {
      const name = e.view.nameBytes;
      if (name.length !== end - start) continue;
      let i = 0;
      while (i < name.length && name[i] === b[start + i]) i++;
      if (i === name.length) return e.slots;
    }
    return undefined;
  }
}
