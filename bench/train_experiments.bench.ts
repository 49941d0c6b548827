// Model quality on real and synthetic data, popularity measured in the same run as the baseline:
// - MovieLens ml-latest-small, temporal leave-last-out, full-catalogue ranking (train-seen items excluded):
//   Recall@10 / NDCG@10 of popularity, two-tower on ids only, two-tower with genres and year;
// - synthetic Ali-CCP: the same retrieval comparison, and DLRM AUC vs item click-through popularity.
// Results go to .tmp/train-results/*.json and *.svg (git-ignored). `npm run bench -- train_experiments`.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { initBackend } from "../adapters/models/backend.js";
import { aliCcpExperiment, movieLensExperiment, type RetrievalExperimentOptions } from "../adapters/models/experiments.js";
import { report } from "./lib.js";

export const TWO_TOWER_DEFAULTS: RetrievalExperimentOptions = {
  epochs: 10,
  batchSize: 256,
  twoTower: { learningRate: 0.005, logQCorrection: true, l2Normalize: true, temperature: 0.05 },
};

function reportRetrieval(dataset: string, models: Record<string, Record<string, number>>): void {
  const pop = models.popularity;
  for (const [name, m] of Object.entries(models)) {
    if (name === "popularity") continue;
    report(`${dataset} ${name} Recall@10`, m.recall_at_10, "", { baseline: pop.recall_at_10, baselineName: "popularity" });
    report(`${dataset} ${name} NDCG@10`, m.ndcg_at_10, "", { baseline: pop.ndcg_at_10, baselineName: "popularity" });
  }
}

export async function main(): Promise<void> {
  await initBackend("auto");
  const outDir = join(process.cwd(), ".tmp", "train-results");
  const ml = "../shared/data/ml-latest-small";
  if (existsSync(join(ml, "ratings.csv"))) {
    const r = await movieLensExperiment(ml, { ...TWO_TOWER_DEFAULTS, log: console.log, outDir });
    reportRetrieval("MovieLens", r.models);
  } else console.log(`skipping MovieLens: ${ml}/ratings.csv not found`);
  const a = aliCcpExperiment({ ...TWO_TOWER_DEFAULTS, epochs: 5, log: console.log, outDir });
  reportRetrieval("synthetic Ali-CCP", a.retrieval.models);
  report("synthetic Ali-CCP dlrm AUC", a.ranking.dlrm.auc, "", { baseline: a.ranking["item CTR popularity"].auc, baselineName: "item CTR" });
  console.log(`results written to ${outDir}`);
}
