// The one place DuckDB is opened: every instance (offline store, ETL, model artifacts, parquet helpers) gets
// the same settings, and SQL text that names things is quoted the same way everywhere.
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";

/** Instance settings; unset ones keep DuckDB's defaults (80% of RAM, a thread per core, no spill folder). */
export interface DuckDBSettings {
  memoryLimitBytes?: number;
  /** where DuckDB spills what does not fit under the memory limit */
  tempDirectory?: string;
  threads?: number;
}

/** An in-memory DuckDB instance and its first connection, both working in UTC. */
export interface DuckDBHandle {
  instance: DuckDBInstance;
  connection: DuckDBConnection;
  /** Closes the connection and the instance (connections made with `connectUtc` must be closed first). */
  close(): void;
}

/** Opens an in-memory DuckDB: UTC, extensions never downloaded at query time, the given limits. */
export async function openDuckDB(settings: DuckDBSettings = {}): Promise<DuckDBHandle> {
  // offline machines and reproducible runs: an extension that is not installed is an error, not a download
  const options: Record<string, string> = { autoinstall_known_extensions: "false" };
  // in KiB, DuckDB's own unit, whatever spelling the user's configuration had
  if (settings.memoryLimitBytes !== undefined)
    options.memory_limit = `${Math.floor(settings.memoryLimitBytes / 1024)}KiB`;
  if (settings.tempDirectory !== undefined) options.temp_directory = settings.tempDirectory;
  if (settings.threads !== undefined) options.threads = String(settings.threads);
  const instance = await DuckDBInstance.create(":memory:", options);
  const connection = await connectUtc(instance);
  return {
    instance,
    connection,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

/**
 * A new connection of `instance`, in UTC. Without the ICU extension (not bundled, never downloaded) DuckDB
 * has no time zones and treats TIMESTAMPTZ as UTC already; with ICU loaded, the session zone is pinned.
 */
export async function connectUtc(instance: DuckDBInstance): Promise<DuckDBConnection> {
  const conn = await instance.connect();
  const icu = (
    await conn.runAndReadAll(
      "SELECT count(*)::INTEGER AS n FROM duckdb_extensions() WHERE extension_name = 'icu' AND loaded",
    )
  ).getRowObjectsJS();
  if (Number(icu[0]?.n) > 0) await conn.run("SET TimeZone = 'UTC'");
  return conn;
}

/** A quoted SQL identifier: "name" with embedded quotes doubled. Every table and column name goes through it. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A quoted SQL string literal: 'text' with embedded quotes doubled. */
export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  bytes: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * "4GB", "512 MiB", "1.5gb", and DuckDB's own "953.6 MiB" or "512 bytes" -> bytes, to the nearest byte
 * (DuckDB's units: KB = 1000, KiB = 1024); undefined if not a size.
 */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(text);
  const unit = m ? BYTE_UNITS[m[2].toLowerCase()] : undefined;
  return m && unit !== undefined ? Math.round(Number(m[1]) * unit) : undefined;
}
