import { Flags } from "@oclif/core";
import { resolve } from "node:path";
import { ValidationError } from "../../../common/errors.js";
import { consoleProgress } from "../../../common/progress.js";
import type { BackendPreference } from "../../../adapters/models/backend.js";
import { FstoreCommand, splitList } from "../../base.js";

const MODELS = ["gru", "transformer", "knn", "rules", "popularity"];

/** "1-7" or "1,2,5" -> [1, 2, ...]. */
export function parseDays(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(",").map((s) => s.trim())) {
    const m = /^(-?\d+)(?:-(-?\d+))?$/.exec(part);
    if (!m) throw new ValidationError(`--days "${text}": expected days like 1-7 or 1,2,3`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new ValidationError(`--days "${text}": range ${part} runs backwards`);
    for (let d = a; d <= b; d++) out.push(d);
  }
  return [...new Set(out)];
}

export default class TrainSession extends FstoreCommand {
  static override description =
    "Train session-based next-item models (GRU, transformer) day by day on the session ETL's output, evaluate each next day beside the popularity, V-SkNN and sequential-rules baselines, and save every model as a folder with its results";
  static override examples = [
    "fs datasets generate rees46 --rows 130000 --out data/events.parquet",
    "fs etl run sessions.ts --input data/events.parquet --output data/sessions --partition-by day_index --save data/workflow",
    "fs train session --model gru,transformer --data data/sessions --output models/sessions",
    "fs train session --model knn --data data/sessions --days 1-4 --output models/knn",
  ];
  static override flags = {
    model: Flags.string({
      char: "m",
      multiple: true,
      default: ["gru", "transformer"],
      description: `models to train: ${MODELS.join(", ")} (comma-separated or repeated)`,
    }),
    data: Flags.string({
      char: "d",
      required: true,
      description: "the session ETL's output folder (parquet + schema.json)",
    }),
    output: Flags.string({
      char: "o",
      required: true,
      description: "output folder: one model folder per model, results",
    }),
    days: Flags.string({ description: "days to use, e.g. 1-7 or 1,2,3 (default: all); the first is only trained on" }),
    periods: Flags.integer({ description: "data of one day: split it into this many time periods (default 4)" }),
    "no-baselines": Flags.boolean({ description: "do not evaluate (and save) the baselines beside the models" }),
    features: Flags.string({
      description: "side-feature list columns (default: item-tagged categorical and continuous lists)",
    }),
    epochs: Flags.integer({ description: "passes over each day's sessions (default 5)" }),
    "batch-size": Flags.integer({ description: "sessions per batch (default 32)" }),
    "learning-rate": Flags.string({ description: "Adam's starting rate (default: GRU 0.01, transformer 0.005)" }),
    "learning-rate-end": Flags.string({
      description: "the rate falls linearly over each day's batches to this share of its start (default 0.3)",
    }),
    dim: Flags.integer({ default: 64, description: "item embedding and hidden size" }),
    window: Flags.integer({ default: 20, description: "latest items of a session the models read" }),
    softmax: Flags.string({
      default: "full",
      options: ["full", "sampled"],
      description: "output softmax: over every item, or against --negatives drawn items (cheaper for large catalogues)",
    }),
    negatives: Flags.integer({ default: 512, description: "sampled softmax: items drawn per batch" }),
    layers: Flags.integer({ default: 1, description: "transformer blocks" }),
    heads: Flags.integer({ default: 2, description: "transformer attention heads" }),
    objective: Flags.string({
      default: "causal",
      options: ["causal", "mlm"],
      description: "transformer: next item at every position (causal) or masked items (mlm, as XLNet-MLM)",
    }),
    backend: Flags.string({ default: "auto", options: ["auto", "tensorflow", "wasm", "cpu"] }),
    seed: Flags.integer({ default: 42 }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(TrainSession);
    const models = splitList(flags.model);
    for (const m of models)
      if (!MODELS.includes(m)) throw new ValidationError(`--model ${m}: expected one of ${MODELS.join(", ")}`);
    // a rate flag as a number in (0, max], or undefined for the model's default
    const rate = (name: "learning-rate" | "learning-rate-end", max: number, expected: string) => {
      const raw = flags[name];
      const x = raw === undefined ? undefined : Number(raw);
      if (x !== undefined && !(x > 0 && x <= max))
        throw new ValidationError(`--${name} must be ${expected}, got ${raw}`);
      return x;
    };
    const lr = rate("learning-rate", Infinity, "a positive number");
    const lrEnd = rate("learning-rate-end", 1, "in (0, 1]");
    // TensorFlow.js and DuckDB load only when this command runs, so other `fs` commands start fast.
    const { trainSessionJob } = await import("../../../adapters/models/session/job.js");
    const res = await trainSessionJob({
      data: resolve(flags.data),
      outDir: resolve(flags.output),
      models: models as Parameters<typeof trainSessionJob>[0]["models"],
      baselines: !flags["no-baselines"],
      days: flags.days ? parseDays(flags.days) : undefined,
      periods: flags.periods,
      features: flags.features ? splitList([flags.features]) : undefined,
      neural: {
        epochs: flags.epochs,
        batchSize: flags["batch-size"],
        learningRate: lr,
        learningRateEnd: lrEnd,
        dim: flags.dim,
        window: flags.window,
        softmax: flags.softmax as "full" | "sampled",
        negatives: flags.negatives,
        layers: flags.layers,
        heads: flags.heads,
        objective: flags.objective as "causal" | "mlm",
        seed: flags.seed,
      },
      backend: flags.backend as BackendPreference,
      progress: consoleProgress(),
      log: (l) => this.log(l),
    });
    this.log(`saved ${Object.values(res.models).join(", ")}; results in ${res.files.join(", ")}`);
  }
}
