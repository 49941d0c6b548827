import type { OnlineStoreConfig } from "../../registry/config.js";
import { hnswSettings } from "../vectors/hnsw.js";
import type { OnlineStore } from "../types.js";
import { RedisOnlineStore } from "./redis.js";
import { SqliteOnlineStore } from "./sqlite.js";

export { RedisOnlineStore, parseRedisConnectionString } from "./redis.js";
export { SqliteOnlineStore, sqliteTableName } from "./sqlite.js";

export async function createOnlineStore(config: OnlineStoreConfig): Promise<OnlineStore> {
  switch (config.type) {
    case "sqlite":
      return new SqliteOnlineStore(config.path, hnswSettings(config.vectorIndex));
    case "redis":
      return RedisOnlineStore.connect(config);
  }
}
