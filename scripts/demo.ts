// `npm run demo`: the main job end to end on the embedded defaults (SQLite, DuckDB, local parquet files).
//   1. generate Ali-CCP-like events and run the ETL into feature_repo/data (user, item and seen-item tables)
//   2. fs apply, fs materialize, fs get-online-features on feature_repo/ (the real CLI)
//   3. a point-in-time training set through the library, as a training job reads it
//   4. fs train two-tower (item embeddings into the vector view) and fs train dlrm
//   5. the pipeline (recommender.ts, copied from its template now that the models exist): fs plan, fs apply
//   6. fs recommend --debug: a user's top 10 and each stage's candidate counts
//   7. fs recommend batch --to sqlite
//   8. fs serve: POST /recommend, GET /recommendations/{id}, then stop it
//   9. the `fs init` path in a fresh folder: init, apply, materialize-incremental now, get-online-features
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { prepareDemoData } from "../adapters/datasets/demo.js";
import { isoUtc } from "../common/time.js";
import { FeatureStore } from "../stores/feature_store.js";
import { consoleProgress } from "../common/progress.js";
import type { RecommendResponse } from "../stores/serving.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const repo = join(root, "feature_repo");
const fsBin = join(root, "bin/fs.js");
const t0 = performance.now();
const step = (s: string) => console.log(`\n== ${s} (${((performance.now() - t0) / 1000).toFixed(1)}s)`);

/** The arguments as a user would type them in a shell. */
const shellWords = (args: string[]) =>
  args.map((a) => (/[\s'"*]/.test(a) ? `"${a.replaceAll('"', '\\"')}"` : a)).join(" ");

/** Run the real `fs` command, echoing it as a user would type it (and its output unless `quiet`). */
function fsRun(cwd: string, args: string[], quiet = false): string {
  console.log(`$ fs ${shellWords(args)}`);
  const out = execFileSync(process.execPath, [fsBin, ...args], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 << 20,
  });
  if (!quiet) process.stdout.write(out);
  return out;
}
const fs = (cwd: string, ...args: string[]): string => fsRun(cwd, args);

/** Start `fs serve` on a free port, run `use` against it, then stop the server and wait for it to exit. */
async function withServer(cwd: string, use: (url: string) => Promise<void>): Promise<void> {
  console.log("$ fs serve --port 0");
  const child = spawn(process.execPath, [fsBin, "serve", "--port", "0"], {
    cwd,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  try {
    const url = await new Promise<string>((done, fail) => {
      let out = "";
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const m = /"url":"([^"]+)"/.exec(out);
        if (m) done(m[1]);
      });
      void exited.then((code) => fail(new Error(`demo: fs serve exited with ${code} before listening`)));
    });
    await use(url);
  } finally {
    child.kill("SIGTERM");
    console.log(`fs serve stopped (exit code ${await exited})`);
  }
}

step("1. generate events and run the ETL into feature_repo/data");
// The pipeline file joins the repo only once its models exist (step 5): a rerun starts without it.
const pipelineFile = join(repo, "recommender.ts");
rmSync(pipelineFile, { force: true });
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

step("4. train the retrieval and ranking models from the store (few epochs: a demo)");
// The demo's feature tables hold one snapshot row per user and item, so the training rows read them as of the
// end of the event window, in event order (the latest rows are held out for evaluation).
const asOf = isoUtc(demo.end.getTime()).replace("Z", "");
const entityDf = `SELECT e.user_id_raw, e.item_id_raw, e.click, TIMESTAMP '${asOf}' AS event_timestamp FROM read_parquet('data/processed/train/*.parquet') e ORDER BY e.event_timestamp`;
const schema = "data/processed/train/schema.json";
/** Training logs a line per tenth of an epoch on stderr when not on a terminal: the demo keeps the rest. */
const train = (args: string[]) => {
  console.log(`$ fs train ${shellWords(args)}`);
  const run = spawnSync(process.execPath, [fsBin, "train", ...args], { cwd: repo, encoding: "utf8" });
  const lines = `${run.stderr}${run.stdout}`
    .split("\n")
    .filter((l) => !/ \d+\/\d+ \(\d+%\)$| started \(\d+ to do\)$/.test(l));
  console.log(lines.join("\n"));
  if (run.status !== 0) throw new Error(`demo: fs train ${args[0]} exited with ${run.status}`);
};
train([
  "two-tower",
  "--entity-df",
  entityDf,
  "--feature-service",
  "ranking",
  "--schema",
  schema,
  "--item-view",
  "item_features",
  "--embeddings-view",
  "item_embeddings",
  "--output",
  "models/two_tower",
  "--epochs",
  "2",
  "--batch-size",
  "1024",
]);
train([
  "dlrm",
  "--entity-df",
  entityDf,
  "--feature-service",
  "ranking",
  "--schema",
  schema,
  "--output",
  "models/dlrm",
  "--epochs",
  "1",
  "--batch-size",
  "2048",
  "--embedding-dim",
  "16",
  "--learning-rate",
  "0.01",
]);

step("5. add the serving pipeline now that its models exist, and apply it");
copyFileSync(join(repo, "recommender.ts.template"), pipelineFile);
console.log(`copied recommender.ts.template to ${pipelineFile}`);
fs(repo, "plan");
fs(repo, "apply");

step(`6. recommend for user ${demo.sampleUserId}, with each stage's candidates`);
const traced = JSON.parse(
  fsRun(repo, ["recommend", "--pipeline", "recommender", "-e", `user_id_raw=${demo.sampleUserId}`, "--debug"], true),
) as RecommendResponse;
const mine = traced.results[0];
console.table(
  (mine.debug ?? []).map((s) => ({
    stage: s.stage,
    // the query-side stages work on the user's row, before there are candidates
    candidates: s.kind.startsWith("query") ? "-" : s.count,
    ms: s.ms,
    events: s.events ? JSON.stringify(s.events) : "",
  })),
);
console.table(mine.items);
if (mine.items.length !== 10 || mine.fallback !== null)
  throw new Error(`demo: expected 10 personal recommendations, got ${mine.items.length} (fallback ${mine.fallback})`);

step("7. batch recommendations for every user into the SQLite online store");
// Exact retrieval over the training export (it carries item_id_raw): the vector view holds its vectors online only.
fs(repo, "recommend", "batch", "--pipeline", "recommender", "--entities", "all", "--to", "sqlite");

step("8. the same over HTTP: fs serve, POST /recommend, GET /recommendations/{id}");
await withServer(repo, async (url) => {
  const unknownUser = 9_999_999;
  const body = { pipeline: "recommender", entities: { user_id_raw: [demo.sampleUserId, unknownUser] }, top_k: 5 };
  console.log(`POST ${url}/recommend ${JSON.stringify(body)}`);
  const res = await fetch(`${url}/recommend`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = (await res.json()) as RecommendResponse;
  if (!res.ok) throw new Error(`demo: POST /recommend answered ${res.status}: ${JSON.stringify(answer)}`);
  for (const r of answer.results) console.log(`  ${JSON.stringify(r)}`);
  if (answer.results[0]?.fallback !== null || answer.results[1]?.fallback !== "popularity")
    throw new Error(`demo: expected a personal list, then the popularity fallback for user ${unknownUser}`);
  const got = await fetch(`${url}/recommendations/${demo.sampleUserId}`);
  const stored = (await got.json()) as { items?: unknown[] };
  console.log(`GET ${url}/recommendations/${demo.sampleUserId} -> ${got.status}`);
  console.log(`  ${JSON.stringify(stored)}`);
  if (!got.ok || !stored.items?.length) throw new Error(`demo: no precomputed list for user ${demo.sampleUserId}`);
});

step("9. the `fs init` path in a new folder");
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
