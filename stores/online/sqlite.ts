// SQLite online store. One table per (project, entity-key columns), one row per (entity, view) holding the
// packed payload, PRIMARY KEY (entity_key, view) WITHOUT ROWID: every view of an entity sits in the same
// B-tree leaf, so a read of all views is one seek per entity, and an aggregate hands back one blob per
// entity instead of one per (entity, view). The payload is stored framed, `<view>:<length>:<payload>`, so
// that aggregate is a plain group_concat (framing in SQL at read time cost a third of the query). One table
// per view costs a seek per view (25 for Feast's benchmark shape, 5-10x slower); the price is paid by
// writes instead: a view's rows are spread over the table, so materialize writes the views of an entity
// together, a key range at a time (writeViews).
// WAL + synchronous=NORMAL: a committed batch survives a process crash; a power loss may lose the last
// batches but never leaves one half-written.

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { FeatureViewSpec, FieldSpec } from "../../registry/types.js";
import type { OnlineReadRequest, OnlineReadResult, OnlineStore, OnlineWriteBatch } from "../types.js";
import {
  EntityKeyCodec,
  ReadResults,
  SchemaBook,
  dataViewOf,
  decodeInto,
  encodeFramedRows,
  keysOfRequests,
  payloadFingerprint,
  releaseDecodeBuffer,
  type PayloadSchema,
} from "./codec.js";

type Statement = Database.Statement<unknown[], unknown>;

/** One batch of a write, encoded: what upsertInKeyOrder needs of it. */
interface PreparedWrite {
  table: string;
  view: string;
  n: number;
  /** entity keys as stored */
  keys: string[];
  schema: PayloadSchema;
  eventTs: ArrayLike<number>;
  createdTs: ArrayLike<number>;
  payload: (row: number) => Uint8Array;
}

const SCHEMAS_TABLE = "__fstore_payload_schemas";
/** (project, view) -> the table holding its rows; a teardown drops only its own project's tables */
const VIEWS_TABLE = "__fstore_views";
/** the layout before entity tables (one table per view); its tables are moved over on first use */
const LEGACY_TABLES = "__fstore_tables";
/** keys per IN (...) statement; statement sizes are rounded up to a power of two (padded with a repeat) */
const MAX_IN = 512;
const COLON = 58;
/** a read of one entity and up to this many views seeks each (entity, view) row instead of an IN list */
const MAX_POINT_VIEWS = 8;
/** rows per multi-row upsert statement (5 parameters each) */
const ROWS_PER_INSERT = 32;

/** The table of a view's entity-key columns: `<project>:<join key>,<join key>`. */
export function sqliteTableName(project: string, view: Pick<FeatureViewSpec, "entityColumns">): string {
  return `${project}:${view.entityColumns.map((c) => c.name).join(",")}`;
}

/** Whether selectIn reads this shape by point lookups (one entity, a few of its views). */
function isPointRead(size: number, views: number): boolean {
  return size === 1 && views > 0 && views <= MAX_POINT_VIEWS;
}

/** Parameters of a selectIn statement: for point lookups (key, view) per view, else the keys then the views. */
function selectParams(keys: string[], views: string[]): string[] {
  if (!isPointRead(keys.length, views.length)) return [...keys, ...views];
  const out: string[] = [];
  for (const v of views) out.push(keys[0], v);
  return out;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class SqliteOnlineStore implements OnlineStore {
  readonly type = "sqlite";
  private readonly db: Database.Database;
  private readonly schemas = new SchemaBook();
  private readonly keyCodecs = new WeakMap<FeatureViewSpec, EntityKeyCodec>();
  private readonly tableNames = new WeakMap<FeatureViewSpec, { project: string; table: string }>();
  private readonly stmts = new Map<string, Statement>();
  /** read statements per table and shape (keys, views), without building their SQL per read */
  private readonly selects = new Map<string, Map<number, Statement>>();
  /** entity tables known to exist */
  private readonly tables = new Set<string>();
  /** "<project>\0<view>" -> table, views registered in VIEWS_TABLE */
  private readonly registered = new Map<string, string>();
  private readonly savedSchemas = new Set<number>();
  /** "<project>\0<view>" -> per-view table of the old layout, still to move */
  private readonly legacy = new Map<string, string>();

  constructor(readonly path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    // reads are random point lookups: map the file (SQLite caps this at its compile-time limit) and keep
    // a larger page cache, instead of a read() syscall per page
    this.db.pragma("mmap_size = 17179869184");
    this.db.pragma("cache_size = -131072");
    this.db.exec(`CREATE TABLE IF NOT EXISTS ${SCHEMAS_TABLE} (fingerprint INTEGER PRIMARY KEY, fields TEXT NOT NULL)`);
    this.db.exec(
      `CREATE TABLE IF NOT EXISTS ${VIEWS_TABLE} (project TEXT NOT NULL, view TEXT NOT NULL, tbl TEXT NOT NULL, PRIMARY KEY (project, view)) WITHOUT ROWID`,
    );
    for (const r of this.db.prepare(`SELECT project, view, tbl FROM ${VIEWS_TABLE}`).all() as Array<{
      project: string;
      view: string;
      tbl: string;
    }>) {
      this.registered.set(`${r.project}\0${r.view}`, r.tbl);
    }
    if (this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(LEGACY_TABLES)) {
      for (const r of this.db.prepare(`SELECT name, project, view FROM ${LEGACY_TABLES}`).all() as Array<{
        name: string;
        project: string;
        view: string;
      }>) {
        this.legacy.set(`${r.project}\0${r.view}`, r.name);
      }
    }
  }

  private stmt(sql: string): Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /** sqliteTableName, cached per view spec (a read names the table of each of its requests). */
  private tableOf(project: string, view: FeatureViewSpec): string {
    const known = this.tableNames.get(view);
    if (known !== undefined && known.project === project) return known.table;
    const table = sqliteTableName(project, view);
    this.tableNames.set(view, { project, table });
    return table;
  }

  private keyCodec(view: FeatureViewSpec): EntityKeyCodec {
    let c = this.keyCodecs.get(view);
    if (!c) {
      c = new EntityKeyCodec(view, false);
      this.keyCodecs.set(view, c);
    }
    return c;
  }

  private tableExists(table: string): boolean {
    if (this.tables.has(table)) return true;
    const row = this.stmt("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
    if (row) this.tables.add(table);
    return row !== undefined;
  }

  /** Creates the view's entity table and registers the view (idempotent); moves an old-layout table over. */
  private ensureView(project: string, view: FeatureViewSpec): string {
    const id = `${project}\0${view.name}`;
    const table = sqliteTableName(project, view);
    if (this.registered.get(id) === table && !this.legacy.has(id)) return table;
    this.db.transaction(() => {
      if (!this.tableExists(table)) {
        this.db.exec(
          `CREATE TABLE IF NOT EXISTS ${quoteIdent(table)} (entity_key TEXT NOT NULL, view TEXT NOT NULL, event_ts INTEGER NOT NULL, created_ts INTEGER NOT NULL, frame BLOB NOT NULL, PRIMARY KEY (entity_key, view)) WITHOUT ROWID`,
        );
        this.tables.add(table);
      }
      const before = this.registered.get(id);
      // the view changed entity columns: its old rows are keyed differently and can never be read again
      if (before !== undefined && before !== table) this.deleteViewRows(before, view.name);
      this.stmt(`INSERT OR REPLACE INTO ${VIEWS_TABLE} (project, view, tbl) VALUES (?, ?, ?)`).run(
        project,
        view.name,
        table,
      );
      const old = this.legacy.get(id);
      if (old !== undefined && this.tableExists(old)) {
        this.db.exec(
          `INSERT INTO ${quoteIdent(table)} (entity_key, view, event_ts, created_ts, frame) SELECT entity_key, ${sqlString(view.name)}, event_ts, created_ts, ` +
            `CAST(${sqlString(`${view.name}:`)} || length(payload) || ':' || payload AS BLOB) FROM ${quoteIdent(old)} WHERE true ` +
            `ON CONFLICT(entity_key, view) DO NOTHING`,
        );
      }
      this.dropLegacy(id);
    })();
    this.registered.set(id, table);
    return table;
  }

  /** Drops the old-layout table of a view (moved or no longer wanted) and forgets it. */
  private dropLegacy(id: string): void {
    const old = this.legacy.get(id);
    if (old === undefined) return;
    this.dropTable(old);
    this.stmt(`DELETE FROM ${LEGACY_TABLES} WHERE name = ?`).run(old);
    this.legacy.delete(id);
  }

  private deleteViewRows(table: string, view: string): void {
    if (!this.tableExists(table)) return;
    this.db.prepare(`DELETE FROM ${quoteIdent(table)} WHERE view = ?`).run(view);
    if (!this.db.prepare(`SELECT 1 FROM ${VIEWS_TABLE} WHERE tbl = ? AND view <> ? LIMIT 1`).get(table, view))
      this.dropTable(table);
  }

  private dropTable(table: string): void {
    this.db.exec(`DROP TABLE IF EXISTS ${quoteIdent(table)}`);
    this.tables.delete(table);
    for (const sql of [...this.stmts.keys()]) if (sql.includes(quoteIdent(table))) this.stmts.delete(sql);
    this.selects.delete(table);
  }

  private unregister(project: string, view: string): void {
    this.stmt(`DELETE FROM ${VIEWS_TABLE} WHERE project = ? AND view = ?`).run(project, view);
    this.registered.delete(`${project}\0${view}`);
  }

  private saveSchema(schema: PayloadSchema): void {
    if (this.savedSchemas.has(schema.fingerprint)) return;
    this.stmt(`INSERT OR IGNORE INTO ${SCHEMAS_TABLE} (fingerprint, fields) VALUES (?, ?)`).run(
      schema.fingerprint,
      JSON.stringify(schema.fields),
    );
    this.savedSchemas.add(schema.fingerprint);
  }

  private schemaOf(fingerprint: number): PayloadSchema {
    const known = this.schemas.get(fingerprint);
    if (known) return known;
    const row = this.stmt(`SELECT fields FROM ${SCHEMAS_TABLE} WHERE fingerprint = ?`).get(fingerprint) as
      { fields: string } | undefined;
    if (!row)
      throw new Error(
        `online store ${this.path}: a payload was written with an unknown schema (fingerprint ${fingerprint}); re-materialize the view`,
      );
    return this.schemas.add(JSON.parse(row.fields) as FieldSpec[]);
  }

  async update(project: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): Promise<void> {
    this.db.transaction(() => {
      for (const v of keep) this.ensureView(project, v);
      for (const v of drop) this.dropView(project, v.name);
    })();
  }

  private dropView(project: string, view: string): void {
    const id = `${project}\0${view}`;
    const table = this.registered.get(id);
    this.unregister(project, view);
    if (table !== undefined) this.deleteViewRows(table, view);
    this.dropLegacy(id);
  }

  async teardown(project: string, views: FeatureViewSpec[]): Promise<void> {
    const rows = this.stmt(`SELECT view, tbl FROM ${VIEWS_TABLE} WHERE project = ?`).all(project) as Array<{
      view: string;
      tbl: string;
    }>;
    this.db.transaction(() => {
      const tables = new Set([...rows.map((r) => r.tbl), ...views.map((v) => sqliteTableName(project, v))]);
      this.stmt(`DELETE FROM ${VIEWS_TABLE} WHERE project = ?`).run(project);
      for (const t of tables) this.dropTable(t);
      for (const id of [...this.legacy.keys()]) if (id.startsWith(`${project}\0`)) this.dropLegacy(id);
    })();
    for (const r of rows) this.registered.delete(`${project}\0${r.view}`);
  }

  async write(project: string, view: FeatureViewSpec, batch: OnlineWriteBatch): Promise<number> {
    return (await this.writeViews(project, [{ view, batch }]))[0];
  }

  /**
   * Several views' batches in one transaction. Materialize hands over the rows of many views of a key range
   * at once, and they go in in primary-key order (key, then view): the table then grows at its end, where
   * view after view each batch would split pages all over it (25 views of 100k entities: 27 s view by view).
   */
  async writeViews(
    project: string,
    batches: Array<{ view: FeatureViewSpec; batch: OnlineWriteBatch }>,
  ): Promise<number[]> {
    // everything that can fail on bad input happens before the transaction
    const prepared = batches.map(({ view, batch }) =>
      batch.length === 0 ? undefined : this.prepareWrite(project, view, batch),
    );
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
      this.db.transaction(() => {
        for (const p of prepared) if (p !== undefined) this.saveSchema(p.schema);
        for (const [table, idx] of byTable) this.upsertInKeyOrder(table, idx, prepared as PreparedWrite[], written);
      })();
    } catch (e) {
      // a schema row saved inside the rolled-back transaction is gone: save it again next time
      for (const p of prepared) if (p !== undefined) this.savedSchemas.delete(p.schema.fingerprint);
      throw e;
    }
    return written;
  }

  /** A batch's keys as stored and its encoded rows, ready to upsert. */
  private prepareWrite(project: string, view: FeatureViewSpec, batch: OnlineWriteBatch): PreparedWrite {
    const n = batch.length;
    const keys = this.keyCodec(view).keysOfColumns(batch.keys, n);
    const schema = this.schemas.ofView(view);
    const { buf, starts, ends } = encodeFramedRows(view, schema, batch, viewBytes(view.name).frame);
    const table = this.ensureView(project, view);
    const ab = buf.buffer;
    const base = buf.byteOffset;
    return {
      table,
      view: view.name,
      n,
      keys,
      schema,
      eventTs: batch.eventTs,
      createdTs: batch.createdTs,
      // a plain Uint8Array view is cheaper to make than Buffer.subarray; SQLite copies the bytes
      payload: (r) => new Uint8Array(ab, base + starts[r], ends[r] - starts[r]),
    };
  }

  /**
   * Upserts the batches `idx` of one table, their rows merged by key, then view (each batch comes sorted by
   * key from materialize; in any other order every row is still written once, just less tidily). Several
   * rows per statement: the JS -> SQLite call, not the B-tree, is most of a row's cost.
   */
  private upsertInKeyOrder(table: string, idx: number[], prepared: PreparedWrite[], written: number[]): void {
    const ps = idx.map((i) => prepared[i]);
    const order = ps.map((_, j) => j).sort((a, b) => (ps[a].view < ps[b].view ? -1 : ps[a].view > ps[b].view ? 1 : 0));
    const next = new Int32Array(ps.length);
    const many = this.upsert(table, ROWS_PER_INSERT);
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
      params[o + 4] = p.payload(r);
      fromBatch[fill] = j;
      fromRow[fill] = r;
      if (++fill === ROWS_PER_INSERT) {
        this.countWritten(table, many.run(...params).changes, ps, idx, fromBatch, fromRow, fill, written);
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
    const one = this.upsert(table, 1);
    for (let i = 0; i < fill; i++) {
      const p = ps[fromBatch[i]];
      const r = fromRow[i];
      written[idx[fromBatch[i]]] += one.run(p.keys[r], p.view, p.eventTs[r], p.createdTs[r] || 0, p.payload(r)).changes;
    }
  }

  /**
   * Credits a multi-row upsert's `changes` to the batches its rows came from. A row is skipped only when the
   * stored one is newer, so when some were skipped in a statement of several batches, a row was written if
   * the stored timestamps are now its own.
   */
  private countWritten(
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
    const stamps = this.stmt(`SELECT event_ts, created_ts FROM ${quoteIdent(table)} WHERE entity_key = ? AND view = ?`);
    for (let i = 0; i < rows; i++) {
      const p = ps[fromBatch[i]];
      const r = fromRow[i];
      const stored = stamps.get(p.keys[r], p.view) as { event_ts: number; created_ts: number } | undefined;
      if (stored !== undefined && stored.event_ts === p.eventTs[r] && stored.created_ts === (p.createdTs[r] || 0))
        written[idx[fromBatch[i]]]++;
    }
  }

  /** Upsert of `rows` rows at once; a row never replaces a newer one (ties: newer or equal created time). */
  private upsert(table: string, rows: number): Statement {
    const t = quoteIdent(table);
    return this.stmt(
      `INSERT INTO ${t} (entity_key, view, event_ts, created_ts, frame) VALUES ${Array(rows).fill("(?, ?, ?, ?, ?)").join(", ")} ON CONFLICT(entity_key, view) DO UPDATE SET ` +
        `event_ts = excluded.event_ts, created_ts = excluded.created_ts, frame = excluded.frame ` +
        `WHERE excluded.event_ts > ${t}.event_ts OR (excluded.event_ts = ${t}.event_ts AND excluded.created_ts >= ${t}.created_ts)`,
    );
  }

  /**
   * The frames (`<view>:<payload length>:<payload>`) of every stored view of the entities asked for, as
   * one blob: `<key length>:<key><frames length>:<frames>` per entity. group_concat is byte-exact on
   * blobs in a UTF-8 database. One blob per read, not one per entity: a read of 100 entities x 25 views
   * makes one JS value instead of 100 buffers (or 2,500 rows), and its p99 halves (1 entity's worth of
   * allocation per read instead of 100). A one-entity read answers that entity's frames alone; with at
   * most MAX_POINT_VIEWS views it is point lookups, 15% less time in SQLite than the IN form for the
   * 1 x 2-view read. Parameters: selectParams.
   */
  private selectIn(table: string, size: number, views: number): Statement {
    let byShape = this.selects.get(table);
    if (!byShape) this.selects.set(table, (byShape = new Map<number, Statement>()));
    // size < 2^20 (MAX_IN), views < 2^11 for any shape that is read
    const shape = size * 2048 + views;
    let s = byShape.get(shape);
    if (s) return s;
    const t = quoteIdent(table);
    // a read of some of the table's views seeks just those rows of each entity
    const ofViews = views === 0 ? "" : views === 1 ? " AND view = ?" : ` AND view IN (${"?,".repeat(views - 1)}?)`;
    if (isPointRead(size, views)) {
      // one entity, a few of its views: point lookups of the primary key, no IN list (SQLite builds an
      // ephemeral index for one); parameters: (key, view) per view
      const points = Array.from(
        { length: views },
        () => `SELECT frame FROM ${t} WHERE entity_key = ? AND view = ?`,
      ).join(" UNION ALL ");
      s = this.stmt(`SELECT CAST(group_concat(frame, '') AS BLOB) FROM (${points})`);
    } else if (size === 1) {
      // one entity: its frames only (the caller knows the key), no GROUP BY
      s = this.stmt(`SELECT CAST(group_concat(frame, '') AS BLOB) FROM ${t} WHERE entity_key = ?${ofViews}`);
    } else {
      s = this.stmt(
        `SELECT CAST(group_concat(octet_length(entity_key) || ':' || entity_key || octet_length(f) || ':' || f, '') AS BLOB) ` +
          `FROM (SELECT entity_key, group_concat(frame, '') AS f FROM ${t} WHERE entity_key IN (${"?,".repeat(size - 1)}?)${ofViews} GROUP BY entity_key)`,
      );
    }
    s.pluck(true);
    byShape.set(shape, s);
    return s;
  }

  /** How many views this process knows `table` to hold (another process may have added more since). */
  private viewsInTable(table: string): number {
    let n = 0;
    for (const t of this.registered.values()) if (t === table) n++;
    return n;
  }

  async read(project: string, requests: OnlineReadRequest[]): Promise<OnlineReadResult[]> {
    const results = new ReadResults(requests);
    // requests of views keyed by the same entity columns read one table, in one pass
    const byTable = new Map<string, number[]>();
    requests.forEach((req, i) => {
      if (req.entityKeys.length === 0) return;
      if (this.legacy.size > 0 && this.legacy.has(`${project}\0${req.view.name}`)) this.ensureView(project, req.view);
      const table = this.tableOf(project, req.view);
      const list = byTable.get(table);
      if (list) list.push(i);
      else byTable.set(table, [i]);
    });
    const keysOf = keysOfRequests(requests, (v) => this.keyCodec(v));
    for (const [table, reqIdx] of byTable) {
      if (this.tableExists(table)) this.readTable(table, requests, reqIdx, keysOf, results);
    }
    return results.finish();
  }

  private readTable(
    table: string,
    requests: OnlineReadRequest[],
    reqIdx: number[],
    keysOf: string[][],
    results: ReadResults,
  ): void {
    // requests sharing a keys array (same entity rows, same key spelling) form a group; a key's targets
    // are (group, row) pairs, flat
    const groups = new Map<string[], number>();
    const targets = new Map<string, number[]>();
    const views = new ViewMatcher();
    for (const ri of reqIdx) {
      const keys = keysOf[ri];
      let g = groups.get(keys);
      if (g === undefined) {
        const group = (g = groups.size);
        groups.set(keys, group);
        keys.forEach((key, row) => {
          const list = targets.get(key);
          if (list) list.push(group, row);
          else targets.set(key, [group, row]);
        });
      }
      const view = requests[ri].view;
      const schema = this.schemas.ofView(view);
      views.add(view.name, g, {
        req: ri,
        schema,
        columns: results.columnsFor(ri, schema),
        eventTs: results.eventTsOf(ri),
      });
    }
    const distinct = [...targets.keys()];
    const wanted = views.names();
    const viewNames = wanted.length < this.viewsInTable(table) ? wanted : [];
    for (let start = 0; start < distinct.length; start += MAX_IN) {
      const chunk = distinct.slice(start, start + MAX_IN);
      let size = 1;
      while (size < chunk.length) size <<= 1;
      while (chunk.length < size) chunk.push(chunk[0]);
      const blob = this.selectIn(table, size, viewNames.length).get(...selectParams(chunk, viewNames)) as Buffer | null;
      if (blob === null) continue;
      // a one-entity read answers that entity's frames alone; others, `<key length>:<key><frames length>:<frames>` per entity
      if (size === 1)
        this.decodeFrames(chunk[0], blob, dataViewOf(blob), 0, blob.length, targets.get(chunk[0])!, views, results);
      else this.decodeEntities(blob, dataViewOf(blob), targets, views, results);
    }
    releaseDecodeBuffer();
  }

  /** Walks selectIn's blob: each entity's frames go to the rows that asked for it. */
  private decodeEntities(
    b: Buffer,
    dv: DataView,
    targets: Map<string, number[]>,
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
      if (p > end) throw new Error(`online store ${this.path}: corrupt read of entity ${key}`);
      const t = targets.get(key);
      if (t !== undefined) this.decodeFrames(key, b, dv, framesAt, p, t, views, results);
    }
  }

  /** Unpacks one entity's frames, b[start, end), into the rows (`targets`: group, row, ...) that asked for it. */
  private decodeFrames(
    key: string,
    b: Buffer,
    dv: DataView,
    start: number,
    end: number,
    targets: number[],
    views: ViewMatcher,
    results: ReadResults,
  ): void {
    let p = start;
    while (p < end) {
      // the view name, hashed as it is scanned (no string per frame), then the payload length
      let h = 0;
      let q = p;
      for (; q < end && b[q] !== COLON; q++) h = (Math.imul(h, 31) + b[q]) | 0;
      let len = 0;
      let r = q + 1;
      for (; r < end && b[r] !== COLON; r++) len = len * 10 + (b[r] - 48);
      const at = r + 1;
      if (r >= end || at + len > end) throw new Error(`online store ${this.path}: corrupt row for entity ${key}`);
      const byGroup = views.match(h, b, p, q);
      p = at + len;
      if (byGroup === undefined) continue;
      const fp = payloadFingerprint(b, at);
      for (let i = 0; i < targets.length; i += 2) {
        const list = byGroup[targets[i]];
        if (list === undefined) continue;
        const row = targets[i + 1];
        for (const t of list) {
          if (fp === t.schema.fingerprint) t.eventTs[row] = decodeInto(b, dv, at, t.schema, t.columns, row);
          else results.decode(t.req, row, b, at, this.schemaOf(fp));
        }
      }
    }
  }

  async health(): Promise<void> {
    this.stmt("SELECT 1").get();
  }

  async close(): Promise<void> {
    this.stmts.clear();
    this.selects.clear();
    if (this.db.open) this.db.close();
  }
}

const nameCache = new Map<string, { name: Buffer; hash: number; frame: Buffer }>();

/**
 * A view name's bytes, their hash as decodeFrames computes it, and `<view>:`, the start of each of the
 * view's frames (cached: names are few).
 */
function viewBytes(view: string): { name: Buffer; hash: number; frame: Buffer } {
  let e = nameCache.get(view);
  if (!e) {
    const name = Buffer.from(view, "latin1");
    let hash = 0;
    for (let i = 0; i < name.length; i++) hash = (Math.imul(hash, 31) + name[i]) | 0;
    nameCache.set(view, (e = { name, hash, frame: Buffer.from(`${view}:`, "latin1") }));
  }
  return e;
}

/** A request's decode target for payloads of its view's current schema. */
interface FrameTarget {
  req: number;
  schema: PayloadSchema;
  columns: Array<unknown[] | undefined>;
  eventTs: Float64Array;
}

/** The views of one read, found by the hash of their name's bytes (checked byte for byte). */
class ViewMatcher {
  private readonly byHash = new Map<number, Array<{ name: Buffer; byGroup: FrameTarget[][] }>>();

  private readonly added: string[] = [];

  add(view: string, group: number, target: FrameTarget): void {
    // (arrays made with their first element: an empty array grows to 17 slots on its first push, and a
    // 25-view read made 75 of them)
    const { name, hash } = viewBytes(view);
    const list = this.byHash.get(hash);
    // one Buffer per view name (viewBytes caches them): identity is equality
    let entry: { name: Buffer; byGroup: FrameTarget[][] } | undefined;
    if (list !== undefined) for (const e of list) if (e.name === name) entry = e;
    if (entry === undefined) {
      this.added.push(view);
      const byGroup: FrameTarget[][] = group === 0 ? [[target]] : [];
      if (group !== 0) byGroup[group] = [target];
      if (list === undefined) this.byHash.set(hash, [{ name, byGroup }]);
      else list.push({ name, byGroup });
      return;
    }
    const targets = entry.byGroup[group];
    if (targets === undefined) entry.byGroup[group] = [target];
    else targets.push(target);
  }

  /** The view names added. */
  names(): string[] {
    return this.added;
  }

  /** The targets, per group, of the view named by b[start, end) with name hash `h`. */
  match(h: number, b: Buffer, start: number, end: number): FrameTarget[][] | undefined {
    const list = this.byHash.get(h);
    if (list === undefined) return undefined;
    for (const e of list) {
      const name = e.name;
      if (name.length !== end - start) continue;
      let i = 0;
      while (i < name.length && name[i] === b[start + i]) i++;
      if (i === name.length) return e.byGroup;
    }
    return undefined;
  }
}

function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
