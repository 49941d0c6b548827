// SQLite online store: the database and its tables (sqlite_schema.ts), writes (sqlite_write.ts) and reads
// (sqlite_read.ts). An entity's views share a table and sit side by side, so a read of all of them is one
// seek; the price is paid by writes, which materialize makes a key range of every view at a time.

import type { FeatureViewSpec } from "../../registry/types.js";
import type { OnlineReadGroup, OnlineReadResult, OnlineStore, OnlineViewBatch, OnlineWriteBatch } from "../types.js";
import { readGroups } from "./sqlite_read.js";
import { SqliteSchema } from "./sqlite_schema.js";
import { writeViews } from "./sqlite_write.js";

export { sqliteTableName } from "./sqlite_schema.js";

export class SqliteOnlineStore implements OnlineStore {
  readonly type = "sqlite";
  private readonly schema: SqliteSchema;

  constructor(readonly path: string) {
    this.schema = new SqliteSchema(path);
  }

  async update(project: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): Promise<void> {
    this.schema.update(project, keep, drop);
  }

  async teardown(project: string, views: FeatureViewSpec[]): Promise<void> {
    this.schema.teardown(project, views);
  }

  async write(project: string, view: FeatureViewSpec, batch: OnlineWriteBatch): Promise<number> {
    return writeViews(this.schema, project, [{ view, batch }])[0];
  }

  async writeViews(project: string, batches: OnlineViewBatch[]): Promise<number[]> {
    return writeViews(this.schema, project, batches);
  }

  async read(project: string, groups: OnlineReadGroup[]): Promise<OnlineReadResult[][]> {
    return readGroups(this.schema, project, groups);
  }

  async health(): Promise<void> {
    this.schema.health();
  }

  async close(): Promise<void> {
    this.schema.close();
  }
}
