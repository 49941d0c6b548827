// MovieLens (ml-latest-small) as model inputs for the training experiments. The files are read by the shared
// dataset loader (adapters/datasets/movielens.ts: ratings/items parquet through DuckDB); here ids are encoded to
// dense indices, genres become a list feature, the release year a categorical one, and every rating gets the
// user's previous items as a point-in-time list feature (what the user watched before, never the rating itself).
// leaveLastOut() makes the temporal split per user.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadMovieLens as loadMovieLensParquet } from "../datasets/movielens.js";
import { openDuckDB, sqlString } from "../../common/duckdb.js";
import { queryRows } from "../etl/sql.js";
import type { Frame, ListColumn } from "./frame.js";
import { parseSchema, type SchemaColumn } from "./schema.js";

export interface MovieLensData {
  /**
   * every rating, ordered by (user, time, item): user_id, item_id, genres (list), year, recent_items (list: the
   * user's previous `historyLength` items, latest last), last_item (the previous one; nItems for none),
   * timestamp (s), rating
   */
  interactions: Frame;
  /** one row per rated movie, by item_id: item_id, genres, year */
  items: Frame;
  schema: SchemaColumn[];
  nUsers: number;
  nItems: number;
  /** encoded index -> raw MovieLens id */
  rawUserIds: Int32Array;
  rawItemIds: Int32Array;
}

export interface MovieLensOptions {
  /** how many previous items the recent_items feature holds (default 20) */
  historyLength?: number;
}

/** Reads ratings.csv and movies.csv of `dir` (an ml-latest-small folder) through the shared loader. */
export async function loadMovieLens(dir: string, opts: MovieLensOptions = {}): Promise<MovieLensData> {
  const historyLength = opts.historyLength ?? 20;
  const work = mkdtempSync(join(tmpdir(), "fstore-movielens-"));
  try {
    const files = await loadMovieLensParquet(work, { dataDir: dir });
    const duck = await openDuckDB();
    try {
      // Ties in time (ratings in the same second) are ordered by item id: deterministic, and the same order
      // for the split, the encoding and the history.
      const ratings = await queryRows(
        duck.connection,
        `SELECT CAST(user_id AS INTEGER) AS u, CAST(item_id AS INTEGER) AS m, rating, CAST(epoch(event_timestamp) AS DOUBLE) AS ts
         FROM read_parquet(${sqlString(files.ratings)}) ORDER BY user_id, event_timestamp, item_id`,
        "MovieLens: reading ratings",
      );
      const movies = await queryRows(
        duck.connection,
        `SELECT CAST(item_id AS INTEGER) AS m, year, genres FROM read_parquet(${sqlString(files.items)})`,
        "MovieLens: reading items",
      );
      return encode(
        ratings.map((r) => ({ u: Number(r.u), m: Number(r.m), rating: Number(r.rating), ts: Number(r.ts) })),
        movies.map((r) => ({
          m: Number(r.m),
          year: r.year == null ? null : Number(r.year),
          genres: Array.isArray(r.genres) ? r.genres.map(String) : [],
        })),
        historyLength,
      );
    } finally {
      duck.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function encode(
  rows: Array<{ u: number; m: number; rating: number; ts: number }>,
  movies: Array<{ m: number; year: number | null; genres: string[] }>,
  historyLength: number,
): MovieLensData {
  // Indices in order of first appearance, rows being ordered by (user, time): deterministic.
  const userIdx = new Map<number, number>();
  const itemIdx = new Map<number, number>();
  for (const r of rows) {
    if (!userIdx.has(r.u)) userIdx.set(r.u, userIdx.size);
    if (!itemIdx.has(r.m)) itemIdx.set(r.m, itemIdx.size);
  }
  const nItems = itemIdx.size;
  const genreVocab = new Map<string, number>([["(no genres listed)", 0]]);
  const yearVocab = new Map<string, number>([["unknown", 0]]);
  const itemGenres: number[][] = Array.from({ length: nItems }, () => []);
  const itemYear = new Int32Array(nItems);
  // Vocabularies in movie id order, so they do not depend on the rating order.
  for (const mv of [...movies].sort((a, b) => a.m - b.m)) {
    const i = itemIdx.get(mv.m);
    if (i === undefined) continue;
    itemGenres[i] = mv.genres.map((g) => {
      if (!genreVocab.has(g)) genreVocab.set(g, genreVocab.size);
      return genreVocab.get(g) as number;
    });
    const y = mv.year === null ? "unknown" : String(mv.year);
    if (!yearVocab.has(y)) yearVocab.set(y, yearVocab.size);
    itemYear[i] = yearVocab.get(y) as number;
  }
  const n = rows.length;
  const user_id = new Int32Array(n);
  const item_id = new Int32Array(n);
  const timestamp = new Float32Array(n);
  const rating = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    user_id[k] = userIdx.get(rows[k].u) as number;
    item_id[k] = itemIdx.get(rows[k].m) as number;
    timestamp[k] = rows[k].ts;
    rating[k] = rows[k].rating;
  }
  const itemsFrame = itemsCatalogue(itemGenres, itemYear);
  const interactions: Frame = {
    length: n,
    columns: {
      user_id,
      item_id,
      genres: listFor(item_id, itemGenres),
      year: Int32Array.from(item_id, (i) => itemYear[i]),
      recent_items: recentItems(user_id, item_id, historyLength),
      last_item: lastItem(user_id, item_id, nItems),
      timestamp,
      rating,
    },
  };
  const schema = parseSchema(
    [
      {
        name: "user_id",
        dtype: "int32",
        tags: ["categorical", "user", "user_id"],
        properties: { cardinality: userIdx.size },
      },
      {
        name: "item_id",
        dtype: "int32",
        tags: ["categorical", "item", "item_id"],
        properties: { cardinality: nItems },
      },
      {
        name: "genres",
        dtype: "int32",
        isList: true,
        tags: ["categorical", "item", "list"],
        properties: { cardinality: genreVocab.size },
      },
      { name: "year", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: yearVocab.size } },
      {
        name: "recent_items",
        dtype: "int32",
        isList: true,
        tags: ["categorical", "user", "list"],
        // The history embeds with the item id's own table, latest items weighing most.
        properties: { cardinality: nItems, domain: { min: 0, max: nItems - 1, name: "item_id" }, pooling: "recency" },
      },
      { name: "last_item", dtype: "int32", tags: ["categorical", "user"], properties: { cardinality: nItems + 1 } },
      { name: "timestamp", dtype: "int64", tags: ["time"], properties: {} },
      { name: "rating", dtype: "float32", tags: ["target", "regression"], properties: {} },
    ],
    "MovieLens schema",
  );
  const rawUserIds = new Int32Array(userIdx.size);
  for (const [raw, i] of userIdx) rawUserIds[i] = raw;
  const rawItemIds = new Int32Array(nItems);
  for (const [raw, i] of itemIdx) rawItemIds[i] = raw;
  return { interactions, items: itemsFrame, schema, nUsers: userIdx.size, nItems, rawUserIds, rawItemIds };
}

/**
 * Per row, the same user's previous `n` items (rows ordered by user, then time): the history known at that
 * moment. A user's first row has an empty list.
 */
export function recentItems(users: Int32Array, items: Int32Array, n: number): ListColumn {
  const offsets = new Int32Array(users.length + 1);
  const values: number[] = [];
  let start = 0;
  for (let k = 0; k < users.length; k++) {
    if (k > 0 && users[k] !== users[k - 1]) start = k;
    for (let j = Math.max(start, k - n); j < k; j++) values.push(items[j]);
    offsets[k + 1] = values.length;
  }
  return { offsets, values: Int32Array.from(values) };
}

/** Per row, the same user's previous item (rows ordered by user, then time); `none` for a user's first row. */
export function lastItem(users: Int32Array, items: Int32Array, none: number): Int32Array {
  return Int32Array.from(users, (u, k) => (k > 0 && users[k - 1] === u ? items[k - 1] : none));
}

function listFor(itemIds: Int32Array, lists: number[][]): ListColumn {
  const offsets = new Int32Array(itemIds.length + 1);
  const values: number[] = [];
  for (let k = 0; k < itemIds.length; k++) {
    for (const g of lists[itemIds[k]]) values.push(g);
    offsets[k + 1] = values.length;
  }
  return { offsets, values: Int32Array.from(values) };
}

function itemsCatalogue(itemGenres: number[][], itemYear: Int32Array): Frame {
  const ids = Int32Array.from({ length: itemGenres.length }, (_, i) => i);
  return { length: ids.length, columns: { item_id: ids, genres: listFor(ids, itemGenres), year: itemYear.slice() } };
}

/**
 * Temporal leave-last-out: per user, the latest interaction (ties: the last in time order) is the test row and
 * the rest is training. `interactions` must be ordered by (user, time), as loadMovieLens returns it.
 */
export function leaveLastOut(interactions: Frame, userColumn = "user_id"): { train: Int32Array; test: Int32Array } {
  const users = interactions.columns[userColumn] as Int32Array;
  const train: number[] = [];
  const test: number[] = [];
  for (let k = 0; k < interactions.length; k++) {
    if (k + 1 < interactions.length && users[k + 1] === users[k]) train.push(k);
    else test.push(k);
  }
  return { train: Int32Array.from(train), test: Int32Array.from(test) };
}
