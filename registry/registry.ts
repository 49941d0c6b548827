// The registry: every applied definition of every project, in one SQLite file.
// Each apply is one transaction, so a failed apply leaves the registry as it was.

import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { FstoreError, errorMessage } from "../common/errors.js";
import type {
  DataSourceSpec,
  EntitySpec,
  FeatureServiceSpec,
  FeatureViewSpec,
  MaterializationInterval,
  PipelineSpec,
  RegistryContents,
} from "./types.js";

export type ObjectKind = "entity" | "data_source" | "feature_view" | "feature_service" | "pipeline";

export interface RegistryObjects {
  entities: EntitySpec[];
  dataSources: DataSourceSpec[];
  featureViews: FeatureViewSpec[];
  featureServices: FeatureServiceSpec[];
  pipelines: PipelineSpec[];
}

/** each object kind and the RegistryObjects field holding it */
export const KIND_FIELDS: Array<[ObjectKind, keyof RegistryObjects]> = [
  ["entity", "entities"],
  ["data_source", "dataSources"],
  ["feature_view", "featureViews"],
  ["feature_service", "featureServices"],
  ["pipeline", "pipelines"],
];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS projects (
  project TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  last_updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
  project TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  spec TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project, kind, name)
);
CREATE TABLE IF NOT EXISTS materializations (
  project TEXT NOT NULL,
  view TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS materializations_by_view ON materializations (project, view);
`;

/** A change set computed by plan; applied in one transaction. */
export interface RegistryChange {
  upsert: Array<{ kind: ObjectKind; name: string; spec: unknown }>;
  remove: Array<{ kind: ObjectKind; name: string }>;
  /**
   * stampOf() the objects the change was computed against: the commit refuses it when the registry holds
   * anything else by then, so two concurrent applies cannot mix their changes
   */
  base?: string;
}

/** How long a registry operation waits for another process's write lock before failing. */
export const REGISTRY_BUSY_TIMEOUT_MS = 5000;

/** The registry's objects of a project as one string: equal strings, equal objects. */
export function stampOf(objects: RegistryObjects): string {
  return JSON.stringify(KIND_FIELDS.map(([, field]) => objects[field]));
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

export class Registry {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {}

  static open(path: string): Registry {
    try {
      mkdirSync(dirname(path), { recursive: true });
      const db = new Database(path, { timeout: REGISTRY_BUSY_TIMEOUT_MS });
      db.pragma("journal_mode = WAL");
      db.exec(SCHEMA);
      return new Registry(db, path);
    } catch (e) {
      if (isBusy(e)) throw lockedError(path, "open it", e);
      throw new FstoreError(`registry ${path}: cannot open the SQLite file: ${errorMessage(e)}`, { cause: e });
    }
  }

  /** Runs `fn`, turning SQLite's busy error into one line naming the registry file. */
  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (isBusy(e)) throw lockedError(this.path, what, e);
      throw e;
    }
  }

  /** A counter that changes on every apply, teardown and materialization: cheap to poll. */
  version(project: string): number {
    const row = this.guard("read it", () =>
      this.db.prepare("SELECT version FROM projects WHERE project = ?").get(project),
    ) as { version: number } | undefined;
    return row?.version ?? 0;
  }

  load(project: string): RegistryContents {
    return this.guard("read it", () => this.db.transaction(() => this.loadNow(project))());
  }

  private loadNow(project: string): RegistryContents {
    const contents: RegistryContents = {
      project,
      entities: [],
      dataSources: [],
      featureViews: [],
      featureServices: [],
      pipelines: [],
      materializations: [],
      lastUpdated: null,
    };
    const rows = this.db
      .prepare("SELECT kind, spec FROM objects WHERE project = ? ORDER BY kind, name")
      .all(project) as Array<{ kind: ObjectKind; spec: string }>;
    for (const r of rows) {
      const field = KIND_FIELDS.find(([k]) => k === r.kind)?.[1];
      if (field) (contents[field] as unknown[]).push(JSON.parse(r.spec));
    }
    contents.materializations = (
      this.db
        .prepare("SELECT view, start_ms, end_ms, at_ms FROM materializations WHERE project = ? ORDER BY at_ms, rowid")
        .all(project) as Array<{
        view: string;
        start_ms: number;
        end_ms: number;
        at_ms: number;
      }>
    ).map((r) => ({ view: r.view, start: r.start_ms, end: r.end_ms, at: r.at_ms }));
    const p = this.db.prepare("SELECT last_updated FROM projects WHERE project = ?").get(project) as
      { last_updated: number } | undefined;
    contents.lastUpdated = p?.last_updated ?? null;
    return contents;
  }

  /**
   * Apply a change set atomically. The write lock is taken before the registry is re-read, so a change
   * computed against other objects than the ones there now (change.base) is refused, not mixed in.
   */
  commit(project: string, change: RegistryChange, now = Date.now()): void {
    const upsert = this.db.prepare(
      `INSERT INTO objects (project, kind, name, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (project, kind, name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at`,
    );
    const remove = this.db.prepare("DELETE FROM objects WHERE project = ? AND kind = ? AND name = ?");
    const dropIntervals = this.db.prepare("DELETE FROM materializations WHERE project = ? AND view = ?");
    const apply = this.db.transaction(() => {
      if (change.base !== undefined && stampOf(this.loadNow(project)) !== change.base)
        throw new FstoreError(
          `registry ${this.path}: project "${project}" changed during apply (another apply ran meanwhile); nothing was applied, re-run`,
        );
      for (const o of change.upsert) upsert.run(project, o.kind, o.name, JSON.stringify(o.spec), now, now);
      for (const o of change.remove) {
        remove.run(project, o.kind, o.name);
        if (o.kind === "feature_view") dropIntervals.run(project, o.name);
      }
      this.bump(project, now);
    });
    this.guard("apply", () => apply.immediate());
  }

  addMaterialization(project: string, interval: MaterializationInterval): void {
    const record = this.db.transaction(() => {
      this.db
        .prepare("INSERT INTO materializations (project, view, start_ms, end_ms, at_ms) VALUES (?, ?, ?, ?, ?)")
        .run(project, interval.view, interval.start, interval.end, interval.at);
      this.bump(project, interval.at);
    });
    this.guard("record a materialization", () => record.immediate());
  }

  teardown(project: string): void {
    const drop = this.db.transaction(() => {
      this.db.prepare("DELETE FROM objects WHERE project = ?").run(project);
      this.db.prepare("DELETE FROM materializations WHERE project = ?").run(project);
      this.db.prepare("DELETE FROM projects WHERE project = ?").run(project);
    });
    this.guard("tear down", () => drop.immediate());
  }

  projects(): string[] {
    return (this.db.prepare("SELECT project FROM projects ORDER BY project").all() as Array<{ project: string }>).map(
      (r) => r.project,
    );
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private bump(project: string, now: number): void {
    this.db
      .prepare(
        `INSERT INTO projects (project, version, last_updated) VALUES (?, 1, ?)
         ON CONFLICT (project) DO UPDATE SET version = version + 1, last_updated = excluded.last_updated`,
      )
      .run(project, now);
  }
}

function lockedError(path: string, what: string, cause: unknown): FstoreError {
  return new FstoreError(
    `registry ${path} is locked by another process (waited ${REGISTRY_BUSY_TIMEOUT_MS / 1000} s to ${what}); try again when it finishes`,
    { cause },
  );
}
