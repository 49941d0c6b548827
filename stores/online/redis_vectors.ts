// The Redis store's vector indexes. Several processes (on several hosts) share one Redis, so the index
// cannot live in one file beside the data. Redis holds the truth for each (project, view, vector field):
//   <base>:__fstore_vec                         hash "<view>:<field>" -> "<dims>|<metric>|<uuid>", the
//                                               generation: a new one makes every process rebuild
//   <base>:__fstore_vec:<view>:<field>:vectors  hash: entity key -> float32 bytes (the current vectors)
//   <base>:__fstore_vec:<view>:<field>:log      stream of changes: k = entity key, v = bytes ("" = removed)
// The write script updates the vectors hash and appends to the log in the same atomic call that writes the
// row, and only for rows it wrote (an older row is skipped for both). Each process builds its own HNSW
// index in memory: on first use from the vectors hash (HSCAN, after noting the log's last id), then
// before each search it applies the log entries after the last one it applied. A log trimmed past that
// point, or a new generation, makes it rebuild. A crash anywhere leaves Redis consistent (one script
// call per batch of rows), and a process's index is rebuilt from Redis whenever it starts.

import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { type FeatureViewSpec, type FieldSpec, type VectorMetric, vectorFields } from "../../registry/types.js";
import type { OnlineWriteBatch, VectorMatches } from "../types.js";
import { type BatchVectors, batchVectors } from "../vectors/batch.js";
import { DEFAULT_HNSW, type HnswSettings, type UsearchIndex, addThreads, newIndex } from "../vectors/hnsw.js";
import { EntityKeyCodec } from "./entity_keys.js";
import { exactMatches, indexMatches } from "./vector_matches.js";
import { LUA_NOT_OLDER } from "./payload.js";

/** log entries kept per index (approximately): a process further behind rebuilds from the vectors hash */
export const LOG_MAX_ENTRIES = 1_000_000;

// KEYS: n row keys, then per vector field its vectors hash and its log. ARGV: view, key ttl, n, m (vector
// fields), log length, then n payloads, n entity keys (without names), n * m vectors (row by row; "" = none).
export const UPSERT_VECTORS_LUA = `${LUA_NOT_OLDER}
local call = redis.call
local view, ttl, n, m, maxlen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local written = 0
for i = 1, n do
  local key, new = KEYS[i], ARGV[5 + i]
  if not_older(call('HGET', key, view), new) then
    call('HSET', key, view, new)
    if ttl > 0 then call('EXPIRE', key, ttl) end
    written = written + 1
    local ek = ARGV[5 + n + i]
    for j = 1, m do
      local v = ARGV[5 + 2 * n + (i - 1) * m + j]
      local vh, log = KEYS[n + 2 * j - 1], KEYS[n + 2 * j]
      if v == '' then call('HDEL', vh, ek) else call('HSET', vh, ek, v) end
      call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'k', ek, 'v', v)
    end
  end
end
return written
`;

interface Handle {
  gen: string;
  dims: number;
  metric: VectorMetric;
  index: UsearchIndex;
  labelOf: Map<string, number>;
  keyOf: Map<number, string>;
  nextLabel: number;
  /** the id of the last log entry applied */
  lastId: string;
}

/** Stream ids "ms-seq" in order. */
function idAfter(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am > bm || (am === bm && as > bs);
}

function vectorBytes(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export class RedisVectors {
  private readonly handles = new Map<string, Handle>();

  constructor(
    private readonly client: Redis,
    private readonly settings: HnswSettings = DEFAULT_HNSW,
  ) {}

  /** the hash of the project's indexes: "<view>:<field>" -> generation */
  private indexesKey(base: string): string {
    return `${base}:__fstore_vec`;
  }

  keysOf(base: string, view: string, field: string): { vectors: string; log: string } {
    const k = `${base}:__fstore_vec:${view}:${field}`;
    return { vectors: `${k}:vectors`, log: `${k}:log` };
  }

  private genOf(field: FieldSpec): string {
    return `${field.vectorLength}|${field.vectorSearchMetric ?? "cosine"}`;
  }

  // ------------------------------------------------------------ schema

  /** Indexes of `keep` exist with their length and metric (a change starts a new generation); others go. */
  async update(base: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): Promise<void> {
    for (const v of drop) await this.dropIndexes(base, v.name, new Set());
    for (const v of keep) {
      const fields = v.online ? vectorFields(v) : [];
      await this.dropIndexes(base, v.name, new Set(fields.map((f) => f.name)));
      for (const f of fields) await this.ensure(base, v.name, f);
    }
  }

  /** The generation of a field's index, created when missing or made for another length or metric. */
  private async ensure(base: string, view: string, f: FieldSpec): Promise<string> {
    const keys = this.keysOf(base, view, f.name);
    const want = this.genOf(f);
    const gen = await this.client.hget(this.indexesKey(base), `${view}:${f.name}`);
    if (gen !== null && gen.startsWith(`${want}|`)) return gen;
    const next = `${want}|${randomUUID()}`;
    const m = this.client.multi();
    // vectors of another length are void; under another metric they are rebuilt into a new index
    if (gen !== null && !gen.startsWith(`${f.vectorLength}|`)) m.del(keys.vectors, keys.log);
    m.hset(this.indexesKey(base), `${view}:${f.name}`, next);
    await m.exec();
    return next;
  }

  private async dropIndexes(base: string, view: string, keepFields: Set<string>): Promise<void> {
    const fields = (await this.client.hkeys(this.indexesKey(base)))
      .filter((f) => f.startsWith(`${view}:`))
      .map((f) => f.slice(view.length + 1));
    for (const field of fields) {
      if (keepFields.has(field)) continue;
      const keys = this.keysOf(base, view, field);
      await this.client.multi().hdel(this.indexesKey(base), `${view}:${field}`).unlink(keys.vectors, keys.log).exec();
      this.handles.delete(`${base}\0${view}\0${field}`);
    }
  }

  /** The project's keys are gone (teardown): forget every index of it. */
  forget(base: string): void {
    for (const id of [...this.handles.keys()]) if (id.startsWith(`${base}\0`)) this.handles.delete(id);
  }

  // ------------------------------------------------------------ writes

  /** Checks the batch's vectors before anything is written; undefined for a view without vector fields. */
  stage(view: FeatureViewSpec, batch: OnlineWriteBatch): BatchVectors[] | undefined {
    if (!view.online || vectorFields(view).length === 0) return undefined;
    return batchVectors(view, batch);
  }

  /**
   * What the vector script needs beyond the row keys and payloads: per field its keys (after ensuring its
   * generation), the rows' entity keys without names, and each row's vectors.
   */
  async scriptParts(
    base: string,
    view: FeatureViewSpec,
    batch: OnlineWriteBatch,
    staged: BatchVectors[],
  ): Promise<{ fieldKeys: string[]; entityKeys: string[]; vectorOf: (row: number, f: number) => Buffer | string }> {
    const fieldKeys: string[] = [];
    for (const s of staged) {
      await this.ensure(base, view.name, s.field);
      const k = this.keysOf(base, view.name, s.field.name);
      fieldKeys.push(k.vectors, k.log);
    }
    const entityKeys = new EntityKeyCodec(view, false).keysOfColumns(batch.keys, batch.length);
    return {
      fieldKeys,
      entityKeys,
      vectorOf: (r, f) => {
        const s = staged[f];
        return s.present[r] ? vectorBytes(s.vectors.subarray(r * s.dims, (r + 1) * s.dims)) : "";
      },
    };
  }

  // ------------------------------------------------------------ the index of a process

  /** This process's index of a field, after the log entries written since it last looked. */
  private async current(base: string, view: string, field: FieldSpec): Promise<Handle> {
    const id = `${base}\0${view}\0${field.name}`;
    const keys = this.keysOf(base, view, field.name);
    let h = this.handles.get(id);
    if (h) {
      const res = await this.client
        .pipeline()
        .hget(this.indexesKey(base), `${view}:${field.name}`)
        .call("XINFO", "STREAM", keys.log)
        .xrangeBuffer(keys.log, `(${h.lastId}`, "+")
        .exec();
      const gen = res?.[0]?.[1] as string | null;
      // no log yet (an error reply) means nothing was written, hence nothing trimmed
      const info = (res?.[1]?.[0] ? [] : res?.[1]?.[1]) as unknown[];
      const at = info.indexOf("max-deleted-entry-id");
      const trimmed = at >= 0 && idAfter(String(info[at + 1]), h.lastId);
      if (gen === h.gen && !trimmed && !res?.[2]?.[0]) {
        this.apply(h, res?.[2]?.[1] as Array<[Buffer, Buffer[]]>);
        return h;
      }
      this.handles.delete(id);
    }
    h = await this.build(base, view, field);
    this.handles.set(id, h);
    return h;
  }

  /** A new index from the vectors hash, then the log entries written meanwhile. */
  private async build(base: string, view: string, field: FieldSpec): Promise<Handle> {
    const gen = await this.ensure(base, view, field);
    const keys = this.keysOf(base, view, field.name);
    const last = (await this.client.xrevrange(keys.log, "+", "-", "COUNT", 1)) as Array<[string, string[]]>;
    const dims = field.vectorLength ?? 0;
    const metric = field.vectorSearchMetric ?? "cosine";
    const h: Handle = {
      gen,
      dims,
      metric,
      index: newIndex(dims, metric, this.settings),
      labelOf: new Map(),
      keyOf: new Map(),
      nextLabel: 1,
      lastId: last.length ? last[0][0] : "0-0",
    };
    let cursor = "0";
    do {
      const [next, flat] = await this.client.hscanBuffer(keys.vectors, cursor, "COUNT", 5000);
      cursor = next.toString();
      const n = flat.length / 2;
      if (n === 0) continue;
      const labels = new BigUint64Array(n);
      const vecs = new Float32Array(n * dims);
      let fresh = 0;
      for (let i = 0; i < n; i++) {
        const key = flat[2 * i].toString();
        if (h.labelOf.has(key)) continue; // HSCAN may answer a key twice
        const label = h.nextLabel++;
        h.labelOf.set(key, label);
        h.keyOf.set(label, key);
        labels[fresh] = BigInt(label);
        const b = flat[2 * i + 1];
        vecs.set(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + dims * 4)), fresh * dims);
        fresh++;
      }
      if (fresh)
        h.index.add(labels.subarray(0, fresh), vecs.subarray(0, fresh * dims), addThreads(this.settings, fresh));
    } while (cursor !== "0");
    this.apply(h, await this.client.xrangeBuffer(keys.log, `(${h.lastId}`, "+"));
    return h;
  }

  /** Applies log entries in order: for each entity, its latest vector (or none) replaces what the index had. */
  private apply(h: Handle, entries: Array<[Buffer, Buffer[]]>): void {
    if (entries.length === 0) return;
    const latest = new Map<string, Buffer | null>();
    for (const [, fields] of entries) {
      let k = "";
      let v: Buffer | null = null;
      for (let i = 0; i < fields.length; i += 2) {
        const name = fields[i].toString();
        if (name === "k") k = fields[i + 1].toString();
        else if (name === "v") v = fields[i + 1].length ? fields[i + 1] : null;
      }
      latest.set(k, v);
    }
    const gone: bigint[] = [];
    const addLabels: bigint[] = [];
    const addVecs = new Float32Array(latest.size * h.dims);
    for (const [k, v] of latest) {
      let label = h.labelOf.get(k);
      if (label !== undefined && h.index.contains(BigInt(label))) gone.push(BigInt(label));
      if (v === null) {
        if (label !== undefined) h.keyOf.delete(label);
        continue;
      }
      if (label === undefined) {
        label = h.nextLabel++;
        h.labelOf.set(k, label);
      }
      h.keyOf.set(label, k);
      addVecs.set(new Float32Array(v.buffer.slice(v.byteOffset, v.byteOffset + h.dims * 4)), addLabels.length * h.dims);
      addLabels.push(BigInt(label));
    }
    if (gone.length) h.index.remove(BigUint64Array.from(gone));
    if (addLabels.length)
      h.index.add(
        BigUint64Array.from(addLabels),
        addVecs.subarray(0, addLabels.length * h.dims),
        addThreads(this.settings, addLabels.length),
      );
    h.lastId = entries[entries.length - 1][0].toString();
  }

  // ------------------------------------------------------------ search

  /** The `k` nearest entities of `query` (or brute force over the vectors hash when `exact`). */
  async search(
    base: string,
    view: FeatureViewSpec,
    field: FieldSpec,
    query: Float32Array,
    k: number,
    opts: { exact: boolean; metric: VectorMetric },
  ): Promise<VectorMatches> {
    if (opts.exact) return this.exact(base, view, field, query, k, opts.metric);
    const h = await this.current(base, view.name, field);
    return indexMatches(view, h.index, h.metric, (label) => h.keyOf.get(label), query, k);
  }

  private async exact(
    base: string,
    view: FeatureViewSpec,
    field: FieldSpec,
    query: Float32Array,
    k: number,
    metric: VectorMetric,
  ): Promise<VectorMatches> {
    const keys = this.keysOf(base, view.name, field.name);
    const dims = query.length;
    const names: string[] = [];
    const chunks: Float32Array[] = [];
    let cursor = "0";
    do {
      const [next, flat] = await this.client.hscanBuffer(keys.vectors, cursor, "COUNT", 5000);
      cursor = next.toString();
      const n = flat.length / 2;
      const vecs = new Float32Array(n * dims);
      for (let i = 0; i < n; i++) {
        names.push(flat[2 * i].toString());
        const b = flat[2 * i + 1];
        vecs.set(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + dims * 4)), i * dims);
      }
      chunks.push(vecs);
    } while (cursor !== "0");
    const all = new Float32Array(names.length * dims);
    let o = 0;
    for (const c of chunks) {
      all.set(c, o);
      o += c.length;
    }
    return exactMatches(view, metric, names, all, query, k);
  }
}
