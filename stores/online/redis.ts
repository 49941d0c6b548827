// Redis online store, Feast's layout: one hash per entity key ("<prefix>:<join key names and values>"),
// one field per feature view holding the packed payload (event/created ts inside, see payload.ts). Views
// over the same entity share the hash, so reading many views of one entity is one HMGET. Reads go over a
// connection of their own (redis_reader.ts); writes and admin commands over ioredis.
//
// Writes go through a Lua script that takes many rows per call and writes a row only when it is not older
// than the stored one (event ts, then created ts). Each script call is atomic. A batch is encoded and
// checked in full before any call, so bad input writes nothing; a crash or lost connection between calls
// leaves each row either old or new (never a mixed payload), and re-running the batch is idempotent
// because older-or-equal rows never replace newer ones.

import { Redis, type ChainableCommander, type RedisOptions } from "ioredis";
import { FstoreError, UnavailableError, ValidationError, errorMessage } from "../../common/errors.js";
import { withTimeout } from "../../common/timeout.js";
import { DEFAULT_REDIS_READ_TIMEOUT_MS, type RedisOnlineConfig } from "../../registry/config.js";
import type { FeatureViewSpec, FieldSpec, VectorMetric } from "../../registry/types.js";
import type { OnlineReadGroup, OnlineReadResult, OnlineStore, OnlineWriteBatch, VectorMatches } from "../types.js";
import { EntityKeyCodec } from "./entity_keys.js";
import { LUA_NOT_OLDER, type PayloadSchema, SchemaBook, encodeRows, payloadFingerprint } from "./payload.js";
import { ReadResults } from "./read_results.js";
import { RedisReadConnection, respBulk } from "./redis_reader.js";
import { LOG_MAX_ENTRIES, RedisVectors, UPSERT_VECTORS_LUA } from "./redis_vectors.js";
import { hnswSettings } from "../vectors/hnsw.js";

/** rows per Lua call: big enough to amortise the call, small enough not to stall the server */
const ROWS_PER_CALL = 500;
/** Lua calls per pipeline, and pipelines kept in flight */
const CALLS_PER_PIPELINE = 8;
const PIPELINES_IN_FLIGHT = 4;
const SCHEMAS_FIELD_KEY = "__fstore_schemas";
/** opening the connections (and loading the write script) gives up after this long */
const CONNECT_TIMEOUT_MS = 5000;
/**
 * A write (or admin command) gives up its ioredis connection after this long without a byte from Redis: a
 * Lua call of ROWS_PER_CALL rows answers in milliseconds, so this is a dead connection, not a slow write.
 */
const WRITE_SOCKET_TIMEOUT_MS = 10_000;

// KEYS: row keys. ARGV[1]: hash field (view), ARGV[2]: key ttl seconds (0 = none), ARGV[3..]: payloads.
const UPSERT_LUA = `${LUA_NOT_OLDER}
local call = redis.call
local field = ARGV[1]
local ttl = tonumber(ARGV[2])
local written = 0
for i = 1, #KEYS do
  local key, new = KEYS[i], ARGV[i + 2]
  if not_older(call('HGET', key, field), new) then
    call('HSET', key, field, new)
    if ttl > 0 then call('EXPIRE', key, ttl) end
    written = written + 1
  end
end
return written
`;

/** Parses Feast's "host:port,db=0,password=...,username=...,ssl=true" into ioredis options. */
export function parseRedisConnectionString(s: string): RedisOptions {
  const opts: RedisOptions = { host: "127.0.0.1", port: 6379 };
  let hostSeen = false;
  for (const raw of s.split(",")) {
    const part = raw.trim();
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq < 0) {
      if (hostSeen) continue; // further startup nodes only matter for a cluster
      hostSeen = true;
      const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(part);
      if (!m) throw new ValidationError(`redis connection_string "${s}": "${part}" is not host:port`);
      opts.host = m[1].replace(/^\[|\]$/g, "");
      if (m[2]) opts.port = Number(m[2]);
      continue;
    }
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    switch (key) {
      case "db": {
        const db = Number(value);
        if (!Number.isInteger(db) || db < 0)
          throw new ValidationError(`redis connection_string "${s}": db must be an integer >= 0, got "${value}"`);
        opts.db = db;
        break;
      }
      case "password":
        opts.password = value;
        break;
      case "username":
        opts.username = value;
        break;
      case "ssl":
        if (/^(true|1|yes)$/i.test(value)) opts.tls = {};
        else if (!/^(false|0|no)$/i.test(value))
          throw new ValidationError(`redis connection_string "${s}": ssl must be true or false, got "${value}"`);
        break;
      default:
        throw new ValidationError(
          `redis connection_string "${s}": unknown option "${key}" (expected db, password, username, ssl)`,
        );
    }
  }
  return opts;
}

function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}

/** Views of a read group whose keys are spelled alike: the hash fields they ask, as RESP text too. */
interface ReadPass {
  codec: EntityKeyCodec;
  fields: string[];
  fieldList: string;
  /** per field: the ReadResults slots asking it */
  slotsOfField: number[][];
}

/** The views of group `g` by key spelling: one pass when they share their join keys. */
function readPasses(
  group: OnlineReadGroup,
  g: number,
  results: ReadResults,
  codecOf: (view: FeatureViewSpec) => EntityKeyCodec,
): ReadPass[] {
  const passes: ReadPass[] = [];
  group.views.forEach(({ view }, v) => {
    const codec = codecOf(view);
    let pass = passes.find((p) => p.codec.spelling === codec.spelling);
    if (pass === undefined) passes.push((pass = { codec, fields: [], fieldList: "", slotsOfField: [] }));
    const f = pass.fields.indexOf(view.name);
    if (f >= 0) pass.slotsOfField[f].push(results.slot(g, v));
    else {
      pass.fields.push(view.name);
      pass.fieldList += respBulk(view.name);
      // made with its element: an empty array grows to 17 slots on its first push
      pass.slotsOfField.push([results.slot(g, v)]);
    }
  });
  return passes;
}

interface RedisView {
  codec: EntityKeyCodec;
  /** the payload schema of the view's current features */
  schema: PayloadSchema;
}

export class RedisOnlineStore implements OnlineStore {
  readonly type = "redis";
  private readonly schemas = new SchemaBook();
  /**
   * key codec and payload schema by spec object (the registry hands the same ones until it reloads)
   * defended by: `npm run bench -- online` redis read 1 entity x 25 views p50
   */
  private readonly views = new WeakMap<FeatureViewSpec, RedisView>();
  private readonly savedSchemas = new Set<string>();
  private upsertSha = "";
  private upsertVectorsSha = "";
  /** the vector indexes of this process, following Redis (redis_vectors.ts) */
  private readonly vectors: RedisVectors;

  private constructor(
    private readonly client: Redis,
    private readonly reader: RedisReadConnection,
    private readonly config: RedisOnlineConfig,
    private readonly readTimeoutMs: number,
  ) {
    this.vectors = new RedisVectors(client, hnswSettings(config.vectorIndex));
  }

  static async connect(config: RedisOnlineConfig): Promise<RedisOnlineStore> {
    const opts = parseRedisConnectionString(config.connectionString);
    const client = new Redis({
      ...opts,
      lazyConnect: true,
      maxRetriesPerRequest: 2,
      connectTimeout: CONNECT_TIMEOUT_MS,
      socketTimeout: WRITE_SOCKET_TIMEOUT_MS,
    });
    // connection errors surface through the failing commands; without a listener ioredis prints each one
    client.on("error", () => undefined);
    const where = `${opts.host}:${opts.port}`;
    const readTimeoutMs = config.readTimeoutMs ?? DEFAULT_REDIS_READ_TIMEOUT_MS;
    const reader = new RedisReadConnection(opts, where, readTimeoutMs);
    const store = new RedisOnlineStore(client, reader, config, readTimeoutMs);
    try {
      await withTimeout(
        client.connect().then(() => store.loadScript()),
        CONNECT_TIMEOUT_MS,
        `Redis did not answer within ${CONNECT_TIMEOUT_MS} ms`,
      );
    } catch (e) {
      client.disconnect();
      await reader.close();
      throw new UnavailableError(
        `online store: cannot connect to Redis at ${where} (connection_string "${config.connectionString}"): ${errorMessage(e)}`,
      );
    }
    return store;
  }

  private async loadScript(): Promise<void> {
    this.upsertSha = (await this.client.script("LOAD", UPSERT_LUA)) as string;
    this.upsertVectorsSha = (await this.client.script("LOAD", UPSERT_VECTORS_LUA)) as string;
  }

  /** "<keyPrefix>:<project>" when a prefix is configured, else "<project>" */
  private base(project: string): string {
    return this.config.keyPrefix ? `${this.config.keyPrefix}:${project}` : project;
  }

  /** The key codec and current payload schema of a view spec. */
  private view(spec: FeatureViewSpec): RedisView {
    let v = this.views.get(spec);
    if (v === undefined) {
      v = { codec: new EntityKeyCodec(spec, true), schema: this.schemas.current(spec) };
      this.views.set(spec, v);
    }
    return v;
  }

  async update(project: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): Promise<void> {
    await this.vectors.update(this.base(project), keep, drop);
    // hashes are created by writes; dropping a view removes its field from its entities' hashes
    for (const v of drop) {
      const pattern = `${globEscape(this.base(project))}:${globEscape(v.entityColumns[0]?.name ?? "")}=*`;
      await this.scanEach(pattern, (keys, p) => {
        for (const k of keys) p.hdel(k, v.name);
      });
    }
  }

  async teardown(project: string, _views: FeatureViewSpec[]): Promise<void> {
    await this.scanEach(`${globEscape(this.base(project))}:*`, (keys, p) => {
      p.unlink(...keys);
    });
    this.savedSchemas.clear();
    this.vectors.forget(this.base(project));
  }

  /** SCAN keys matching `pattern`; each page's keys are handled in one pipeline. */
  private async scanEach(pattern: string, onPage: (keys: string[], p: ChainableCommander) => void): Promise<void> {
    let cursor = "0";
    do {
      const [next, keys] = await this.client.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      if (keys.length) {
        const p = this.client.pipeline();
        onPage(keys, p);
        await execOrThrow(p);
      }
    } while (cursor !== "0");
  }

  private async saveSchema(base: string, schema: PayloadSchema): Promise<void> {
    const id = `${base}|${schema.fingerprint}`;
    if (this.savedSchemas.has(id)) return;
    await this.client.hsetnx(`${base}:${SCHEMAS_FIELD_KEY}`, String(schema.fingerprint), JSON.stringify(schema.fields));
    this.savedSchemas.add(id);
  }

  async write(project: string, view: FeatureViewSpec, batch: OnlineWriteBatch): Promise<number> {
    try {
      return await this.writeRows(project, view, batch);
    } catch (e) {
      throw asStoreError(e, `writing feature view "${view.name}" failed`);
    }
  }

  private async writeRows(project: string, view: FeatureViewSpec, batch: OnlineWriteBatch): Promise<number> {
    const n = batch.length;
    if (n === 0) return 0;
    const base = this.base(project);
    const { codec, schema } = this.view(view);
    const keys = codec.keysOfColumns(batch.keys, n);
    const staged = this.vectors.stage(view, batch);
    const { buf, starts, ends } = encodeRows(view, schema, batch);
    await this.saveSchema(base, schema);
    // a view with vector fields: the script also keeps each field's vectors hash and change log
    const vec = staged && (await this.vectors.scriptParts(base, view, batch, staged));
    const sha = () => (vec ? this.upsertVectorsSha : this.upsertSha);

    const ttl = this.config.keyTtlSeconds > 0 ? String(Math.ceil(this.config.keyTtlSeconds)) : "0";
    const prefix = `${base}:`;
    const callArgs = (start: number): Array<string | Buffer> => {
      const end = Math.min(n, start + ROWS_PER_CALL);
      if (vec) {
        const m = vec.fieldKeys.length / 2;
        const args: Array<string | Buffer> = [];
        for (let r = start; r < end; r++) args.push(prefix + keys[r]);
        args.push(...vec.fieldKeys, view.name, ttl, String(end - start), String(m), String(LOG_MAX_ENTRIES));
        for (let r = start; r < end; r++) args.push(buf.subarray(starts[r], ends[r]));
        for (let r = start; r < end; r++) args.push(vec.entityKeys[r]);
        for (let r = start; r < end; r++) for (let f = 0; f < m; f++) args.push(vec.vectorOf(r, f));
        return args;
      }
      const args = new Array<string | Buffer>(2 + 2 * (end - start));
      let a = 0;
      for (let r = start; r < end; r++) args[a++] = prefix + keys[r];
      args[a++] = view.name;
      args[a++] = ttl;
      for (let r = start; r < end; r++) args[a++] = buf.subarray(starts[r], ends[r]);
      return args;
    };

    const numKeys = (start: number) => Math.min(ROWS_PER_CALL, n - start) + (vec ? vec.fieldKeys.length : 0);
    let written = 0;
    const inFlight = new Set<Promise<void>>();
    const rowsPerPipeline = ROWS_PER_CALL * CALLS_PER_PIPELINE;
    for (let start = 0; start < n; start += rowsPerPipeline) {
      const end = Math.min(n, start + rowsPerPipeline);
      const p = this.client.pipeline();
      const starts: number[] = [];
      for (let s = start; s < end; s += ROWS_PER_CALL) {
        starts.push(s);
        p.evalsha(sha(), numKeys(s), ...callArgs(s));
      }
      const job = p.exec().then(async (res) => {
        for (let i = 0; i < starts.length; i++) {
          const [err, count] = res?.[i] ?? [new Error("no reply"), 0];
          if (err && /NOSCRIPT/.test(err.message)) {
            // the server lost the script (restart, SCRIPT FLUSH): load it again and redo this call
            await this.loadScript();
            written += Number(await this.client.evalsha(sha(), numKeys(starts[i]), ...callArgs(starts[i])));
          } else if (err) {
            throw redisFailure(err, `writing feature view "${view.name}" failed`);
          } else {
            written += Number(count);
          }
        }
      });
      inFlight.add(job);
      void job.finally(() => inFlight.delete(job)).catch(() => undefined);
      if (inFlight.size >= PIPELINES_IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    return written;
  }

  async read(project: string, groups: OnlineReadGroup[]): Promise<OnlineReadResult[][]> {
    const prefix = `${this.base(project)}:`;
    const results = new ReadResults(groups, this.schemas, (spec) => this.view(spec).schema);
    // one HMGET per distinct entity of a pass, for every view (hash field) the pass asks
    const replies: Array<{ pass: ReadPass; rows: number[] }> = [];
    let commands = "";
    groups.forEach((group, g) => {
      if (group.entityKeys.length === 0) return;
      for (const pass of readPasses(group, g, results, (spec) => this.view(spec).codec)) {
        const keys = pass.codec.keysOfRows(group.entityKeys, prefix);
        const head = `*${2 + pass.fields.length}\r\n$5\r\nHMGET\r\n`;
        const rowsOf = new Map<string, number[]>();
        for (let row = 0; row < keys.length; row++) {
          const rows = rowsOf.get(keys[row]);
          if (rows) {
            rows.push(row);
            continue;
          }
          const fresh = [row];
          rowsOf.set(keys[row], fresh);
          replies.push({ pass, rows: fresh });
          commands += head + respBulk(keys[row]) + pass.fieldList;
        }
      }
    });
    if (replies.length === 0) return results.finish();

    // payloads of a schema this process has not seen yet: kept (copied) until it is loaded
    const later: Array<{ slot: number; row: number; view: string; payload: Buffer }> = [];
    await this.reader.send(commands, replies.length, (k, b, starts, lens) => {
      const { pass, rows } = replies[k];
      for (let f = 0; f < pass.fields.length; f++) {
        const len = lens[f];
        if (len < 0) continue;
        const at = starts[f];
        for (const slot of pass.slotsOfField[f])
          for (const row of rows)
            if (!results.decode(slot, row, b, at))
              later.push({ slot, row, view: pass.fields[f], payload: Buffer.from(b.subarray(at, at + len)) });
      }
    });
    if (later.length) {
      const base = this.base(project);
      await this.loadSchemas(base, [...new Set(later.map((l) => payloadFingerprint(l.payload)))]);
      for (const { slot, row, view, payload } of later) {
        if (!results.decode(slot, row, payload, 0))
          throw new FstoreError(
            `online store (redis): a payload of feature view "${view}" was written with an unknown schema (fingerprint ${payloadFingerprint(payload)}); re-materialize the view`,
          );
      }
    }
    return results.finish();
  }

  private async loadSchemas(base: string, fingerprints: number[]): Promise<void> {
    const rows = await this.client
      .hmget(`${base}:${SCHEMAS_FIELD_KEY}`, ...fingerprints.map(String))
      .catch((e: unknown) => Promise.reject(asStoreError(e, "reading payload schemas failed")));
    for (const r of rows) if (r) this.schemas.add(JSON.parse(r) as FieldSpec[]);
  }

  async searchVectors(
    project: string,
    view: FeatureViewSpec,
    field: FieldSpec,
    query: Float32Array,
    k: number,
    opts: { exact: boolean; metric: VectorMetric },
  ): Promise<VectorMatches> {
    return this.vectors.search(this.base(project), view, field, query, k, opts);
  }

  /** Both connections answer a PING within the read timeout. */
  async health(): Promise<void> {
    const bound = `online store (redis): ${this.reader.where} did not answer PING within ${this.readTimeoutMs} ms`;
    await Promise.all([this.reader.ping(), withTimeout(this.client.ping(), this.readTimeoutMs, bound)]);
  }

  async close(): Promise<void> {
    await this.reader.close();
    if (this.client.status === "end") return;
    await this.client.quit();
  }
}

/** Redis answering an error is a fault; a connection lost or timed out is Redis being unavailable. */
function redisFailure(err: Error, what: string): FstoreError {
  const message = `online store (redis): ${what}: ${err.message}`;
  return err.name === "ReplyError" ? new FstoreError(message) : new UnavailableError(message);
}

/** An ioredis failure as an FstoreError (ours pass through). */
function asStoreError(e: unknown, what: string): FstoreError {
  if (e instanceof FstoreError) return e;
  return redisFailure(e instanceof Error ? e : new Error(String(e)), what);
}

async function execOrThrow(p: ChainableCommander): Promise<unknown[]> {
  const res = await p.exec();
  if (!res) throw new FstoreError("online store (redis): pipeline aborted");
  return res.map(([err, v]) => {
    if (err) throw redisFailure(err, "a command failed");
    return v;
  });
}
