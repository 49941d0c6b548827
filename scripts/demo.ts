// `npm run demo`: the main job end to end on the embedded defaults (SQLite, DuckDB, local parquet files).
//   1. generate Ali-CCP-like events and run the ETL into feature_repo/data (user and item feature tables)
//   2. fs apply, fs materialize, fs get-online-features on feature_repo/ (the real CLI)
//   3. a point-in-time training set through the library, as a training job reads it
//   4. the `fs init` path in a fresh folder: init, apply, materialize-incremental now, get-online-features
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { prepareDemoData } from "../adapters/datasets/demo.js";
import { isoUtc } from "../common/time.js";
import { FeatureStore } from "../stores/feature_store.js";
import { consoleProgress } from "../common/progress.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const repo = join(root, "feature_repo");
const fsBin = join(root, "bin/fs.js");
const t0 = performance.now();
const step = (s: string) => console.log(`\n== ${s} (${((performance.now() - t0) / 1000).toFixed(1)}s)`);

/** Run the real `fs` command, echoing it as a user would type it. */
function fs(cwd: string, ...args: string[]): string {
  console.log(`$ fs ${args.join(" ")}`);
  const out = execFileSync(process.execPath, [fsBin, ...args], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.stdout.write(out);
  return out;
}

step("1. generate events and run the ETL into feature_repo/data");
const rows = Number(process.env.DEMO_ROWS ?? 100_000);
const demo = await prepareDemoData(repo, { rows, progress: consoleProgress() });
console.log(
  `${demo.rows.train} train + ${demo.rows.valid} valid events; ${demo.users} users, ${demo.items} items; events ${isoUtc(demo.start.getTime())} .. ${isoUtc(demo.end.getTime())}`,
);

step("2. register and materialize the example repo");
fs(repo, "apply");
fs(repo, "materialize", isoUtc(demo.start.getTime() - 86400_000), isoUtc(demo.end.getTime()));
const user = JSON.parse(
  fs(repo, "get-online-features", "--feature-service", "retrieval", "--entity", `user_id_raw=${demo.sampleUserId}`),
) as {
  results: Array<{ statuses: string[] }>;
};
if (user.results.slice(1).some((r) => r.statuses[0] !== "PRESENT"))
  throw new Error(`demo: user ${demo.sampleUserId} has features missing online`);
fs(
  repo,
  "get-online-features",
  "-f",
  "item_features:item_category,item_features:item_brand",
  ...demo.sampleItemIds.flatMap((id) => ["-e", `item_id_raw=${id}`]),
);

step("3. a point-in-time training set for the ranking model");
const store = await FeatureStore.open(repo);
try {
  const valid = join(demo.processed, "valid", "**", "*.parquet").replaceAll("'", "''");
  const job = await store.getHistoricalFeatures({
    entityDf: `SELECT user_id_raw, item_id_raw, click, TIMESTAMP '${isoUtc(demo.end.getTime()).replace("Z", "")}' AS event_timestamp FROM read_parquet('${valid}') LIMIT 50000`,
    features: "ranking",
    fullFeatureNames: true,
  });
  const out = join(repo, "data", "training_set.parquet");
  await job.toParquet(out);
  const sample = (await job.toRows()).slice(0, 3);
  const columns = await job.columns();
  await job.close();
  console.log(`wrote ${out}: ${columns.length} columns (${columns.slice(0, 6).join(", ")}, ...)`);
  console.table(sample.map((r) => Object.fromEntries(Object.entries(r).slice(0, 7))));
} finally {
  await store.close();
}

step("4. the `fs init` path in a new folder");
const scratch = mkdtempSync(join(tmpdir(), "fstore-demo-"));
try {
  fs(scratch, "init", "shop");
  const shop = join(scratch, "shop");
  fs(shop, "apply");
  fs(shop, "materialize-incremental", "now");
  fs(
    shop,
    "get-online-features",
    "-f",
    "user_stats:clicks_7d,user_stats:favorite_category",
    "-e",
    "user_id=1",
    "-e",
    "user_id=2",
  );
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
step("demo done");
