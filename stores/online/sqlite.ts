// SQLite online store: one table per (project, view), one row per entity key holding the packed payload.
// WAL + synchronous=NORMAL: a committed batch survives a process crash; a power loss may lose the last
// batches but never leaves one half-written.

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { FeatureViewSpec, FieldSpec } from "../../registry/types.js";
import type { OnlineReadRequest, OnlineRecord, OnlineStore, OnlineWriteBatch } from "../types.js";
import { EntityKeyCodec, SchemaBook, decodePayload, encodeRows, payloadFingerprint, type PayloadSchema } from "./codec.js";

type Statement = Database.Statement<unknown[], unknown>;

const SCHEMAS_TABLE = "__fstore_payload_schemas";
/** which project each view table belongs to (a prefix match on "<project>__" could hit project "a__b") */
const TABLES_TABLE = "__fstore_tables";
/** keys per IN (...) statement; statement sizes are rounded up to a power of two (padded with a repeat) */
const MAX_IN = 512;

export function sqliteTableName(project: string, view: string): string {
  return `${project}__${view}`;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class SqliteOnlineStore implements OnlineStore {
  readonly type = "sqlite";
  private readonly db: Database.Database;
  private readonly schemas = new SchemaBook();
  private readonly keyCodecs = new WeakMap<FeatureViewSpec, EntityKeyCodec>();
  private readonly stmts = new Map<string, Statement>();
  private readonly tables = new Set<string>();
  private readonly savedSchemas = new Set<number>();

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
    this.db.exec(`CREATE TABLE IF NOT EXISTS ${TABLES_TABLE} (name TEXT PRIMARY KEY, project TEXT NOT NULL, view TEXT NOT NULL)`);
  }

  private stmt(sql: string): Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private keyCodec(view: FeatureViewSpec): EntityKeyCodec {
    let c = this.keyCodecs.get(view);
    if (!c) {
      c = new EntityKeyCodec(view, false);
      this.keyCodecs.set(view, c);
    }
    return c;
  }

  private createTable(project: string, view: string): void {
    const table = sqliteTableName(project, view);
    this.db.exec(
      `CREATE TABLE IF NOT EXISTS ${quoteIdent(table)} (entity_key TEXT PRIMARY KEY, event_ts INTEGER NOT NULL, created_ts INTEGER NOT NULL, payload BLOB NOT NULL) WITHOUT ROWID`,
    );
    this.stmt(`INSERT OR IGNORE INTO ${TABLES_TABLE} (name, project, view) VALUES (?, ?, ?)`).run(table, project, view);
    this.tables.add(table);
  }

  private tableExists(table: string): boolean {
    if (this.tables.has(table)) return true;
    const row = this.stmt("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
    if (row) this.tables.add(table);
    return row !== undefined;
  }

  private saveSchema(schema: PayloadSchema): void {
    if (this.savedSchemas.has(schema.fingerprint)) return;
    this.stmt(`INSERT OR IGNORE INTO ${SCHEMAS_TABLE} (fingerprint, fields) VALUES (?, ?)`).run(schema.fingerprint, JSON.stringify(schema.fields));
    this.savedSchemas.add(schema.fingerprint);
  }

  private schemaOf(fingerprint: number): PayloadSchema {
    const known = this.schemas.get(fingerprint);
    if (known) return known;
    const row = this.stmt(`SELECT fields FROM ${SCHEMAS_TABLE} WHERE fingerprint = ?`).get(fingerprint) as { fields: string } | undefined;
    if (!row) throw new Error(`online store ${this.path}: a payload was written with an unknown schema (fingerprint ${fingerprint}); re-materialize the view`);
    return this.schemas.add(JSON.parse(row.fields) as FieldSpec[]);
  }

  async update(project: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): Promise<void> {
    this.db.transaction(() => {
      for (const v of keep) this.createTable(project, v.name);
      for (const v of drop) this.dropTable(sqliteTableName(project, v.name));
    })();
  }

  private dropTable(table: string): void {
    this.db.exec(`DROP TABLE IF EXISTS ${quoteIdent(table)}`);
    this.stmt(`DELETE FROM ${TABLES_TABLE} WHERE name = ?`).run(table);
    this.tables.delete(table);
    for (const sql of [...this.stmts.keys()]) if (sql.includes(quoteIdent(table))) this.stmts.delete(sql);
  }

  async teardown(project: string, views: FeatureViewSpec[]): Promise<void> {
    const names = (this.stmt(`SELECT name FROM ${TABLES_TABLE} WHERE project = ?`).all(project) as Array<{ name: string }>).map((r) => r.name);
    const all = new Set([...names, ...views.map((v) => sqliteTableName(project, v.name))]);
    this.db.transaction(() => {
      for (const t of all) this.dropTable(t);
    })();
  }

  async write(project: string, view: FeatureViewSpec, batch: OnlineWriteBatch): Promise<number> {
    const n = batch.length;
    if (n === 0) return 0;
    // everything that can fail on bad input happens before the transaction
    const keys = this.keyCodec(view).keysOfColumns(batch.keys, n);
    const schema = this.schemas.ofView(view);
    const { buf, offsets } = encodeRows(view, schema, batch);
    const table = sqliteTableName(project, view.name);
    if (!this.tables.has(table)) this.createTable(project, view.name);
    const t = quoteIdent(table);
    const upsert = this.stmt(
      `INSERT INTO ${t} (entity_key, event_ts, created_ts, payload) VALUES (?, ?, ?, ?) ON CONFLICT(entity_key) DO UPDATE SET ` +
        `event_ts = excluded.event_ts, created_ts = excluded.created_ts, payload = excluded.payload ` +
        `WHERE excluded.event_ts > ${t}.event_ts OR (excluded.event_ts = ${t}.event_ts AND excluded.created_ts >= ${t}.created_ts)`,
    );
    const eventTs = batch.eventTs;
    const createdTs = batch.createdTs;
    const ab = buf.buffer;
    const base = buf.byteOffset;
    let written = 0;
    this.db.transaction(() => {
      this.saveSchema(schema);
      for (let r = 0; r < n; r++) {
        // a plain Uint8Array view is cheaper to make than Buffer.subarray; SQLite copies the bytes
        const payload = new Uint8Array(ab, base + offsets[r], offsets[r + 1] - offsets[r]);
        written += upsert.run(keys[r], eventTs[r], createdTs[r] || 0, payload).changes;
      }
    })();
    return written;
  }

  private selectIn(table: string, size: number): Statement {
    const t = quoteIdent(table);
    const sql = size === 1 ? `SELECT entity_key, payload FROM ${t} WHERE entity_key = ?` : `SELECT entity_key, payload FROM ${t} WHERE entity_key IN (${"?,".repeat(size - 1)}?)`;
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql).raw(true);
      this.stmts.set(sql, s);
    }
    return s;
  }

  async read(project: string, requests: OnlineReadRequest[]): Promise<Array<Array<OnlineRecord | null>>> {
    return requests.map((req) => this.readOne(project, req));
  }

  private readOne(project: string, req: OnlineReadRequest): Array<OnlineRecord | null> {
    const n = req.entityKeys.length;
    const out = new Array<OnlineRecord | null>(n).fill(null);
    if (n === 0) return out;
    const codec = this.keyCodec(req.view);
    const keys = req.entityKeys.map((k, i) => codec.key(k, i));
    const table = sqliteTableName(project, req.view.name);
    if (!this.tableExists(table)) return out;
    const current = this.schemas.ofView(req.view);
    const found = new Map<string, Buffer>();
    for (let start = 0; start < n; start += MAX_IN) {
      const chunk = keys.slice(start, start + MAX_IN);
      let size = 1;
      while (size < chunk.length) size <<= 1;
      while (chunk.length < size) chunk.push(chunk[0]);
      const rows = this.selectIn(table, size).all(...chunk) as Array<[string, Buffer]>;
      for (const [k, p] of rows) found.set(k, p);
    }
    for (let i = 0; i < n; i++) {
      const p = found.get(keys[i]);
      if (!p) continue;
      const fp = payloadFingerprint(p);
      const schema = fp === current.fingerprint ? current : this.schemaOf(fp);
      const d = decodePayload(p, schema, schema === current ? undefined : req.features);
      out[i] = { eventTs: d.eventTs, values: d.values };
    }
    return out;
  }

  async health(): Promise<void> {
    this.stmt("SELECT 1").get();
  }

  async close(): Promise<void> {
    this.stmts.clear();
    if (this.db.open) this.db.close();
  }
}
