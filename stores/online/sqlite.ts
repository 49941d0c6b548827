// SQLite online store: the database and its tables (sqlite_schema.ts), writes (sqlite_write.ts) and reads
// (sqlite_read.ts). An entity's views share a table and sit side by side, so a read of all of them is one
// seek; the price is paid by writes, which materialize makes a key range of every view at a time.

import type { FeatureViewSpec, FieldSpec, VectorMetric } from "../../registry/types.js";
import type {
  OnlineReadGroup,
  OnlineReadResult,
  OnlineStore,
  OnlineViewBatch,
  OnlineWriteBatch,
  VectorMatches,
} from "../types.js";
import type { HnswSettings } from "../vectors/hnsw.js";
import { readGroups } from "./sqlite_read.js";
import { SqliteSchema } from "./sqlite_schema.js";
import { SqliteVectors } from "./sqlite_vectors.js";
import { writeViews } from "./sqlite_write.js";

export { sqliteTableName } from "./sqlite_schema.js";

export class SqliteOnlineStore implements OnlineStore {
  readonly type = "sqlite";
  private readonly schema: SqliteSchema;
  /** the vector indexes, kept in step by every write (sqlite_vectors.ts) */
  private readonly vectors: SqliteVectors;

  constructor(
    readonly path: string,
    hnsw?: HnswSettings,
  ) {
    this.schema = new SqliteSchema(path);
    this.vectors = new SqliteVectors(this.schema, hnsw);
  }

  async update(project: string, keep: FeatureViewSpec[], drop: FeatureViewSpec[]): Promise<void> {
    this.schema.update(project, keep, drop);
    this.vectors.update(project, keep, drop);
  }

  async teardown(project: string, views: FeatureViewSpec[]): Promise<void> {
    this.schema.teardown(project, views);
    this.vectors.teardown(project);
  }

  async write(project: string, view: FeatureViewSpec, batch: OnlineWriteBatch): Promise<number> {
    return writeViews(this.schema, project, [{ view, batch }], this.vectors)[0];
  }

  async writeViews(project: string, batches: OnlineViewBatch[]): Promise<number[]> {
    return writeViews(this.schema, project, batches, this.vectors);
  }

  async searchVectors(
    project: string,
    view: FeatureViewSpec,
    field: FieldSpec,
    query: Float32Array,
    k: number,
    opts: { exact: boolean; metric: VectorMetric },
  ): Promise<VectorMatches> {
    return this.vectors.search(project, view, field, query, k, opts);
  }

  async read(project: string, groups: OnlineReadGroup[]): Promise<OnlineReadResult[][]> {
    return readGroups(this.schema, project, groups);
  }

  async health(): Promise<void> {
    this.schema.health();
  }

  async close(): Promise<void> {
    if (this.schema.db.open) this.vectors.flush();
    this.schema.close();
  }
}
