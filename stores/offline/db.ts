// One in-memory DuckDB instance with a serialised main connection. Streams get a connection of their own
// (a streaming result is invalidated by the next query on its connection); tables live in the shared
// in-memory catalog, so every connection sees them.
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";

export interface ColumnInfo {
  name: string;
  type: string;
}

/** Instance settings (feature_store.yaml offline_store); unset ones keep DuckDB's defaults. */
export interface DuckSettings {
  memoryLimitBytes?: number;
  tempDirectory?: string;
  threads?: number;
}

export class Duck {
  private queue: Promise<unknown> = Promise.resolve();
  private counter = 0;
  private closed = false;

  private constructor(
    readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
  ) {}

  static async create(settings: DuckSettings = {}): Promise<Duck> {
    // never download extensions at query time (offline machines, reproducible runs); installed ones still load
    const options: Record<string, string> = { autoinstall_known_extensions: "false" };
    // in KiB: DuckDB's own units, whatever spelling feature_store.yaml used
    if (settings.memoryLimitBytes !== undefined)
      options.memory_limit = `${Math.floor(settings.memoryLimitBytes / 1024)}KiB`;
    if (settings.tempDirectory !== undefined) options.temp_directory = settings.tempDirectory;
    if (settings.threads !== undefined) options.threads = String(settings.threads);
    const instance = await DuckDBInstance.create(":memory:", options);
    const conn = await instance.connect();
    await setUtc(conn);
    return new Duck(instance, conn);
  }

  /** A fresh name for a table or view of this instance. */
  uniqueName(prefix: string): string {
    this.counter += 1;
    return `__fs_${prefix}_${this.counter}`;
  }

  /** Run `fn` on the main connection, one caller at a time. */
  async use<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error("the DuckDB offline store is closed");
    const run = this.queue.then(() => fn(this.conn));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async run(sql: string): Promise<void> {
    await this.use((c) => c.run(sql));
  }

  /** All rows of a small result as JS values. */
  async rows(sql: string): Promise<Array<Record<string, unknown>>> {
    return this.use(async (c) => (await c.runAndReadAll(sql)).getRowObjectsJS() as Array<Record<string, unknown>>);
  }

  /** Column names and types of a query or relation. */
  async describe(relationSql: string): Promise<ColumnInfo[]> {
    const rows = await this.rows(`DESCRIBE SELECT * FROM ${relationSql}`);
    return rows.map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
  }

  /** A new connection for a stream; the caller closes it. */
  async connect(): Promise<DuckDBConnection> {
    if (this.closed) throw new Error("the DuckDB offline store is closed");
    const conn = await this.instance.connect();
    await setUtc(conn);
    return conn;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

/**
 * Work in UTC. Without the ICU extension (not bundled here, and never downloaded) DuckDB has no time zones
 * and already treats TIMESTAMPTZ as UTC; with ICU loaded, pin the session zone to UTC.
 */
async function setUtc(conn: DuckDBConnection): Promise<void> {
  const icu = (
    await conn.runAndReadAll(
      "SELECT count(*)::INTEGER AS n FROM duckdb_extensions() WHERE extension_name = 'icu' AND loaded",
    )
  ).getRowObjectsJS();
  if (Number(icu[0]?.n) > 0) await conn.run("SET TimeZone = 'UTC'");
}
