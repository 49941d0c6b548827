// Data for the example feature repo (feature_repo/): synthetic Ali-CCP-like events -> notebook 001's ETL ->
// user and item feature tables with event and created timestamps, where the repo's FileSources point.
import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { silentProgress } from "../../common/progress.js";
import type { ProgressSink } from "../../common/progress.js";
import { uniqueRowsByFeatures } from "../etl/features.js";
import { openDuckDB, sqlString } from "../../common/duckdb.js";
import { queryRows } from "../etl/sql.js";
import { aliccpWorkflow, generateAliccp } from "./aliccp.js";

export interface DemoDataOptions {
  rows?: number;
  seed?: number;
  /** the newest event time (default: now, to the second): events span the 3 days before it, inside a 7-day ttl */
  now?: Date;
  progress?: ProgressSink;
}

export interface DemoData {
  /** feature_repo/data/user_features.parquet and item_features.parquet */
  userFeatures: string;
  itemFeatures: string;
  /** data/user_history.parquet: per user, the raw ids of the items clicked in the training events */
  userHistory: string;
  /** data/item_embeddings.parquet: the vector view's offline source, empty (training writes the vectors online) */
  itemEmbeddings: string;
  /** ETL output folders (train/, valid/) with schema.json, and the saved workflow */
  processed: string;
  workflow: string;
  rows: { train: number; valid: number };
  users: number;
  items: number;
  /** event times fall in [start, end) */
  start: Date;
  end: Date;
  /** a user id and item ids present in the feature tables, for lookups */
  sampleUserId: number;
  sampleItemIds: number[];
}

export async function prepareDemoData(repoDir: string, o: DemoDataOptions = {}): Promise<DemoData> {
  const repo = resolve(repoDir);
  const data = join(repo, "data");
  const progress = o.progress ?? silentProgress;
  const end = new Date(Math.floor((o.now ?? new Date()).getTime() / 1000) * 1000);
  const spanDays = 3;
  const raw = join(data, "raw");
  const processed = join(data, "processed");
  const workflowDir = join(data, "workflow");
  for (const d of [raw, processed, workflowDir]) rmSync(d, { recursive: true, force: true });
  mkdirSync(data, { recursive: true });
  progress.start("demo data", 6);
  const gen = await generateAliccp(raw, { rows: o.rows ?? 100_000, seed: o.seed ?? 42, end, spanDays });
  progress.tick(1);
  const wf = aliccpWorkflow();
  await wf.fit(gen.train);
  wf.save(workflowDir);
  progress.tick(2);
  await wf.transform(gen.train, join(processed, "train"), { training: true });
  await wf.transform(gen.valid, join(processed, "valid"));
  progress.tick(3);
  const created = end;
  const users = await uniqueRowsByFeatures(
    join(processed, "train"),
    ["user"],
    "user_id",
    join(data, "user_features.parquet"),
    { idColumn: "user_id_raw", created },
  );
  progress.tick(4);
  const items = await uniqueRowsByFeatures(
    join(processed, "train"),
    ["item"],
    "item_id",
    join(data, "item_features.parquet"),
    { idColumn: "item_id_raw", created },
  );
  progress.tick(5);
  const duck = await openDuckDB();
  let sampleUserId: number;
  let sampleItemIds: number[];
  const userHistory = join(data, "user_history.parquet");
  const itemEmbeddings = join(data, "item_embeddings.parquet");
  try {
    const train = sqlString(join(processed, "train", "**", "*.parquet"));
    const at = `make_timestamp(${end.getTime() * 1000})`;
    await duck.connection.run(
      `COPY (SELECT user_id_raw, list(DISTINCT item_id_raw ORDER BY item_id_raw) AS seen_items, max(event_timestamp) AS event_timestamp, ${at} AS created FROM read_parquet(${train}) WHERE click > 0 GROUP BY 1 ORDER BY 1) TO ${sqlString(userHistory)} (FORMAT parquet)`,
    );
    await duck.connection.run(
      `COPY (SELECT 0::BIGINT AS item_id_raw, [0.0]::FLOAT[] AS embedding, ${at} AS event_timestamp, ${at} AS created WHERE false) TO ${sqlString(itemEmbeddings)} (FORMAT parquet)`,
    );
    progress.tick(6);
    progress.stop();
    sampleUserId = Number(
      (
        await queryRows(
          duck.connection,
          `SELECT min(user_id_raw) AS u FROM read_parquet(${sqlString(users.path)})`,
          "demo user",
        )
      )[0].u,
    );
    sampleItemIds = (
      await queryRows(
        duck.connection,
        `SELECT item_id_raw AS i FROM read_parquet(${sqlString(items.path)}) ORDER BY 1 LIMIT 3`,
        "demo items",
      )
    ).map((r) => Number(r.i));
  } finally {
    duck.close();
  }
  return {
    userFeatures: users.path,
    itemFeatures: items.path,
    userHistory,
    itemEmbeddings,
    processed,
    workflow: workflowDir,
    rows: gen.rows,
    users: users.rows,
    items: items.rows,
    start: new Date(end.getTime() - spanDays * 86400_000),
    end,
    sampleUserId,
    sampleItemIds,
  };
}
