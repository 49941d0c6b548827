import { Args, Flags } from "@oclif/core";
import { ValidationError } from "../../../common/errors.js";
import { FstoreCommand } from "../../base.js";

export default class DatasetsGenerate extends FstoreCommand {
  static override description =
    "Generate a synthetic data set: aliccp (Ali-CCP-like impressions with clicks from planted preferences) or rees46 (e-commerce events with planted sequences)";
  static override examples = [
    "fs datasets generate aliccp --rows 1000000 --out data/aliccp",
    "fs datasets generate rees46 --rows 100000 --out data/events.parquet",
  ];
  static override args = {
    kind: Args.string({ required: true, options: ["aliccp", "rees46"], description: "which data set" }),
  };
  static override flags = {
    rows: Flags.integer({
      char: "n",
      required: true,
      description: "aliccp: impressions; rees46: sessions are rows / 6.5 (about that many events)",
    }),
    out: Flags.string({
      char: "o",
      required: true,
      description: "aliccp: output folder (train/, valid/); rees46: a .parquet or .csv file",
    }),
    seed: Flags.integer({ default: 42 }),
    users: Flags.integer({ description: "number of users" }),
    items: Flags.integer({ description: "number of items" }),
    "valid-fraction": Flags.string({ description: "aliccp: fraction of rows in valid/ (default 0.3)" }),
    end: Flags.string({ description: "aliccp: newest event time (ISO; default 2024-06-01T00:00:00Z)" }),
    days: Flags.integer({
      description: "aliccp: span of event times in days (default 3); rees46: number of days (default 7)",
    }),
    start: Flags.string({ description: "rees46: first day (YYYY-MM-DD, default 2019-10-01)" }),
  };
  async run(): Promise<void> {
    const { generateAliccp, generateRees46 } = await import("../../../adapters/datasets/index.js");
    const { args, flags } = await this.parse(DatasetsGenerate);
    const t0 = Date.now();
    if (args.kind === "aliccp") {
      const vf = flags["valid-fraction"] === undefined ? undefined : Number(flags["valid-fraction"]);
      if (vf !== undefined && !(vf >= 0 && vf < 1))
        throw new ValidationError(`--valid-fraction must be in [0, 1), got ${flags["valid-fraction"]}`);
      const r = await generateAliccp(flags.out, {
        rows: flags.rows,
        seed: flags.seed,
        users: flags.users,
        items: flags.items,
        validFraction: vf,
        end: flags.end,
        spanDays: flags.days,
      });
      this.log(
        `aliccp: ${r.rows.train} train + ${r.rows.valid} valid rows, ${r.users} users, ${r.items} items, click rate ${r.clickRate.toFixed(3)} -> ${r.dir} (${((Date.now() - t0) / 1000).toFixed(1)}s)`,
      );
    } else {
      const r = await generateRees46(flags.out, {
        sessions: Math.max(1, Math.round(flags.rows / 6.5)),
        seed: flags.seed,
        users: flags.users,
        items: flags.items,
        start: flags.start,
        days: flags.days,
      });
      this.log(
        `rees46: ${r.events} events in ${r.sessions} sessions -> ${r.path} (${((Date.now() - t0) / 1000).toFixed(1)}s)`,
      );
    }
  }
}
