// Two-tower defaults through the training job (`fs train two-tower`'s code path: feature repo, point-in-time
// join, latest 10% of the positive rows held out, full-catalogue Recall@10 against popularity):
// - planted preferences (each of 3,000 users prefers 2 of 20 categories, Zipf popularity inside a category,
//   2,000 items, 120,000 clicks), with an oracle that ranks by the planted P(item | user);
// - MovieLens ml-latest-small (every rating a positive; genres and year as item features), read from
//   FSTORE_DATA_DIR (default ../shared/data). The latest 10% of the ratings come mostly from users with no
//   rating before them, so the job's split hardly separates the settings; "movielens-llo" also runs the same
//   settings on the per-user protocol of the experiments (temporal leave-last-out, train-seen items excluded,
//   ids + genres and year).
// Each configuration is one run with the same data and seed. `npm run bench -- train_defaults`;
// TRAIN_DEFAULTS_DATA=planted,movielens,movielens-llo and TRAIN_DEFAULTS_CONFIGS=old,defaults,... pick a subset.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sharedDataDir } from "../adapters/datasets/movielens.js";
import { openDuckDB, sqlString } from "../common/duckdb.js";
import { exec, queryRows } from "../adapters/etl/sql.js";
import { initBackend } from "../adapters/models/backend.js";
import { TWO_TOWER_JOB_DEFAULTS } from "../adapters/models/defaults.js";
import { movieLensExperiment } from "../adapters/models/experiments.js";
import { trainTwoTowerJob, type TrainJobOptions } from "../adapters/models/jobs.js";
import type { TwoTowerOptions } from "../adapters/models/two_tower.js";
import { plantedPreferences } from "../adapters/models/synthetic.js";
import { topK } from "../adapters/models/metrics.js";
import { FeatureStore } from "../stores/feature_store.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { report } from "./lib.js";

type Config = Partial<Pick<TrainJobOptions, "epochs" | "batchSize" | "learningRate" | "learningRateEnd">> & {
  twoTower?: TwoTowerOptions;
};

/** The settings compared: the library's defaults, and settings spelled out (the first: the defaults before logQ). */
const OLD = { epochs: 5, batchSize: 1024, learningRate: 1e-3, learningRateEnd: 1 };
const DOT = { l2Normalize: false, temperature: 1 };
const CONFIGS: Record<string, Config> = {
  old: { ...OLD, twoTower: { ...DOT, logQCorrection: false } },
  defaults: {},
  logq: { ...OLD, twoTower: { ...DOT, logQCorrection: true } },
  // the defaults before cosine towers and the rate schedule
  "logq lr0.005 b256": { ...OLD, batchSize: 256, learningRate: 0.005, twoTower: { ...DOT, logQCorrection: true } },
  "logq+l2 t0.05": { ...OLD, twoTower: { logQCorrection: true, l2Normalize: true, temperature: 0.05 } },
  "logq+l2 t0.05 lr0.005 b256": {
    ...OLD,
    batchSize: 256,
    learningRate: 0.005,
    twoTower: { logQCorrection: true, l2Normalize: true, temperature: 0.05 },
  },
};

/** TRAIN_DEFAULTS_SEED: the seed of every run (model initialisation and batch order) */
const SEED = Number(process.env.TRAIN_DEFAULTS_SEED ?? 42);

const YAML =
  "project: bench\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: sqlite\n  path: data/online.db\noffline_store:\n  type: duckdb\n  threads: 1\n";

function defs(itemFields: string): string {
  return `import { Entity, FeatureView, Field, FileSource } from "fstore";
export const item = new Entity({ name: "item", joinKeys: ["item_id"], valueType: "int64" });
export const itemFeatures = new FeatureView({
  name: "item_features", entities: [item], ttl: 0,
  schema: [${itemFields}],
  source: new FileSource({ name: "item_source", path: "data/items.parquet", timestampField: "event_timestamp" }),
});
`;
}

interface Prepared {
  dir: string;
  features: string[];
  /** extra figures of the data set (e.g. the oracle's recall on the rows the job holds out) */
  extra: Record<string, number>;
}

const T0 = Date.parse("2024-01-01T00:00:00Z");

async function preparePlanted(root: string): Promise<Prepared> {
  const data = plantedPreferences({ seed: 7 });
  const dir = join(root, "planted");
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(join(dir, "feature_store.yaml"), YAML);
  writeFileSync(join(dir, "defs.ts"), defs(`new Field({ name: "item_category", dtype: "int64" })`));
  writeFileSync(join(dir, "schema.json"), JSON.stringify(data.schema));
  const n = data.clicks.length;
  await writeParquet(
    join(dir, "events.parquet"),
    {
      length: n,
      columns: {
        user_id: data.clicks.columns.user_id as Int32Array,
        item_id: data.clicks.columns.item_id as Int32Array,
        click: new Int32Array(n).fill(1),
        event_timestamp: Float64Array.from({ length: n }, (_, k) => T0 + k * 1000),
      },
    },
    { user_id: "int64", item_id: "int64", click: "int32", event_timestamp: "timestamp" },
  );
  await writeParquet(
    join(dir, "data/items.parquet"),
    {
      length: data.items.length,
      columns: {
        item_id: data.items.columns.item_id as Int32Array,
        item_category: data.items.columns.item_category as Int32Array,
        event_timestamp: new Float64Array(data.items.length).fill(T0 - 86400_000),
      },
    },
    { item_id: "int64", item_category: "int64", event_timestamp: "timestamp" },
  );
  // The oracle on the rows the job holds out (the latest 10% of the clicks).
  const users = data.clicks.columns.user_id as Int32Array;
  const items = data.clicks.columns.item_id as Int32Array;
  const top = new Map<number, Set<number>>();
  let hits = 0;
  const first = n - Math.floor(n * 0.1);
  for (let k = first; k < n; k++) {
    let t = top.get(users[k]);
    if (!t) top.set(users[k], (t = new Set(topK(data.oracleScores(users[k]), 10))));
    if (t.has(items[k])) hits++;
  }
  return { dir, features: ["item_features:item_category"], extra: { "oracle recall_at_10": hits / (n - first) } };
}

async function prepareMovieLens(root: string): Promise<Prepared | null> {
  const src = join(sharedDataDir(), "ml-latest-small");
  if (!existsSync(join(src, "ratings.csv"))) {
    console.log(`skipping MovieLens: ${src}/ratings.csv not found (set FSTORE_DATA_DIR)`);
    return null;
  }
  const dir = join(root, "movielens");
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(join(dir, "feature_store.yaml"), YAML);
  writeFileSync(
    join(dir, "defs.ts"),
    defs(`new Field({ name: "genres", dtype: "int64[]" }), new Field({ name: "year", dtype: "int64" })`),
  );
  const duck = await openDuckDB({ threads: 1 });
  try {
    const q = (p: string) => sqlString(join(src, p));
    // Dense indices in id order; genres and year as categories (0 = none/unknown); every item row at a time
    // before the first rating (genres and year never change).
    await exec(
      duck.connection,
      `CREATE TEMP TABLE r AS SELECT userId AS raw_user, movieId AS raw_item, make_timestamp(CAST(timestamp AS BIGINT) * 1000000) AS ts
       FROM read_csv(${q("ratings.csv")}, header = true, columns = {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'});
       CREATE TEMP TABLE us AS SELECT raw_user, CAST(row_number() OVER (ORDER BY raw_user) - 1 AS BIGINT) AS user_id FROM (SELECT DISTINCT raw_user FROM r);
       CREATE TEMP TABLE it AS SELECT raw_item, CAST(row_number() OVER (ORDER BY raw_item) - 1 AS BIGINT) AS item_id FROM (SELECT DISTINCT raw_item FROM r);
       CREATE TEMP TABLE mv AS SELECT movieId AS raw_item,
              CAST(nullif(regexp_extract(title, '\\((\\d{4})\\)\\s*$', 1), '') AS INTEGER) AS y,
              CASE WHEN genres = '(no genres listed)' THEN []::VARCHAR[] ELSE string_split(genres, '|') END AS g
       FROM read_csv(${q("movies.csv")}, header = true, quote = '"', escape = '"', columns = {'movieId': 'BIGINT', 'title': 'VARCHAR', 'genres': 'VARCHAR'});
       CREATE TEMP TABLE gv AS SELECT g, CAST(row_number() OVER (ORDER BY g) AS BIGINT) AS gi FROM (SELECT DISTINCT unnest(g) AS g FROM mv);
       CREATE TEMP TABLE yv AS SELECT y, CAST(row_number() OVER (ORDER BY y) AS BIGINT) AS yi FROM (SELECT DISTINCT y FROM mv WHERE y IS NOT NULL);
       COPY (SELECT us.user_id, it.item_id, 1 AS click, r.ts AS event_timestamp FROM r JOIN us USING (raw_user) JOIN it USING (raw_item)
             ORDER BY r.ts, us.user_id, it.item_id) TO ${sqlString(join(dir, "events.parquet"))} (FORMAT parquet);
       COPY (SELECT it.item_id,
                    coalesce((SELECT list(gv.gi ORDER BY gv.gi) FROM (SELECT unnest(mv.g) AS g) x JOIN gv USING (g)), [0]) AS genres,
                    coalesce(yv.yi, 0) AS year, TIMESTAMP '1990-01-01' AS event_timestamp
             FROM it LEFT JOIN mv USING (raw_item) LEFT JOIN yv USING (y) ORDER BY it.item_id)
         TO ${sqlString(join(dir, "data/items.parquet"))} (FORMAT parquet)`,
      "MovieLens feature repo",
    );
    const [c] = await queryRows(
      duck.connection,
      "SELECT (SELECT count(*) FROM us) AS u, (SELECT count(*) FROM it) AS i, (SELECT count(*) + 1 FROM gv) AS g, (SELECT count(*) + 1 FROM yv) AS y",
      "cardinalities",
    );
    const cat = (name: string, card: unknown, tags: string[], isList = false) => ({
      name,
      dtype: "int64",
      isList,
      tags: ["categorical", ...tags],
      properties: { cardinality: Number(card) },
    });
    writeFileSync(
      join(dir, "schema.json"),
      JSON.stringify([
        cat("user_id", c.u, ["user", "user_id"]),
        cat("item_id", c.i, ["item", "item_id"]),
        cat("genres", c.g, ["item", "list"], true),
        cat("year", c.y, ["item"]),
        { name: "click", dtype: "int32", isList: false, tags: ["target", "binary_classification"], properties: {} },
      ]),
    );
  } finally {
    duck.close();
  }
  return { dir, features: ["item_features:genres", "item_features:year"], extra: {} };
}

async function run(name: string, p: Prepared, configs: string[]): Promise<void> {
  const store = await FeatureStore.open(p.dir);
  try {
    await store.apply();
    const results: Record<string, { model: number; popularity: number; seconds: number }> = {};
    for (const c of configs) {
      const t0 = performance.now();
      const cfg = CONFIGS[c];
      const res = await trainTwoTowerJob({
        store,
        schemaPath: join(p.dir, "schema.json"),
        entityDf: join(p.dir, "events.parquet"),
        features: p.features,
        itemView: "item_features",
        outDir: join(p.dir, `out-${c.replace(/[^a-z0-9]+/gi, "_")}`),
        backend: "wasm",
        seed: SEED,
        ...cfg,
        log: (l) => console.log(`${name} [${c}] ${l}`),
      });
      results[c] = {
        model: res.metrics["two-tower"].recall_at_10,
        popularity: res.metrics.popularity.recall_at_10,
        seconds: (performance.now() - t0) / 1000,
      };
      report(`${name} two-tower [${c}] Recall@10`, results[c].model, "", {
        baseline: results[c].popularity,
        baselineName: "popularity",
      });
      console.log(`${name} [${c}]: ${JSON.stringify(cfg)} took ${results[c].seconds.toFixed(0)} s`);
    }
    for (const [k, v] of Object.entries(p.extra)) report(`${name} ${k}`, v, "");
  } finally {
    await store.close();
  }
}

/** The same settings on MovieLens' leave-last-out split (the experiments' protocol). */
async function leaveLastOut(configs: string[]): Promise<void> {
  const src = join(sharedDataDir(), "ml-latest-small");
  if (!existsSync(join(src, "ratings.csv"))) return console.log(`skipping MovieLens: ${src}/ratings.csv not found`);
  const variant = "two-tower (ids + genres, year)";
  await initBackend("wasm", () => {});
  for (const c of configs) {
    const cfg = CONFIGS[c];
    const r = await movieLensExperiment(src, {
      epochs: cfg.epochs ?? TWO_TOWER_JOB_DEFAULTS.epochs,
      batchSize: cfg.batchSize ?? TWO_TOWER_JOB_DEFAULTS.batchSize,
      learningRateEnd: cfg.learningRateEnd ?? TWO_TOWER_JOB_DEFAULTS.learningRateEnd,
      seed: SEED,
      twoTower: { ...(cfg.learningRate ? { learningRate: cfg.learningRate } : {}), ...cfg.twoTower },
      only: [variant],
      log: (l) => console.log(`MovieLens leave-last-out [${c}] ${l}`),
    });
    report(`MovieLens leave-last-out two-tower [${c}] Recall@10`, r.models[variant].recall_at_10, "", {
      baseline: r.models.popularity.recall_at_10,
      baselineName: "popularity",
    });
  }
}

export async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "fstore-train-defaults-"));
  try {
    const which = (process.env.TRAIN_DEFAULTS_DATA ?? "planted,movielens").split(",");
    const configs = (process.env.TRAIN_DEFAULTS_CONFIGS ?? Object.keys(CONFIGS).join(",")).split(",");
    for (const c of configs)
      if (!CONFIGS[c]) throw new Error(`unknown config ${c}; have ${Object.keys(CONFIGS).join(", ")}`);
    if (which.includes("planted")) await run("planted preferences", await preparePlanted(root), configs);
    if (which.includes("movielens")) {
      const ml = await prepareMovieLens(root);
      if (ml) await run("MovieLens", ml, configs);
    }
    if (which.includes("movielens-llo")) await leaveLastOut(configs);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
