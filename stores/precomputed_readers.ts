// The readers of precomputed recommendation lists a FeatureStore keeps, one per target, opened on first use;
// the list stores (and their Redis and SQLite clients) load only when a list is first read.
import { ValidationError } from "../common/errors.js";
import type { RepoConfig } from "../registry/config.js";
import type { PrecomputedStore } from "./precomputed.js";

export interface PrecomputedReadOptions {
  keyPrefix?: string;
  from?: "redis" | "sqlite";
  redis?: string;
}

export class PrecomputedReaders {
  private readonly open = new Map<string, Promise<PrecomputedStore>>();

  /** The list stored for `entity` under "<keyPrefix><id>" (default "USER:"), parsed; null when none is stored. */
  async read(
    config: RepoConfig,
    entity: string | number | bigint,
    opts: PrecomputedReadOptions,
  ): Promise<Record<string, unknown> | null> {
    if (!["string", "number", "bigint"].includes(typeof entity) || entity === "")
      throw new ValidationError(`precomputed recommendations: expected an entity id, got ${JSON.stringify(entity)}`);
    const { DEFAULT_KEY_PREFIX, openPrecomputed, precomputedTargetOf } = await import("./precomputed.js");
    const target = precomputedTargetOf(config, opts.from, opts.redis);
    const id = JSON.stringify(target);
    let opening = this.open.get(id);
    if (!opening) {
      opening = openPrecomputed(target);
      opening.catch(() => this.open.delete(id)); // the next call tries again (e.g. Redis came back)
      this.open.set(id, opening);
    }
    const text = await (await opening).read(`${opts.keyPrefix ?? DEFAULT_KEY_PREFIX}${String(entity)}`);
    return text === null ? null : (JSON.parse(text) as Record<string, unknown>);
  }

  async close(): Promise<void> {
    const lists = [...this.open.values()];
    this.open.clear();
    await Promise.allSettled(lists.map((p) => p.then((l) => l.close())));
  }
}
