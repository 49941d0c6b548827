import { Flags } from "@oclif/core";
import { consoleProgress } from "../../../common/progress.js";
import { DEFAULT_BLOCK_SIZE, recommendBatch } from "../../../adapters/serving/batch_recommend.js";
import { RepoCommand } from "../../base.js";

export default class RecommendBatch extends RepoCommand {
  static override description =
    "Recommend for many users at once: exact full-catalogue retrieval (seen items excluded), then the rest of the pipeline; writes each user's list as JSON under USER:{id} in Redis, in a table of the SQLite online store, or to parquet";
  static override examples = [
    "fs recommend batch --pipeline recommender --entities all --to sqlite",
    "fs recommend batch --pipeline recommender --entities users.parquet --to redis --key-prefix USER:",
    "fs recommend batch --pipeline recommender --entities all --to parquet --output data/recs.parquet",
  ];
  static override flags = {
    pipeline: Flags.string({ char: "p", required: true, description: "the pipeline's name in the registry" }),
    entities: Flags.string({
      required: true,
      description:
        'a parquet file with the pipeline\'s join key column, or "all" (every user the QueryFeatures view holds)',
    }),
    to: Flags.string({ required: true, options: ["redis", "sqlite", "parquet"], description: "where the lists go" }),
    "key-prefix": Flags.string({ description: 'Redis / SQLite key of a list: prefix + id (default "USER:")' }),
    output: Flags.string({
      char: "o",
      description: "the parquet file (--to parquet; default data/recommendations.parquet)",
    }),
    redis: Flags.string({ description: "Redis connection string when the online store is not Redis (host:port,db=0)" }),
    "item-embeddings": Flags.string({
      description: "a parquet of item embeddings (item join key + embedding); default the Retrieve stage's vector view",
    }),
    "block-size": Flags.integer({ default: DEFAULT_BLOCK_SIZE, min: 1, description: "users scored at once" }),
    "top-k": Flags.integer({ min: 1, description: "items per user (default the Order stage's topK)" }),
    seed: Flags.integer({ description: "seed of softmax ordering (the same seed and block size give the same lists)" }),
  };
  async run(): Promise<void> {
    const { flags } = await this.parse(RecommendBatch);
    const store = await this.openStore(flags.repo);
    const report = await recommendBatch(store, {
      pipeline: flags.pipeline,
      entities: flags.entities,
      to: flags.to as "redis" | "sqlite" | "parquet",
      keyPrefix: flags["key-prefix"],
      output: flags.output,
      redis: flags.redis,
      itemEmbeddings: flags["item-embeddings"],
      blockSize: flags["block-size"],
      topK: flags["top-k"],
      seed: flags.seed,
      progress: consoleProgress(),
    });
    const events = Object.entries(report.events)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    this.log(
      `${report.users} users x ${report.items} items -> ${report.target} in ${report.seconds.toFixed(2)}s (${Math.round(report.users / Math.max(report.seconds, 1e-9))} users/s); popularity fallbacks ${report.fallbacks}${events ? `; ${events}` : ""}`,
    );
  }
}
