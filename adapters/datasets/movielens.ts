// Loaders for the real MovieLens latest-small files, and where the full data sets live: FSTORE_DATA_DIR, by
// default ../shared/data relative to the project root. Nothing is downloaded: a missing folder is an error.
// Tests read the small slices committed under test/fixtures/ instead.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ValidationError } from "../../common/errors.js";
import { openDuckDB, sqlString } from "../../common/duckdb.js";
import { exec, queryRows } from "../etl/sql.js";

/** The project root: the nearest folder above this module with a package.json (works from source and from dist/). */
export function projectRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, "package.json"))) return d;
    d = dirname(d);
  }
  return process.cwd();
}

/** Where benchmarks and experiments find the full data sets: FSTORE_DATA_DIR, else <project root>/../shared/data. */
export function sharedDataDir(): string {
  return resolve(process.env.FSTORE_DATA_DIR || join(projectRoot(), "..", "shared", "data"));
}

/**
 * The folder of one full data set (e.g. "ml-latest-small") under sharedDataDir(). A missing folder is a one-line
 * error naming FSTORE_DATA_DIR and the path expected, so a run without the data stops before doing any work.
 */
export function dataSetDir(name: string): string {
  const dir = join(sharedDataDir(), name);
  if (!existsSync(dir))
    throw new ValidationError(
      `data set ${name} not found: expected the folder ${dir} (set FSTORE_DATA_DIR to the folder holding ${name}/; default ../shared/data from the project root)`,
    );
  return dir;
}

export interface MovieLensResult {
  /** user_id, item_id, rating, event_timestamp */
  ratings: string;
  /** item_id, title, year, genres (list), rating_count, rating_mean, event_timestamp, created */
  items: string;
  /** user_id, rating_count, rating_mean, first_rating, event_timestamp, created */
  users: string;
  counts: { ratings: number; items: number; users: number };
}

/** Reads ratings.csv and movies.csv and writes ratings/items/users parquet offline sources into outDir. */
export async function loadMovieLens(
  outDir: string,
  o: { dataDir?: string; created?: Date } = {},
): Promise<MovieLensResult> {
  const src = resolve(o.dataDir ?? join(sharedDataDir(), "ml-latest-small"));
  for (const f of ["ratings.csv", "movies.csv"]) {
    if (!existsSync(join(src, f)))
      throw new ValidationError(
        `MovieLens: ${join(src, f)} not found (expected the ml-latest-small files there; pass dataDir (--data-dir on the CLI), or set FSTORE_DATA_DIR to the folder holding ml-latest-small/)`,
      );
  }
  const out = resolve(outDir);
  mkdirSync(out, { recursive: true });
  const created = `make_timestamp(${(o.created ?? new Date()).getTime() * 1000})`;
  const duck = await openDuckDB();
  const paths = {
    ratings: join(out, "ratings.parquet"),
    items: join(out, "items.parquet"),
    users: join(out, "users.parquet"),
  };
  try {
    await exec(
      duck.connection,
      `CREATE TEMP TABLE ratings AS SELECT CAST(userId AS BIGINT) AS user_id, CAST(movieId AS BIGINT) AS item_id, CAST(rating AS FLOAT) AS rating,
              make_timestamp(CAST(timestamp AS BIGINT) * 1000000) AS event_timestamp
       FROM read_csv(${sqlString(join(src, "ratings.csv"))}, header = true, columns = {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'})`,
      `MovieLens: reading ${join(src, "ratings.csv")}`,
    );
    await exec(
      duck.connection,
      `COPY (SELECT * FROM ratings ORDER BY event_timestamp, user_id, item_id) TO ${sqlString(paths.ratings)} (FORMAT parquet)`,
      "MovieLens: writing ratings",
    );
    await exec(
      duck.connection,
      `COPY (
         WITH m AS (SELECT CAST(movieId AS BIGINT) AS item_id, title, genres FROM read_csv(${sqlString(join(src, "movies.csv"))}, header = true, quote = '"', escape = '"', delim = ',', columns = {'movieId': 'BIGINT', 'title': 'VARCHAR', 'genres': 'VARCHAR'})),
              s AS (SELECT item_id, count(*) AS rating_count, avg(rating)::FLOAT AS rating_mean, max(event_timestamp) AS last FROM ratings GROUP BY 1)
         SELECT m.item_id,
                trim(regexp_replace(m.title, '\\s*\\(\\d{4}\\)\\s*$', '')) AS title,
                CAST(nullif(regexp_extract(m.title, '\\((\\d{4})\\)\\s*$', 1), '') AS INTEGER) AS year,
                CASE WHEN m.genres = '(no genres listed)' THEN []::VARCHAR[] ELSE string_split(m.genres, '|') END AS genres,
                coalesce(s.rating_count, 0) AS rating_count, s.rating_mean,
                coalesce(s.last, (SELECT min(event_timestamp) FROM ratings)) AS event_timestamp, ${created} AS created
         FROM m LEFT JOIN s USING (item_id) ORDER BY m.item_id)
       TO ${sqlString(paths.items)} (FORMAT parquet)`,
      `MovieLens: reading ${join(src, "movies.csv")}`,
    );
    await exec(
      duck.connection,
      `COPY (SELECT user_id, count(*) AS rating_count, avg(rating)::FLOAT AS rating_mean, min(event_timestamp) AS first_rating, max(event_timestamp) AS event_timestamp, ${created} AS created
             FROM ratings GROUP BY 1 ORDER BY 1) TO ${sqlString(paths.users)} (FORMAT parquet)`,
      "MovieLens: writing users",
    );
    const n = async (p: string) =>
      Number((await queryRows(duck.connection, `SELECT count(*) AS n FROM read_parquet(${sqlString(p)})`, p))[0].n);
    return {
      ...paths,
      counts: { ratings: await n(paths.ratings), items: await n(paths.items), users: await n(paths.users) },
    };
  } finally {
    duck.close();
  }
}
