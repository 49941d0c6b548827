// Precomputed recommendation lists (written by `fs recommend batch`, read by store.getPrecomputedRecommendations
// and GET /recommendations/{id}): one JSON text per entity under "<prefix><id>", in Redis (plain strings, or
// JSON.SET when the server has the JSON module) or in a table of the SQLite online store. Each list is written
// by one atomic command or row, so a crash leaves every list either old or new, never cut.

import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { FstoreError, ValidationError, errorMessage, quoteValue } from "../common/errors.js";
import type { RepoConfig } from "../registry/config.js";
import { parseRedisConnectionString } from "./online/redis.js";

export type PrecomputedTarget =
  { type: "redis"; connectionString: string } | { type: "sqlite"; path: string; project: string };

export interface PrecomputedList {
  key: string;
  json: string;
}

export interface PrecomputedStore {
  readonly type: "redis" | "sqlite";
  /** Write every list (each replaces the list stored under its key, whole). */
  write(lists: PrecomputedList[]): Promise<void>;
  /** The JSON text stored under `key`, or null. */
  read(key: string): Promise<string | null>;
  close(): Promise<void>;
}

/** the key prefix notebook 001 writes under */
export const DEFAULT_KEY_PREFIX = "USER:";

/** The SQLite table holding a project's lists, beside its feature tables in the online store file. */
export function precomputedTable(project: string): string {
  return `${project}:recommendations`;
}

/**
 * Where lists go or come from: `type` (default: the online store's), in the online store itself when it is of
 * that type; a Redis target for a SQLite repo takes `redis` ("host:port,db=0", default 127.0.0.1:6379).
 */
export function precomputedTargetOf(
  config: RepoConfig,
  type: "redis" | "sqlite" = config.onlineStore.type,
  redis?: string,
): PrecomputedTarget {
  const online = config.onlineStore;
  if (type === "redis")
    return {
      type,
      connectionString: redis ?? (online.type === "redis" ? online.connectionString : "127.0.0.1:6379"),
    };
  if (online.type !== "sqlite")
    throw new ValidationError(
      `precomputed recommendations: --to sqlite needs a SQLite online store (feature_store.yaml of project "${config.project}" has online_store.type ${online.type}); use --to redis or --to parquet`,
    );
  return { type, path: online.path, project: config.project };
}

export async function openPrecomputed(target: PrecomputedTarget): Promise<PrecomputedStore> {
  return target.type === "redis" ? RedisLists.connect(target.connectionString) : new SqliteLists(target);
}

class RedisLists implements PrecomputedStore {
  readonly type = "redis";
  private constructor(
    private readonly client: Redis,
    /** the server has the JSON module (JSON.SET / JSON.GET) */
    private readonly json: boolean,
  ) {}

  static async connect(connectionString: string): Promise<RedisLists> {
    const opts = parseRedisConnectionString(connectionString);
    const client = new Redis({ ...opts, lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000 });
    client.on("error", () => undefined); // failures surface through the failing commands
    try {
      await client.connect();
    } catch (e) {
      client.disconnect();
      throw new FstoreError(
        `precomputed recommendations: cannot connect to Redis at ${opts.host}:${opts.port}: ${errorMessage(e)}`,
      );
    }
    let json = false;
    try {
      const modules = (await client.call("MODULE", "LIST")) as unknown[];
      json = JSON.stringify(modules).toLowerCase().includes("rejson");
    } catch {
      json = false; // servers that refuse MODULE LIST have no modules we may use
    }
    return new RedisLists(client, json);
  }

  async write(lists: PrecomputedList[]): Promise<void> {
    if (lists.length === 0) return;
    // JSON.SET on a key holding a plain string fails, so the old value goes first, in one transaction
    const p = this.json ? this.client.multi() : this.client.pipeline();
    for (const l of lists) {
      if (this.json) p.unlink(l.key).call("JSON.SET", l.key, "$", l.json);
      else p.set(l.key, l.json);
    }
    const res = await p.exec();
    for (const [err] of res ?? [])
      if (err) throw new FstoreError(`precomputed recommendations: Redis write failed: ${errorMessage(err)}`);
  }

  async read(key: string): Promise<string | null> {
    if (this.json) {
      const type = await this.client.type(key);
      if (type === "ReJSON-RL") return (await this.client.call("JSON.GET", key)) as string | null;
    }
    try {
      return await this.client.get(key);
    } catch (e) {
      throw new FstoreError(`precomputed recommendations: Redis key ${quoteValue(key)}: ${errorMessage(e)}`);
    }
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}

class SqliteLists implements PrecomputedStore {
  readonly type = "sqlite";
  private readonly db: Database.Database;
  private readonly table: string;
  private readonly upsert: Database.Statement<[string, string, number]>;
  private readonly get: Database.Statement<[string], { value: string }>;

  constructor(target: { path: string; project: string }) {
    this.db = new Database(target.path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    this.table = `"${precomputedTable(target.project).replace(/"/g, '""')}"`;
    this.db.exec(
      `CREATE TABLE IF NOT EXISTS ${this.table} (key TEXT PRIMARY KEY, value TEXT NOT NULL, written_ms INTEGER NOT NULL) WITHOUT ROWID`,
    );
    this.upsert = this.db.prepare(`INSERT OR REPLACE INTO ${this.table} (key, value, written_ms) VALUES (?, ?, ?)`);
    this.get = this.db.prepare(`SELECT value FROM ${this.table} WHERE key = ?`);
  }

  async write(lists: PrecomputedList[]): Promise<void> {
    const now = Date.now();
    this.db.transaction(() => {
      for (const l of lists) this.upsert.run(l.key, l.json, now);
    })();
  }

  async read(key: string): Promise<string | null> {
    return this.get.get(key)?.value ?? null;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
