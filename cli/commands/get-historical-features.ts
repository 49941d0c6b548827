import { Flags } from "@oclif/core";
import { resolve } from "node:path";
import { ValidationError } from "../../common/errors.js";
import { RepoCommand, splitList } from "../base.js";

export default class GetHistoricalFeatures extends RepoCommand {
  static override description =
    "Build a point-in-time-correct training set: entity rows joined with features as of each row's timestamp";
  static override examples = [
    "fs get-historical-features --entity-df entities.parquet --features user_features:age --output train.parquet",
  ];
  static override flags = {
    "entity-df": Flags.string({
      required: true,
      description: "parquet file of entity rows (join keys + event_timestamp), or a DuckDB SQL query",
    }),
    features: Flags.string({
      char: "f",
      multiple: true,
      description: "view:feature references",
      exclusive: ["feature-service"],
    }),
    "feature-service": Flags.string({ char: "s", description: "a feature service name" }),
    output: Flags.string({ char: "o", required: true, description: "output parquet file" }),
    "full-feature-names": Flags.boolean({ description: "name features view__feature" }),
    "timestamp-column": Flags.string({
      default: "event_timestamp",
      description: "entity df column holding each row's time",
    }),
    "filter-by-created-timestamp": Flags.boolean({
      description: "also require created <= the row's time (no late backfills)",
    }),
  };
  async run(): Promise<void> {
    const { flags } = await this.parse(GetHistoricalFeatures);
    const store = await this.openStore(flags.repo);
    const features = flags["feature-service"] ?? splitList(flags.features);
    if (Array.isArray(features) && features.length === 0)
      throw new ValidationError("give --features view:feature,... or --feature-service NAME");
    const df = flags["entity-df"];
    const entityDf = /\.parquet$/i.test(df) ? resolve(df) : df;
    const t0 = performance.now();
    const job = await store.getHistoricalFeatures({
      entityDf,
      features,
      fullFeatureNames: flags["full-feature-names"],
      timestampColumn: flags["timestamp-column"],
      filterByCreatedTimestamp: flags["filter-by-created-timestamp"],
    });
    const out = resolve(flags.output);
    await job.toParquet(out);
    const cols = await job.columns();
    await job.close();
    this.log(`wrote ${out} (${cols.join(", ")}) in ${((performance.now() - t0) / 1000).toFixed(2)}s`);
  }
}
