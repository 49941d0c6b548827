// The SQLite online store's database: its tables, which table holds each view, the payload schemas, and
// the statements prepared on it.
//
// One table per (project, entity-key columns), one row per (entity, view), PRIMARY KEY (entity_key, view)
// WITHOUT ROWID: every view of an entity sits in the same B-tree leaf, so a read of all its views is one
// seek. The payload is stored framed, `<view>:<length>:<payload>`, so that a read can hand back an
// entity's views as one plain group_concat.

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { FeatureViewSpec, FieldSpec } from "../../registry/types.js";
import { EntityKeyCodec } from "./entity_keys.js";
import { type PayloadSchema, SchemaBook } from "./payload.js";

export type Statement = Database.Statement<unknown[], unknown>;

const SCHEMAS_TABLE = "__fstore_payload_schemas";
/** (project, view) -> the table holding its rows; a teardown drops only its own project's tables */
const VIEWS_TABLE = "__fstore_views";
/** the byte between a frame's view name, its payload length and its payload */
export const COLON = 58;

/** The table of a view's entity-key columns: `<project>:<join key>,<join key>`. */
export function sqliteTableName(project: string, view: Pick<FeatureViewSpec, "entityColumns">): string {
  return `${project}:${view.entityColumns.map((c) => c.name).join(",")}`;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The hash of a view name's bytes b[start, end) that a read computes as it scans a frame. */
export function nameHash(b: Uint8Array, start: number, end: number): number {
  let h = 0;
  for (let i = start; i < end; i++) h = (Math.imul(h, 31) + b[i]) | 0;
  return h;
}

/** What reads and writes need of a view spec, worked out once per spec object. */
export interface SqliteView {
  name: string;
  codec: EntityKeyCodec;
  /** the payload schema of the view's current features */
  schema: PayloadSchema;
  /** the view name's bytes and their nameHash, to find its frames in a read */
  nameBytes: Buffer;
  hash: number;
  /** `<view>:`, the start of each of the view's frames */
  frame: Buffer;
  /** sqliteTableName for `project` */
  project: string;
  table: string;
}

export class SqliteSchema {
  readonly db: Database.Database;
  /** payload schemas by fingerprint, as saved in SCHEMAS_TABLE */
  readonly payloads = new SchemaBook();
  /**
   * prepared statements by their SQL
   * defended by: `npm run bench -- online` sqlite read 1 entity x 25 views p50
   */
  private readonly statements = new Map<string, Statement>();
  /**
   * what a view spec needs, by spec object (the registry hands the same ones until it reloads)
   * defended by: `npm run bench -- online` sqlite read 1 entity x 25 views p50
   */
  private readonly views = new WeakMap<FeatureViewSpec, SqliteView>();
  /**
   * entity tables known to exist, and "<project>\0<view>" -> table as in VIEWS_TABLE (a read asks both)
   * defended by: `npm run bench -- online` sqlite read 1 entity x 25 views p50
   */
  private readonly tables = new Set<string>();
  private readonly registered = new Map<string, string>();
  /** fingerprints known to be in SCHEMAS_TABLE */
  private readonly savedSchemas = new Set<number>();

  constructor(readonly path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    // WAL + synchronous=NORMAL: a committed batch survives a process crash; a power loss may lose the last
    // batches but never leaves one half-written
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
    const rows = this.db.prepare(`SELECT project, view, tbl FROM ${VIEWS_TABLE}`).all() as Array<{
      project: string;
      view: string;
      tbl: string;
    }>;
    for (const r of rows) this.registered.set(`${r.project}\0${r.view}`, r.tbl);
  }

  /** A prepared statement of `sql`, prepared once. */
  stmt(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** What reads and writes of `spec` in `project` need. */
  view(project: string, spec: FeatureViewSpec): SqliteView {
    let v = this.views.get(spec);
    if (v === undefined) {
      const nameBytes = Buffer.from(spec.name, "latin1");
      v = {
        name: spec.name,
        codec: new EntityKeyCodec(spec, false),
        schema: this.payloads.current(spec),
        nameBytes,
        hash: nameHash(nameBytes, 0, nameBytes.length),
        frame: Buffer.from(`${spec.name}:`, "latin1"),
        project,
        table: sqliteTableName(project, spec),
      };
      this.views.set(spec, v);
    } else if (v.project !== project) {
      v.project = project;
      v.table = sqliteTableName(project, spec);
    }
    return v;
  }

  tableExists(table: string): boolean {
    if (this.tables.has(table)) return true;
    const row = this.stmt("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
    if (row) this.tables.add(table);
    return row !== undefined;
  }

  /** How many views this process knows `table` to hold (another process may have added more since). */
  viewsInTable(table: string): number {
    let n = 0;
    for (const t of this.registered.values()) if (t === table) n++;
    return n;
  }

  /** Creates the view's entity table and registers the view (idempotent); returns the table. */
  ensureView(project: string, view: FeatureViewSpec): string {
    const id = `${project}\0${view.name}`;
    const table = sqliteTableName(project, view);
    if (this.registered.get(id) === table) return table;
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
    })();
    this.registered.set(id, table);
    return table;
  }

  update(project: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): void {
    this.db.transaction(() => {
      for (const v of keep) this.ensureView(project, v);
      for (const v of drop) this.dropView(project, v.name);
    })();
  }

  teardown(project: string, views: FeatureViewSpec[]): void {
    const rows = this.stmt(`SELECT view, tbl FROM ${VIEWS_TABLE} WHERE project = ?`).all(project) as Array<{
      view: string;
      tbl: string;
    }>;
    this.db.transaction(() => {
      const tables = new Set([...rows.map((r) => r.tbl), ...views.map((v) => sqliteTableName(project, v))]);
      this.stmt(`DELETE FROM ${VIEWS_TABLE} WHERE project = ?`).run(project);
      for (const t of tables) this.dropTable(t);
    })();
    for (const r of rows) this.registered.delete(`${project}\0${r.view}`);
  }

  private dropView(project: string, view: string): void {
    const id = `${project}\0${view}`;
    const table = this.registered.get(id);
    this.stmt(`DELETE FROM ${VIEWS_TABLE} WHERE project = ? AND view = ?`).run(project, view);
    this.registered.delete(id);
    if (table !== undefined) this.deleteViewRows(table, view);
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
    const quoted = quoteIdent(table);
    for (const sql of [...this.statements.keys()]) if (sql.includes(quoted)) this.statements.delete(sql);
  }

  /** Records a payload schema (inside the write's transaction). */
  saveSchema(schema: PayloadSchema): void {
    if (this.savedSchemas.has(schema.fingerprint)) return;
    this.stmt(`INSERT OR IGNORE INTO ${SCHEMAS_TABLE} (fingerprint, fields) VALUES (?, ?)`).run(
      schema.fingerprint,
      JSON.stringify(schema.fields),
    );
    this.savedSchemas.add(schema.fingerprint);
  }

  /** Forgets that `schema` was saved: the transaction that saved it rolled back. */
  schemaRolledBack(schema: PayloadSchema): void {
    this.savedSchemas.delete(schema.fingerprint);
  }

  /** Loads the payload schema of `fingerprint` into `payloads`; throws when the database has none. */
  loadSchema(fingerprint: number): PayloadSchema {
    const known = this.payloads.get(fingerprint);
    if (known) return known;
    const row = this.stmt(`SELECT fields FROM ${SCHEMAS_TABLE} WHERE fingerprint = ?`).get(fingerprint) as
      { fields: string } | undefined;
    if (!row)
      throw new Error(
        `online store ${this.path}: a payload was written with an unknown schema (fingerprint ${fingerprint}); re-materialize the view`,
      );
    return this.payloads.add(JSON.parse(row.fields) as FieldSpec[]);
  }

  health(): void {
    this.stmt("SELECT 1").get();
  }

  close(): void {
    this.statements.clear();
    if (this.db.open) this.db.close();
  }
}
