import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { parseByteSize } from "../common/duckdb.js";
import { ValidationError, errorMessage } from "../common/errors.js";
import { acceptedHint, quoteName, unknownKey } from "./options.js";

/** HNSW settings of the store's vector indexes (online_store.vector_index); unset ones keep fstore's defaults. */
export interface VectorIndexConfig {
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
}

export interface SqliteOnlineConfig {
  type: "sqlite";
  /** absolute path */
  path: string;
  vectorIndex?: VectorIndexConfig;
}

export interface RedisOnlineConfig {
  type: "redis";
  /** "host:port,db=0,password=...,ssl=false" as in Feast */
  connectionString: string;
  /** 0 = keys never expire */
  keyTtlSeconds: number;
  /** key prefix; defaults to the project name */
  keyPrefix?: string;
  /** the longest a read or a health check waits for Redis before failing; default DEFAULT_REDIS_READ_TIMEOUT_MS */
  readTimeoutMs?: number;
  vectorIndex?: VectorIndexConfig;
}

/** A read waits this long for Redis by default: far above a healthy read, short enough to answer 503 quickly. */
export const DEFAULT_REDIS_READ_TIMEOUT_MS = 500;

export type OnlineStoreConfig = SqliteOnlineConfig | RedisOnlineConfig;

/** DuckDB settings of the offline store; unset ones keep DuckDB's defaults (80% of RAM, a thread per core). */
export interface DuckDBOfflineConfig {
  type: "duckdb";
  /** DuckDB's memory_limit, e.g. "4GB"; past it DuckDB spills what it can to temp_directory */
  memoryLimit?: string;
  /** memoryLimit in bytes */
  memoryLimitBytes?: number;
  /** absolute path of DuckDB's temp_directory (where it spills) */
  tempDirectory?: string;
  threads?: number;
}

export interface RepoConfig {
  /** absolute path of the repo folder */
  repoPath: string;
  project: string;
  /** absolute path of the registry SQLite file */
  registryPath: string;
  registryTtlSeconds: number;
  /** Feast's local provider, the only one fstore has */
  provider: "local";
  onlineStore: OnlineStoreConfig;
  offlineStore: DuckDBOfflineConfig;
  /** the only value accepted: fstore's online key format does not vary */
  entityKeySerializationVersion: 3;
}

export const CONFIG_FILE = "feature_store.yaml";

type Raw = Record<string, unknown>;

/**
 * The keys feature_store.yaml may hold, per section: any other key is refused (a misspelt `onlne_store:`
 * would otherwise fall back to the default store without a word).
 */
export const CONFIG_KEYS = {
  top: [
    "project",
    "registry",
    "provider",
    "online_store",
    "offline_store",
    "entity_key_serialization_version",
    "registry_ttl_sec",
  ],
  registry: ["path", "cache_ttl_seconds"],
  sqlite: ["type", "path", "vector_index"],
  redis: ["type", "connection_string", "key_ttl_seconds", "key_prefix", "read_timeout_ms", "vector_index"],
  vectorIndex: ["connectivity", "expansion_add", "expansion_search"],
  offline: ["type", "memory_limit", "temp_directory", "threads"],
} as const satisfies Record<string, readonly string[]>;

/** online_store.vector_index: HNSW settings, each a whole number >= 1 (connectivity >= 2). */
function vectorIndexConfig(os: Raw, file: string): VectorIndexConfig | undefined {
  const v = os.vector_index;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v))
    throw new ValidationError(
      `${file}: online_store.vector_index must be a mapping (connectivity, expansion_add, expansion_search)`,
    );
  const raw = v as Raw;
  onlyKeys(raw, CONFIG_KEYS.vectorIndex, file, "online_store.vector_index.");
  const int = (key: string, min: number): number | undefined => {
    const x = raw[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== "number" || !Number.isInteger(x) || x < min || x > 100_000)
      throw new ValidationError(
        `${file}: online_store.vector_index.${key} must be a whole number from ${min} to 100000, got ${JSON.stringify(x)}`,
      );
    return x;
  };
  return {
    connectivity: int("connectivity", 2),
    expansionAdd: int("expansion_add", 1),
    expansionSearch: int("expansion_search", 1),
  };
}

/** Refuses a key of `section` not in `accepted`, naming the file, the key (with its section) and those accepted. */
function onlyKeys(section: Raw, accepted: readonly string[], file: string, prefix = "", where = ""): void {
  const bad = unknownKey(section, accepted);
  if (bad !== undefined)
    throw new ValidationError(
      `${file}: unknown key ${quoteName(prefix + bad)}${where} ${acceptedHint(bad, accepted, prefix)}`,
    );
}

/** A mapping section of the file (not a list or a scalar), or undefined when absent. */
function mapping(raw: Raw, key: string, file: string, expected: string): Raw | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v))
    throw new ValidationError(
      `${file}: "${key}" must be a mapping (${expected}), got ${Array.isArray(v) ? "a list" : JSON.stringify(v)}`,
    );
  return v as Raw;
}

/** A number of seconds >= 0, or `dflt` when absent. */
function seconds(raw: Raw, key: string, file: string, dflt: number, label = key): number {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
    throw new ValidationError(`${file}: ${label} must be a number of seconds >= 0, got ${JSON.stringify(v)}`);
  return v;
}

function str(raw: Raw, key: string, file: string, dflt?: string): string {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (dflt !== undefined) return dflt;
    throw new ValidationError(`${file}: "${key}" is required`);
  }
  if (typeof v !== "string" || !v)
    throw new ValidationError(`${file}: "${key}" must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

export function loadRepoConfig(repoPath: string): RepoConfig {
  const repo = resolve(repoPath);
  const file = join(repo, CONFIG_FILE);
  if (!existsSync(file))
    throw new ValidationError(
      `${file} not found: a feature repository needs a ${CONFIG_FILE} (run "fs init" to create one)`,
    );
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ValidationError(`${file}: invalid YAML: ${errorMessage(e)}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new ValidationError(`${file}: expected a mapping of keys (project, registry, online_store, ...)`);
  return parseRepoConfig(raw as Raw, repo, file);
}

export function parseRepoConfig(raw: Raw, repo: string, file = CONFIG_FILE): RepoConfig {
  const abs = (p: string) => (isAbsolute(p) ? p : join(repo, p));
  onlyKeys(raw, CONFIG_KEYS.top, file);
  const project = str(raw, "project", file);
  if (!/^[A-Za-z0-9_]+$/.test(project))
    throw new ValidationError(`${file}: project "${project}" must hold only letters, digits and _`);

  let registryPath = "data/registry.db";
  let registryTtlSeconds = 10;
  const reg = raw.registry;
  if (typeof reg === "string") registryPath = reg;
  else if (typeof reg === "object" && reg !== null && !Array.isArray(reg)) {
    const r = reg as Raw;
    onlyKeys(r, CONFIG_KEYS.registry, file, "registry.");
    registryPath = str(r, "path", `${file} registry`, registryPath);
    registryTtlSeconds = seconds(r, "cache_ttl_seconds", file, registryTtlSeconds, "registry.cache_ttl_seconds");
  } else if (reg !== undefined && reg !== null)
    throw new ValidationError(`${file}: "registry" must be a path or a mapping with "path"`);
  registryTtlSeconds = seconds(raw, "registry_ttl_sec", file, registryTtlSeconds);

  const os = mapping(raw, "online_store", file, "type: sqlite with path, or type: redis") ?? { type: "sqlite" };
  const osType = str(os, "type", `${file} online_store`, "sqlite");
  let onlineStore: OnlineStoreConfig;
  if (osType === "sqlite") {
    onlyKeys(os, CONFIG_KEYS.sqlite, file, "online_store.", " (online_store type sqlite)");
    onlineStore = {
      type: "sqlite",
      path: abs(str(os, "path", `${file} online_store`, "data/online_store.db")),
      vectorIndex: vectorIndexConfig(os, file),
    };
  } else if (osType === "redis") {
    onlyKeys(os, CONFIG_KEYS.redis, file, "online_store.", " (online_store type redis)");
    const keyPrefix = os.key_prefix;
    if (keyPrefix !== undefined && keyPrefix !== null && (typeof keyPrefix !== "string" || !keyPrefix))
      throw new ValidationError(
        `${file}: online_store.key_prefix must be a non-empty string, got ${JSON.stringify(keyPrefix)}${typeof keyPrefix === "number" || typeof keyPrefix === "boolean" ? ` (quote it in YAML: key_prefix: "${keyPrefix}")` : ""}`,
      );
    const readTimeoutMs = os.read_timeout_ms ?? DEFAULT_REDIS_READ_TIMEOUT_MS;
    if (typeof readTimeoutMs !== "number" || !Number.isInteger(readTimeoutMs) || readTimeoutMs < 1)
      throw new ValidationError(
        `${file}: online_store.read_timeout_ms must be a whole number of milliseconds >= 1, got ${JSON.stringify(readTimeoutMs)}`,
      );
    onlineStore = {
      type: "redis",
      connectionString: str(os, "connection_string", `${file} online_store`, "127.0.0.1:6379"),
      keyTtlSeconds: seconds(os, "key_ttl_seconds", file, 0, "online_store.key_ttl_seconds"),
      keyPrefix: typeof keyPrefix === "string" ? keyPrefix : undefined,
      readTimeoutMs,
      vectorIndex: vectorIndexConfig(os, file),
    };
  } else {
    throw new ValidationError(`${file}: online_store.type "${osType}" is not supported (expected sqlite or redis)`);
  }

  const off = mapping(raw, "offline_store", file, "type: duckdb") ?? { type: "duckdb" };
  const offType = str(off, "type", `${file} offline_store`, "duckdb");
  if (offType !== "duckdb" && offType !== "file")
    throw new ValidationError(`${file}: offline_store.type "${offType}" is not supported (expected duckdb or file)`);
  onlyKeys(off, CONFIG_KEYS.offline, file, "offline_store.");
  const offlineStore: DuckDBOfflineConfig = { type: "duckdb" };
  if (off.memory_limit !== undefined) {
    const limit =
      typeof off.memory_limit === "number"
        ? String(off.memory_limit)
        : str(off, "memory_limit", `${file} offline_store`);
    const bytes = parseByteSize(limit);
    if (bytes === undefined)
      throw new ValidationError(
        `${file}: offline_store.memory_limit ${JSON.stringify(off.memory_limit)} is not a size: expected e.g. "512MB", "4GB" or "2GiB"`,
      );
    if (bytes < 64 * 2 ** 20)
      throw new ValidationError(
        `${file}: offline_store.memory_limit "${limit}" is below 64MB, too little for DuckDB to run queries`,
      );
    offlineStore.memoryLimit = limit;
    offlineStore.memoryLimitBytes = bytes;
  }
  if (off.temp_directory !== undefined)
    offlineStore.tempDirectory = abs(str(off, "temp_directory", `${file} offline_store`));
  if (off.threads !== undefined) {
    const threads = off.threads;
    if (typeof threads !== "number" || !Number.isInteger(threads) || threads < 1)
      throw new ValidationError(
        `${file}: offline_store.threads must be a whole number >= 1, got ${JSON.stringify(off.threads)}`,
      );
    offlineStore.threads = threads;
  }

  return {
    repoPath: repo,
    project,
    registryPath: abs(registryPath),
    registryTtlSeconds,
    provider: acceptedKeyValue(
      raw,
      "provider",
      "local",
      file,
      "fstore's stores are the ones feature_store.yaml names, as with Feast's local provider",
    ),
    onlineStore,
    offlineStore,
    entityKeySerializationVersion: acceptedKeyValue(
      raw,
      "entity_key_serialization_version",
      3,
      file,
      "fstore's online keys have a single format of their own",
    ),
  };
}

/**
 * A Feast key fstore has exactly one value for: unset or that value is fine; anything else is refused,
 * since silently ignoring it would let a repo believe it got another provider or key format.
 */
function acceptedKeyValue<T extends string | number>(raw: Raw, key: string, only: T, file: string, why: string): T {
  const v = raw[key];
  if (v === undefined || v === null || v === only || (typeof only === "number" && v === String(only))) return only;
  throw new ValidationError(
    `${file}: ${key} ${JSON.stringify(v)} is not supported: expected ${JSON.stringify(only)} (the default; ${why})`,
  );
}
