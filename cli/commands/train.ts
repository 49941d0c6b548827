import { Args, Flags } from "@oclif/core";
import { resolve } from "node:path";
import { ValidationError } from "../../common/errors.js";
import { consoleProgress } from "../../common/progress.js";
import type { TrainJobOptions } from "../../adapters/models/jobs.js";
import type { BackendPreference } from "../../adapters/models/backend.js";
import {
  DLRM_DEFAULTS as DLRM,
  DLRM_JOB_DEFAULTS as DLRM_JOB,
  JOB_DEFAULTS,
  TWO_TOWER_DEFAULTS as TT,
  TWO_TOWER_JOB_DEFAULTS as TT_JOB,
} from "../../adapters/models/defaults.js";
import { RepoCommand, splitList } from "../base.js";

const onOff = (b: boolean) => (b ? "on" : "off");

export default class Train extends RepoCommand {
  static override description =
    "Train a two-tower retrieval or DLRM ranking model on a point-in-time training set from the feature store, evaluate it against popularity on the latest rows, and export it";
  static override examples = [
    "fs train two-tower --repo feature_repo --entity-df data/events.parquet --feature-service retrieval --schema data/schema.json --item-view item_features --output models/two_tower",
    "fs train dlrm --entity-df data/events.parquet -f user_features:age,item_features:price --schema data/schema.json --negatives 4 --output models/dlrm",
  ];
  static override args = {
    model: Args.string({ required: true, options: ["two-tower", "dlrm"], description: "which model to train" }),
  };
  static override flags = {
    "entity-df": Flags.string({
      required: true,
      description: "parquet file of entity rows (join keys, event_timestamp, optional target), or a DuckDB SQL query",
    }),
    features: Flags.string({
      char: "f",
      multiple: true,
      description: "view:feature references",
      exclusive: ["feature-service"],
    }),
    "feature-service": Flags.string({ char: "s", description: "a feature service name" }),
    schema: Flags.string({
      required: true,
      description: "ETL schema.json: cardinalities and tags (user/item/target) of the columns",
    }),
    output: Flags.string({ char: "o", required: true, description: "output folder for the exported model(s)" }),
    "item-view": Flags.string({
      description: "feature view holding every item (item embeddings / catalogue negatives for all of them)",
    }),
    "embeddings-view": Flags.string({
      description:
        "two-tower: also write the item embeddings into this vector view (one field with vectorIndex), whose index the store keeps",
    }),
    "timestamp-column": Flags.string({
      default: "event_timestamp",
      description: "entity df column holding each row's time",
    }),
    epochs: Flags.integer({
      description: `passes over the training rows (default: two-tower ${TT_JOB.epochs}, dlrm ${DLRM_JOB.epochs})`,
    }),
    "batch-size": Flags.integer({
      description: `rows per step (default: two-tower ${TT_JOB.batchSize}, dlrm ${DLRM_JOB.batchSize})`,
    }),
    "learning-rate": Flags.string({
      description: `Adam's learning rate (default: two-tower ${TT.learningRate}, dlrm ${DLRM.learningRate})`,
    }),
    "learning-rate-end": Flags.string({
      description: `the rate falls linearly to this share of its start by the last step, in (0, 1] (default: two-tower ${TT_JOB.learningRateEnd}, dlrm ${DLRM_JOB.learningRateEnd})`,
    }),
    "eval-fraction": Flags.string({
      default: String(JOB_DEFAULTS.evalFraction),
      description:
        "share of the latest rows held out for evaluation; two-tower: a share of the positive rows (target > 0)",
    }),
    k: Flags.integer({ default: JOB_DEFAULTS.k, description: "cut-off of the retrieval metrics" }),
    backend: Flags.string({ default: "auto", options: ["auto", "tensorflow", "wasm", "cpu"] }),
    "max-embedding-dim": Flags.integer({
      default: JOB_DEFAULTS.maxEmbeddingDim,
      description: "two-tower: cap on inferred embedding dims",
    }),
    layers: Flags.string({ default: TT.layers.join(","), description: "two-tower: tower MLP sizes" }),
    "l2-normalize": Flags.boolean({
      default: TT.l2Normalize,
      allowNo: true,
      description: `two-tower: cosine similarity (L2-normalised towers; default ${onOff(TT.l2Normalize)})`,
    }),
    temperature: Flags.string({ default: String(TT.temperature), description: "two-tower: logits divided by this" }),
    logq: Flags.boolean({
      default: TT.logQCorrection,
      allowNo: true,
      description: `two-tower: logQ popularity correction of in-batch negatives (default ${onOff(TT.logQCorrection)})`,
    }),
    "embedding-dim": Flags.integer({ default: DLRM.embeddingDim, description: "dlrm: dimension of every embedding" }),
    negatives: Flags.integer({
      default: DLRM.negatives,
      description: "dlrm: sampled negatives per positive (0 = train on the target column)",
    }),
    "negative-source": Flags.string({
      default: DLRM.negativeSource,
      options: ["batch", "catalogue"],
      description: "dlrm: draw negatives from the batch rows or the item catalogue",
    }),
    seed: Flags.integer({ default: JOB_DEFAULTS.seed }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Train);
    // TensorFlow.js and DuckDB load only when this command runs, so other `fs` commands start fast.
    const { trainDlrmJob, trainTwoTowerJob } = await import("../../adapters/models/jobs.js");
    const store = await this.openStore(flags.repo);
    const features = flags["feature-service"] ?? splitList(flags.features);
    if (Array.isArray(features) && features.length === 0)
      throw new ValidationError("give --features view:feature,... or --feature-service NAME");
    const num = (name: string, v: string) => {
      const x = Number(v);
      if (!Number.isFinite(x) || x <= 0)
        throw new ValidationError(`--${name} must be a positive number, got ${JSON.stringify(v)}`);
      return x;
    };
    const rateEnd = (v: string | undefined) => {
      if (v === undefined) return undefined;
      const x = num("learning-rate-end", v);
      if (x > 1) throw new ValidationError(`--learning-rate-end must be in (0, 1], got ${v}`);
      return x;
    };
    const df = flags["entity-df"];
    const common: TrainJobOptions = {
      store,
      schemaPath: resolve(flags.schema),
      entityDf: /\.parquet$/i.test(df) ? resolve(df) : df,
      features,
      timestampColumn: flags["timestamp-column"],
      outDir: resolve(flags.output),
      epochs: flags.epochs,
      batchSize: flags["batch-size"],
      learningRate: flags["learning-rate"] === undefined ? undefined : num("learning-rate", flags["learning-rate"]),
      learningRateEnd: rateEnd(flags["learning-rate-end"]),
      evalFraction: num("eval-fraction", flags["eval-fraction"]),
      k: flags.k,
      itemView: flags["item-view"],
      embeddingsView: flags["embeddings-view"],
      backend: flags.backend as BackendPreference,
      maxEmbeddingDim: flags["max-embedding-dim"],
      seed: flags.seed,
      progress: consoleProgress(),
      log: (l) => this.log(l),
    };
    const res =
      args.model === "two-tower"
        ? await trainTwoTowerJob({
            ...common,
            twoTower: {
              layers: flags.layers.split(",").map((s) => num("layers", s.trim())),
              l2Normalize: flags["l2-normalize"],
              temperature: num("temperature", flags.temperature),
              logQCorrection: flags.logq,
            },
          })
        : await trainDlrmJob({
            ...common,
            dlrm: {
              embeddingDim: flags["embedding-dim"],
              negatives: flags.negatives,
              negativeSource: flags["negative-source"] as "batch" | "catalogue",
            },
          });
    for (const [model, m] of Object.entries(res.metrics)) {
      this.log(
        `${model}: ${Object.entries(m)
          .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
          .join(", ")}`,
      );
    }
    this.log(`exported ${res.files.join(", ")}`);
  }
}
