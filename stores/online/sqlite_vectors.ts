// The SQLite store's vector indexes: one HNSW index (usearch) per (project, view, vector field), kept in
// step with the rows by every write.
//
// The database is the truth: `__fstore_vectors` holds each entity's current vector (NULL once removed),
// its index label and the write sequence number that last changed it, written in the write's own
// transaction. The index file beside the database is a saved copy as of a sequence number; a process
// brings its index up to the database by replaying the rows with a later sequence number. So a crash
// between the store's commit and the index save loses nothing, and an index never answers a label that the
// store does not hold (every answer is looked up in the table).

import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { basename, join } from "node:path";
import { type FeatureViewSpec, type FieldSpec, type VectorMetric, vectorFields } from "../../registry/types.js";
import type { OnlineWriteBatch, VectorMatches } from "../types.js";
import { type BatchVectors, batchVectors } from "../vectors/batch.js";
import {
  DEFAULT_HNSW,
  type HnswSettings,
  type UsearchIndex,
  addThreads,
  newIndex,
  saveAtomic,
} from "../vectors/hnsw.js";
import { exactMatches, indexMatches } from "./vector_matches.js";
import type { SqliteSchema } from "./sqlite_schema.js";

const INDEXES = "__fstore_vector_indexes";
const VECTORS = "__fstore_vectors";
const SAVE_DELAY_MS = 2000;

interface IndexState {
  dims: number;
  metric: VectorMetric;
  generation: string;
  next_label: number;
  seq: number;
}

/** What the file beside the database says of the saved index. */
interface SavedMeta {
  generation: string;
  seq: number;
  file: string;
  dims: number;
  metric: VectorMetric;
}

/** A process's copy of one index. */
interface Handle {
  project: string;
  view: string;
  field: string;
  generation: string;
  dims: number;
  metric: VectorMetric;
  index: UsearchIndex;
  /** "view": memory-mapped from the saved file (read-only); "ram": loaded or built, and writable */
  mode: "view" | "ram";
  /** the sequence number the index reflects */
  applied: number;
  /**
   * entity key by label, of the labels holding a vector in the table
   * defended by: `npm run bench -- vectors` retrieveOnlineDocuments top 100 p99 against the search by hand
   */
  keys: Map<number, string>;
  /** applied but not saved */
  dirty: boolean;
  timer?: NodeJS.Timeout;
}

/** An index a write changed. */
interface Touched {
  project: string;
  view: string;
  field: FieldSpec;
}

/** A vector write staged for a batch: checked before the transaction, recorded inside it. */
export interface StagedVectors {
  view: FeatureViewSpec;
  fields: BatchVectors[];
}

export class SqliteVectors {
  private readonly handles = new Map<string, Handle>();
  private readonly dir: string | null;

  constructor(
    private readonly schema: SqliteSchema,
    private readonly settings: HnswSettings = DEFAULT_HNSW,
  ) {
    this.dir = schema.path === ":memory:" ? null : `${schema.path}.vectors`;
    const db = schema.db;
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${INDEXES} (project TEXT NOT NULL, view TEXT NOT NULL, field TEXT NOT NULL, dims INTEGER NOT NULL, metric TEXT NOT NULL, generation TEXT NOT NULL, next_label INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (project, view, field)) WITHOUT ROWID`,
    );
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${VECTORS} (project TEXT NOT NULL, view TEXT NOT NULL, field TEXT NOT NULL, entity_key TEXT NOT NULL, label INTEGER NOT NULL, seq INTEGER NOT NULL, vector BLOB, PRIMARY KEY (project, view, field, entity_key)) WITHOUT ROWID`,
    );
    db.exec(`CREATE INDEX IF NOT EXISTS __fstore_vectors_seq ON ${VECTORS} (project, view, field, seq)`);
    db.exec(`CREATE UNIQUE INDEX IF NOT EXISTS __fstore_vectors_label ON ${VECTORS} (project, view, field, label)`);
  }

  // ------------------------------------------------------------ schema (apply, teardown)

  /** Registers the indexes of `keep` (a changed length or metric starts a new one), drops those of `drop`. */
  update(project: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): void {
    for (const v of drop) this.dropIndexes(project, v.name, new Set());
    for (const v of keep) {
      const fields = v.online ? vectorFields(v) : [];
      this.dropIndexes(project, v.name, new Set(fields.map((f) => f.name)));
      for (const f of fields) this.ensureIndex(project, v.name, f);
    }
  }

  teardown(project: string): void {
    const rows = this.schema.stmt(`SELECT view, field FROM ${INDEXES} WHERE project = ?`).all(project) as Array<{
      view: string;
      field: string;
    }>;
    for (const r of rows) this.dropIndex(project, r.view, r.field);
  }

  /** The index state of a vector field, created (empty) when the database has none or an incompatible one. */
  private ensureIndex(project: string, view: string, f: FieldSpec): IndexState {
    const dims = f.vectorLength ?? 0;
    const metric = f.vectorSearchMetric ?? "cosine";
    const s = this.state(project, view, f.name);
    if (s && s.dims === dims && s.metric === metric) return s;
    return this.schema.db.transaction(() => {
      if (s && s.dims !== dims)
        this.schema
          .stmt(`DELETE FROM ${VECTORS} WHERE project = ? AND view = ? AND field = ?`)
          .run(project, view, f.name);
      // same vectors under another metric: a new generation makes every process rebuild from the table
      const next: IndexState = {
        dims,
        metric,
        generation: randomUUID(),
        next_label: s?.next_label ?? 1,
        seq: s?.seq ?? 0,
      };
      this.schema
        .stmt(
          `INSERT OR REPLACE INTO ${INDEXES} (project, view, field, dims, metric, generation, next_label, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(project, view, f.name, dims, metric, next.generation, next.next_label, next.seq);
      this.forget(project, view, f.name);
      return next;
    })();
  }

  /** Drops the indexes of (project, view) other than those of `keepFields`. */
  private dropIndexes(project: string, view: string, keepFields: Set<string>): void {
    const rows = this.schema
      .stmt(`SELECT field FROM ${INDEXES} WHERE project = ? AND view = ?`)
      .all(project, view) as Array<{
      field: string;
    }>;
    for (const r of rows) if (!keepFields.has(r.field)) this.dropIndex(project, view, r.field);
  }

  private dropIndex(project: string, view: string, field: string): void {
    this.schema.db.transaction(() => {
      this.schema.stmt(`DELETE FROM ${VECTORS} WHERE project = ? AND view = ? AND field = ?`).run(project, view, field);
      this.schema.stmt(`DELETE FROM ${INDEXES} WHERE project = ? AND view = ? AND field = ?`).run(project, view, field);
    })();
    this.forget(project, view, field);
    if (this.dir) {
      const base = fileBase(project, view, field);
      const dir = this.dir;
      if (existsSync(dir))
        for (const f of readdirSync(dir)) if (f.startsWith(base)) rmSync(join(dir, f), { force: true });
    }
  }

  private forget(project: string, view: string, field: string): void {
    const id = handleId(project, view, field);
    const h = this.handles.get(id);
    if (h?.timer) clearTimeout(h.timer);
    this.handles.delete(id);
  }

  private state(project: string, view: string, field: string): IndexState | undefined {
    return this.schema
      .stmt(
        `SELECT dims, metric, generation, next_label, seq FROM ${INDEXES} WHERE project = ? AND view = ? AND field = ?`,
      )
      .get(project, view, field) as IndexState | undefined;
  }

  // ------------------------------------------------------------ writes

  /** Checks the batch's vectors (a bad one fails the whole write before anything is written). */
  stage(view: FeatureViewSpec, batch: OnlineWriteBatch): StagedVectors | undefined {
    if (!view.online || vectorFields(view).length === 0) return undefined;
    return { view, fields: batchVectors(view, batch) };
  }

  /**
   * Inside the write's transaction: records the vectors of the rows that are now stored (`won[r]`), under a
   * new sequence number per index. Returns the indexes touched, to catch up once committed.
   */
  record(project: string, staged: StagedVectors, keys: string[], won: Uint8Array): Touched[] {
    const touched: Touched[] = [];
    for (const { field, dims, vectors, present } of staged.fields) {
      const st = this.ensureIndex(project, staged.view.name, field);
      const seq = st.seq + 1;
      let label = st.next_label;
      const upsert = this.schema.stmt(
        `INSERT INTO ${VECTORS} (project, view, field, entity_key, label, seq, vector) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project, view, field, entity_key) DO UPDATE SET seq = excluded.seq, vector = excluded.vector RETURNING label`,
      );
      let changed = 0;
      for (let r = 0; r < keys.length; r++) {
        if (!won[r]) continue;
        const blob = present[r] ? Buffer.from(vectors.buffer, vectors.byteOffset + r * dims * 4, dims * 4) : null;
        const got = upsert.get(project, staged.view.name, field.name, keys[r], label, seq, blob) as { label: number };
        if (got.label === label) label++;
        changed++;
      }
      if (changed === 0) continue;
      this.schema
        .stmt(`UPDATE ${INDEXES} SET seq = ?, next_label = ? WHERE project = ? AND view = ? AND field = ?`)
        .run(seq, label, project, staged.view.name, field.name);
      touched.push({ project, view: staged.view.name, field });
    }
    return touched;
  }

  /** After the commit: brings the touched indexes of this process up to the database and saves them. */
  committed(touched: Touched[]): void {
    for (const t of touched) this.current(t.project, t.view, t.field);
  }

  // ------------------------------------------------------------ the index of a process

  /** This process's index of a field, up to date with the database. */
  private current(project: string, view: string, field: FieldSpec): Handle {
    const st = this.state(project, view, field.name) ?? this.ensureIndex(project, view, field);
    const id = handleId(project, view, field.name);
    let h = this.handles.get(id);
    if (h && h.generation !== st.generation) {
      this.forget(project, view, field.name);
      h = undefined;
    }
    if (!h) {
      h = this.open(project, view, field.name, st);
      this.handles.set(id, h);
    }
    if (st.seq > h.applied) {
      // another process wrote: a newer saved file is cheaper to map than the rows are to replay
      const meta = this.readMeta(h);
      if (meta && meta.seq > h.applied && !h.dirty) this.viewFile(h, meta);
      const n = this.catchUp(h);
      if (n > 0) this.scheduleSave(h);
    }
    return h;
  }

  private open(project: string, view: string, field: string, st: IndexState): Handle {
    const h: Handle = {
      project,
      view,
      field,
      generation: st.generation,
      dims: st.dims,
      metric: st.metric,
      index: newIndex(st.dims, st.metric, this.settings),
      mode: "ram",
      applied: 0,
      dirty: false,
      keys: new Map(),
    };
    const meta = this.readMeta(h);
    if (meta) this.viewFile(h, meta);
    const rows = this.schema
      .stmt(
        `SELECT label, entity_key FROM ${VECTORS} WHERE project = ? AND view = ? AND field = ? AND vector IS NOT NULL`,
      )
      .all(project, view, field) as Array<{ label: number; entity_key: string }>;
    for (const r of rows) h.keys.set(r.label, r.entity_key);
    return h;
  }

  private readMeta(h: Handle): SavedMeta | undefined {
    if (!this.dir) return undefined;
    const path = join(this.dir, `${fileBase(h.project, h.view, h.field)}.json`);
    if (!existsSync(path)) return undefined;
    try {
      const m = JSON.parse(readFileSync(path, "utf8")) as SavedMeta;
      const ok = m.generation === h.generation && m.dims === h.dims && m.metric === h.metric;
      return ok && existsSync(join(this.dir, m.file)) ? m : undefined;
    } catch {
      return undefined; // unreadable: the table rebuilds it
    }
  }

  /** Maps the saved file (read-only, shared with other processes through the page cache). */
  private viewFile(h: Handle, meta: SavedMeta): void {
    const index = newIndex(h.dims, h.metric, this.settings);
    try {
      index.view(join(this.dir as string, meta.file));
    } catch {
      return; // deleted meanwhile by a newer save: replaying the table is always right
    }
    if (index.dimensions() !== h.dims) return;
    h.index = index;
    h.mode = "view";
    h.applied = meta.seq;
  }

  /** Replays the rows changed after `h.applied`; returns how many. */
  private catchUp(h: Handle): number {
    const after = () =>
      this.schema
        .stmt(
          `SELECT label, entity_key, seq, vector FROM ${VECTORS} WHERE project = ? AND view = ? AND field = ? AND seq > ? ORDER BY seq`,
        )
        .all(h.project, h.view, h.field, h.applied) as Array<{
        label: number;
        entity_key: string;
        seq: number;
        vector: Buffer | null;
      }>;
    let rows = after();
    if (rows.length === 0) return 0;
    if (h.mode === "view") {
      this.toRam(h);
      // the mapped file was gone, so the index starts empty: every row is replayed
      if (h.applied === 0) rows = after();
    }
    for (const r of rows) {
      if (r.vector === null) h.keys.delete(r.label);
      else h.keys.set(r.label, r.entity_key);
    }
    const labels = new BigUint64Array(rows.length);
    for (let i = 0; i < rows.length; i++) labels[i] = BigInt(rows[i].label);
    const had = h.index.size() === 0 ? null : (h.index.contains(labels) as boolean[]);
    if (had) {
      const gone = labels.filter((_, i) => had[i]);
      if (gone.length) h.index.remove(gone);
    }
    const live = rows.filter((r) => r.vector !== null);
    if (live.length) {
      const keys = new BigUint64Array(live.length);
      const vecs = new Float32Array(live.length * h.dims);
      live.forEach((r, i) => {
        keys[i] = BigInt(r.label);
        const v = r.vector as Buffer;
        vecs.set(new Float32Array(v.buffer, v.byteOffset, h.dims), i * h.dims);
      });
      h.index.add(keys, vecs, addThreads(this.settings, keys.length));
    }
    h.applied = rows[rows.length - 1].seq;
    h.dirty = true;
    return rows.length;
  }

  /** A mapped index cannot change: load a writable copy of the same file. */
  private toRam(h: Handle): void {
    const meta = this.readMeta(h);
    const index = newIndex(h.dims, h.metric, this.settings);
    if (meta && meta.seq === h.applied) index.load(join(this.dir as string, meta.file));
    else h.applied = 0; // the mapped file is gone: rebuild from the table
    h.index = index;
    h.mode = "ram";
  }

  /** Saves a little later, so that the batches of one materialize make one save (close saves at once). */
  private scheduleSave(h: Handle): void {
    if (!this.dir) return;
    h.timer ??= setTimeout(() => {
      h.timer = undefined;
      if (this.handles.get(handleId(h.project, h.view, h.field)) === h) this.save(h);
    }, SAVE_DELAY_MS).unref();
  }

  /** Saves the index as of `h.applied`: the file (written, then renamed), then the meta that points to it. */
  save(h: Handle): void {
    if (!this.dir || !h.dirty) return;
    if (h.timer) clearTimeout(h.timer);
    h.timer = undefined;
    const before = this.readMeta(h);
    if (before && before.seq >= h.applied) {
      h.dirty = false;
      return;
    }
    mkdirSync(this.dir, { recursive: true });
    const base = fileBase(h.project, h.view, h.field);
    const file = `${base}.${h.generation}.${h.applied}.usearch`;
    saveAtomic(h.index, join(this.dir, file));
    const meta: SavedMeta = { generation: h.generation, seq: h.applied, file, dims: h.dims, metric: h.metric };
    const metaPath = join(this.dir, `${base}.json`);
    writeFileSync(`${metaPath}.${process.pid}.tmp`, JSON.stringify(meta));
    renameSync(`${metaPath}.${process.pid}.tmp`, metaPath);
    h.dirty = false;
    // older files: a process still mapping one keeps its pages until it moves on
    for (const f of readdirSync(this.dir))
      if (f.startsWith(`${base}.`) && f.endsWith(".usearch") && f !== file) rmSync(join(this.dir, f), { force: true });
  }

  /** Saves every index with unsaved changes (on close). */
  flush(): void {
    for (const h of this.handles.values()) {
      if (h.timer) clearTimeout(h.timer);
      h.timer = undefined;
      this.save(h);
    }
  }

  // ------------------------------------------------------------ search

  /** The `k` nearest entities of `query` in the index of `view`'s `field` (or by brute force when `exact`). */
  search(
    project: string,
    view: FeatureViewSpec,
    field: FieldSpec,
    query: Float32Array,
    k: number,
    opts: { exact: boolean; metric: VectorMetric },
  ): VectorMatches {
    if (opts.exact) return this.exact(project, view, field, query, k, opts.metric);
    const h = this.current(project, view.name, field);
    return indexMatches(view, h.index, h.metric, (label) => h.keys.get(label), query, k);
  }

  /** Brute force over every stored vector of the field. */
  private exact(
    project: string,
    view: FeatureViewSpec,
    field: FieldSpec,
    query: Float32Array,
    k: number,
    metric: VectorMetric,
  ): VectorMatches {
    const rows = this.schema
      .stmt(
        `SELECT entity_key, vector FROM ${VECTORS} WHERE project = ? AND view = ? AND field = ? AND vector IS NOT NULL`,
      )
      .all(project, view.name, field.name) as Array<{ entity_key: string; vector: Buffer }>;
    const dims = query.length;
    const all = new Float32Array(rows.length * dims);
    rows.forEach((r, i) => all.set(new Float32Array(r.vector.buffer, r.vector.byteOffset, dims), i * dims));
    return exactMatches(
      view,
      metric,
      rows.map((r) => r.entity_key),
      all,
      query,
      k,
    );
  }
}

function handleId(project: string, view: string, field: string): string {
  return `${project}\0${view}\0${field}`;
}

/** The file name stem of an index: project, view and field are identifiers, so the name is safe. */
function fileBase(project: string, view: string, field: string): string {
  return basename(`${project}.${view}.${field}`);
}
