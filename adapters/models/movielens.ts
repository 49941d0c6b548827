// A minimal MovieLens reader for the training experiments (ratings.csv + movies.csv of ml-latest-small), used
// until the ETL's MovieLens loader lands: ids encoded to dense indices, genres as a list feature, the release
// year (from the title) as a categorical one, and a temporal leave-last-out split per user.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ValidationError } from "../../registry/errors.js";
import type { Frame } from "./frame.js";
import { parseSchema, type SchemaColumn } from "./schema.js";

/** Split one CSV line, honouring double quotes ("" inside quotes is a quote). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (q) {
      if (ch === '"') {
        if (line[i + 1] === '"') {
          cur += '"';
          i++;
        } else q = false;
      } else cur += ch;
    } else if (ch === '"') q = true;
    else if (ch === ",") {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function readCsv(path: string, expected: string[]): string[][] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ValidationError(`cannot read ${path}: ${(e as Error).message}`);
  }
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  const header = splitCsvLine(lines[0] ?? "");
  for (const c of expected) if (!header.includes(c)) throw new ValidationError(`${path}: missing column "${c}" (header: ${header.join(",")})`);
  const idx = expected.map((c) => header.indexOf(c));
  return lines.slice(1).map((l) => {
    const f = splitCsvLine(l);
    return idx.map((i) => f[i] ?? "");
  });
}

export interface MovieLensData {
  /** every rating, ordered by (user, timestamp): user_id, item_id, genres (list), year, timestamp (s), rating */
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

export function loadMovieLens(dir: string): MovieLensData {
  const ratings = readCsv(join(dir, "ratings.csv"), ["userId", "movieId", "rating", "timestamp"]);
  const movies = readCsv(join(dir, "movies.csv"), ["movieId", "title", "genres"]);
  const userIdx = new Map<number, number>();
  const itemIdx = new Map<number, number>();
  const rows = ratings.map((r, line) => {
    const [u, m, rating, ts] = r.map(Number);
    if (![u, m, rating, ts].every(Number.isFinite)) throw new ValidationError(`${join(dir, "ratings.csv")} line ${line + 2}: expected numbers, got ${r.join(",")}`);
    return { u, m, rating, ts, line };
  });
  // Encode in order of first appearance after sorting by user then time, so indices are deterministic.
  rows.sort((a, b) => a.u - b.u || a.ts - b.ts || a.line - b.line);
  for (const r of rows) {
    if (!userIdx.has(r.u)) userIdx.set(r.u, userIdx.size);
    if (!itemIdx.has(r.m)) itemIdx.set(r.m, itemIdx.size);
  }
  const nItems = itemIdx.size;
  const genreVocab = new Map<string, number>([["(no genres listed)", 0]]);
  const yearVocab = new Map<string, number>([["unknown", 0]]);
  const itemGenres: number[][] = Array.from({ length: nItems }, () => []);
  const itemYear = new Int32Array(nItems);
  for (const [id, title, genres] of movies) {
    const i = itemIdx.get(Number(id));
    if (i === undefined) continue;
    itemGenres[i] = genres
      .split("|")
      .filter((g) => g && g !== "(no genres listed)")
      .map((g) => {
        if (!genreVocab.has(g)) genreVocab.set(g, genreVocab.size);
        return genreVocab.get(g) as number;
      });
    const y = /\((\d{4})\)\s*$/.exec(title.trim())?.[1] ?? "unknown";
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
    columns: { user_id, item_id, genres: listFor(item_id, itemGenres), year: Int32Array.from(item_id, (i) => itemYear[i]), timestamp, rating },
  };
  const schema = parseSchema(
    [
      { name: "user_id", dtype: "int32", tags: ["categorical", "user", "user_id"], properties: { cardinality: userIdx.size } },
      { name: "item_id", dtype: "int32", tags: ["categorical", "item", "item_id"], properties: { cardinality: nItems } },
      { name: "genres", dtype: "int32", isList: true, tags: ["categorical", "item", "list"], properties: { cardinality: genreVocab.size } },
      { name: "year", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: yearVocab.size } },
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

function listFor(itemIds: Int32Array, lists: number[][]): { offsets: Int32Array; values: Int32Array } {
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
