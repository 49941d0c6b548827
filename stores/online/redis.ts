// Redis online store, Feast's layout: one hash per entity key ("<prefix>:<join key names and values>"),
// one field per feature view holding the packed payload (event/created ts inside, see codec.ts). Views
// over the same entity share the hash, so reading many views of one entity is one HMGET.
//
// Writes go through a Lua script that takes many rows per call and writes a row only when it is not older
// than the stored one (event ts, then created ts). Each script call is atomic. A batch is encoded and
// checked in full before any call, so bad input writes nothing; a crash or lost connection between calls
// leaves each row either old or new (never a mixed payload), and re-running the batch is idempotent
// because older-or-equal rows never replace newer ones.

import { Redis, type ChainableCommander, type RedisOptions } from "ioredis";
import { FstoreError, ValidationError, errorMessage } from "../../common/errors.js";
import type { RedisOnlineConfig } from "../../registry/config.js";
import type { FeatureViewSpec, FieldSpec } from "../../registry/types.js";
import type { OnlineReadRequest, OnlineReadResult, OnlineStore, OnlineWriteBatch } from "../types.js";
import {
  EntityKeyCodec,
  ReadResults,
  SchemaBook,
  TS_OFFSET,
  dataViewOf,
  decodeInto,
  encodeRows,
  keysOfRequests,
  payloadFingerprint,
  releaseDecodeBuffer,
  type PayloadSchema,
} from "./codec.js";
import { RedisReadConnection, respBulk } from "./redis_reader.js";

/** rows per Lua call: big enough to amortise the call, small enough not to stall the server */
const ROWS_PER_CALL = 500;
/** Lua calls per pipeline, and pipelines kept in flight */
const CALLS_PER_PIPELINE = 8;
const PIPELINES_IN_FLIGHT = 4;
const SCHEMAS_FIELD_KEY = "__fstore_schemas";

// KEYS: row keys. ARGV[1]: hash field (view), ARGV[2]: key ttl seconds (0 = none), ARGV[3..]: payloads.
const UPSERT_LUA = `
local call, unpack = redis.call, struct.unpack
local field = ARGV[1]
local ttl = tonumber(ARGV[2])
local written = 0
for i = 1, #KEYS do
  local key, new = KEYS[i], ARGV[i + 2]
  local old = call('HGET', key, field)
  local ok = true
  if old then
    local oe, oc = unpack('<dd', old, ${TS_OFFSET + 1})
    local ne, nc = unpack('<dd', new, ${TS_OFFSET + 1})
    ok = ne > oe or (ne == oe and nc >= oc)
  end
  if ok then
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

/** Requests reading the same entity rows: the views (hash fields) they ask, as RESP text too. */
interface ReadGroup {
  keys: string[];
  views: string[];
  fieldList: string;
  /** per view: the requests asking it */
  requestsOfView: number[][];
}

export class RedisOnlineStore implements OnlineStore {
  readonly type = "redis";
  private readonly schemas = new SchemaBook();
  private readonly keyCodecs = new WeakMap<FeatureViewSpec, EntityKeyCodec>();
  private readonly savedSchemas = new Set<string>();
  private upsertSha = "";

  private constructor(
    private readonly client: Redis,
    private readonly reader: RedisReadConnection,
    private readonly config: RedisOnlineConfig,
  ) {}

  static async connect(config: RedisOnlineConfig): Promise<RedisOnlineStore> {
    const opts = parseRedisConnectionString(config.connectionString);
    const client = new Redis({ ...opts, lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000 });
    // connection errors surface through the failing commands; without a listener ioredis prints each one
    client.on("error", () => undefined);
    try {
      await client.connect();
    } catch (e) {
      client.disconnect();
      throw new FstoreError(
        `online store: cannot connect to Redis at ${opts.host}:${opts.port} (connection_string "${config.connectionString}"): ${errorMessage(e)}`,
      );
    }
    const reader = new RedisReadConnection({ ...opts, connectTimeout: 5000 }, `${opts.host}:${opts.port}`);
    const store = new RedisOnlineStore(client, reader, config);
    await store.loadScript();
    return store;
  }

  private async loadScript(): Promise<void> {
    this.upsertSha = (await this.client.script("LOAD", UPSERT_LUA)) as string;
  }

  /** "<keyPrefix>:<project>" when a prefix is configured, else "<project>" */
  private base(project: string): string {
    return this.config.keyPrefix ? `${this.config.keyPrefix}:${project}` : project;
  }

  private keyCodec(view: FeatureViewSpec): EntityKeyCodec {
    let c = this.keyCodecs.get(view);
    if (!c) {
      c = new EntityKeyCodec(view, true);
      this.keyCodecs.set(view, c);
    }
    return c;
  }

  async update(project: string, _keep: FeatureViewSpec[], drop: FeatureViewSpec[]): Promise<void> {
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
    const n = batch.length;
    if (n === 0) return 0;
    const base = this.base(project);
    const keys = this.keyCodec(view).keysOfColumns(batch.keys, n);
    const schema = this.schemas.ofView(view);
    const { buf, offsets } = encodeRows(view, schema, batch);
    await this.saveSchema(base, schema);

    const ttl = this.config.keyTtlSeconds > 0 ? String(Math.ceil(this.config.keyTtlSeconds)) : "0";
    const prefix = `${base}:`;
    const callArgs = (start: number): Array<string | Buffer> => {
      const end = Math.min(n, start + ROWS_PER_CALL);
      const args = new Array<string | Buffer>(2 + 2 * (end - start));
      let a = 0;
      for (let r = start; r < end; r++) args[a++] = prefix + keys[r];
      args[a++] = view.name;
      args[a++] = ttl;
      for (let r = start; r < end; r++) args[a++] = buf.subarray(offsets[r], offsets[r + 1]);
      return args;
    };

    let written = 0;
    const inFlight = new Set<Promise<void>>();
    const rowsPerPipeline = ROWS_PER_CALL * CALLS_PER_PIPELINE;
    for (let start = 0; start < n; start += rowsPerPipeline) {
      const end = Math.min(n, start + rowsPerPipeline);
      const p = this.client.pipeline();
      const starts: number[] = [];
      for (let s = start; s < end; s += ROWS_PER_CALL) {
        starts.push(s);
        p.evalsha(this.upsertSha, Math.min(ROWS_PER_CALL, n - s), ...callArgs(s));
      }
      const job = p.exec().then(async (res) => {
        for (let i = 0; i < starts.length; i++) {
          const [err, count] = res?.[i] ?? [new Error("no reply"), 0];
          if (err && /NOSCRIPT/.test(err.message)) {
            // the server lost the script (restart, SCRIPT FLUSH): load it again and redo this call
            await this.loadScript();
            written += Number(
              await this.client.evalsha(this.upsertSha, Math.min(ROWS_PER_CALL, n - starts[i]), ...callArgs(starts[i])),
            );
          } else if (err) {
            throw new FstoreError(`online store (redis): writing feature view "${view.name}" failed: ${err.message}`);
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

  async read(project: string, requests: OnlineReadRequest[]): Promise<OnlineReadResult[]> {
    const base = this.base(project);
    const results = new ReadResults(requests);
    // requests given the same keys array (the facade passes one per join-key set) form a group: one HMGET
    // per distinct entity of the group, for every view the group asks (rendered as RESP text once)
    const groups = new Map<string[], ReadGroup>();
    const keysOf = keysOfRequests(requests, (v) => this.keyCodec(v), `${base}:`);
    for (let q = 0; q < requests.length; q++) {
      const keys = keysOf[q];
      if (keys.length === 0) continue;
      let g = groups.get(keys);
      if (!g) groups.set(keys, (g = { keys, views: [], fieldList: "", requestsOfView: [] }));
      const name = requests[q].view.name;
      const f = g.views.indexOf(name);
      if (f >= 0) g.requestsOfView[f].push(q);
      else {
        g.views.push(name);
        g.fieldList += respBulk(name);
        // made with its element: an empty array grows to 17 slots on its first push
        g.requestsOfView.push([q]);
      }
    }
    /** per command (reply): its group and the rows of the entity it reads */
    const replies: Array<{ g: ReadGroup; rows: number[] }> = [];
    let commands = "";
    for (const g of groups.values()) {
      const head = `*${2 + g.views.length}\r\n$5\r\nHMGET\r\n`;
      const rowsOf = new Map<string, number[]>();
      for (let row = 0; row < g.keys.length; row++) {
        const key = g.keys[row];
        const rows = rowsOf.get(key);
        if (rows) {
          rows.push(row);
          continue;
        }
        const fresh = [row];
        rowsOf.set(key, fresh);
        replies.push({ g, rows: fresh });
        commands += head + respBulk(key) + g.fieldList;
      }
    }
    if (replies.length === 0) return results.finish();

    const current = requests.map((r) => this.schemas.ofView(r.view));
    const columns = current.map((schema, q) => results.columnsFor(q, schema));
    const eventTs = requests.map((_, q) => results.eventTsOf(q));
    // payloads of a schema this process has not seen yet: kept (copied) until it is loaded
    const later: Array<{ req: number; row: number; payload: Buffer }> = [];
    try {
      await this.reader.send(commands, replies.length, (k, b, starts, lens) => {
        const { g, rows } = replies[k];
        const dv = dataViewOf(b);
        for (let f = 0; f < g.views.length; f++) {
          const len = lens[f];
          if (len < 0) continue;
          const at = starts[f];
          const fp = payloadFingerprint(b, at);
          for (const q of g.requestsOfView[f]) {
            const cur = current[q];
            const known = fp === cur.fingerprint ? cur : this.schemas.get(fp);
            for (const row of rows) {
              if (known === cur) eventTs[q][row] = decodeInto(b, dv, at, cur, columns[q], row);
              else if (known) results.decode(q, row, b, at, known);
              else later.push({ req: q, row, payload: Buffer.from(b.subarray(at, at + len)) });
            }
          }
        }
      });
    } finally {
      releaseDecodeBuffer();
    }
    if (later.length) {
      await this.loadSchemas(base, [...new Set(later.map((l) => payloadFingerprint(l.payload)))]);
      for (const { req, row, payload } of later) {
        const schema = this.schemas.get(payloadFingerprint(payload));
        if (!schema)
          throw new FstoreError(
            `online store (redis): a payload of feature view "${requests[req].view.name}" was written with an unknown schema (fingerprint ${payloadFingerprint(payload)}); re-materialize the view`,
          );
        results.decode(req, row, payload, 0, schema);
      }
    }
    return results.finish();
  }

  private async loadSchemas(base: string, fingerprints: number[]): Promise<void> {
    const rows = await this.client.hmget(`${base}:${SCHEMAS_FIELD_KEY}`, ...fingerprints.map(String));
    for (const r of rows) if (r) this.schemas.add(JSON.parse(r) as FieldSpec[]);
  }

  async health(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    await this.reader.close();
    if (this.client.status === "end") return;
    await this.client.quit();
  }
}

async function execOrThrow(p: ChainableCommander): Promise<unknown[]> {
  const res = await p.exec();
  if (!res) throw new FstoreError("online store (redis): pipeline aborted");
  return res.map(([err, v]) => {
    if (err) throw new FstoreError(`online store (redis): ${err.message}`);
    return v;
  });
}
