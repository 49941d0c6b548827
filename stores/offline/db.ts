// The offline store's DuckDB: one in-memory instance with a serialised main connection. Streams get a
// connection of their own (a streaming result is invalidated by the next query on its connection); tables
// live in the shared in-memory catalog, so every connection sees them.
import type { DuckDBConnection } from "@duckdb/node-api";
import { connectUtc, openDuckDB, type DuckDBHandle, type DuckDBSettings } from "../../common/duckdb.js";

/** A column of a DuckDB relation as DESCRIBE reports it. */
export interface ColumnInfo {
  name: string;
  type: string;
}

/** The offline store's in-memory DuckDB: callers of the main connection take turns; streams connect anew. */
export class OfflineDuckDB {
  private queue: Promise<unknown> = Promise.resolve();
  private counter = 0;
  private closed = false;

  private constructor(private readonly handle: DuckDBHandle) {}

  /** Opens the instance through common/duckdb (UTC, no extension downloads, the given limits). */
  static async create(settings: DuckDBSettings = {}): Promise<OfflineDuckDB> {
    return new OfflineDuckDB(await openDuckDB(settings));
  }

  /** A fresh name for a table or view of this instance. */
  uniqueName(prefix: string): string {
    this.counter += 1;
    return `__fs_${prefix}_${this.counter}`;
  }

  /** Run `fn` on the main connection, one caller at a time. */
  async use<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error("the DuckDB offline store is closed");
    const run = this.queue.then(() => fn(this.handle.connection));
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

  /** A new connection (in UTC) for a stream; the caller closes it. */
  async connect(): Promise<DuckDBConnection> {
    if (this.closed) throw new Error("the DuckDB offline store is closed");
    return connectUtc(this.handle.instance);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    this.handle.close();
  }
}
