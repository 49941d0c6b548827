import { Args, Flags } from "@oclif/core";
import { TIME_TEXT_HELP, isoUtc } from "../../common/time.js";
import { consoleProgress } from "../../common/progress.js";
import { RepoCommand, splitList } from "../base.js";

export default class MaterializeIncremental extends RepoCommand {
  static override description = `Materialize each view from where its last run ended (or END - ttl) up to END

END is ${TIME_TEXT_HELP}. Bare numbers (2024) and impossible dates (2024-02-30) are refused, and so is an END before a view's start.`;
  static override examples = ["fs materialize-incremental now", "fs materialize-incremental 2025-01-01T00:00:00"];
  static override args = {
    end: Args.string({ required: true, description: 'end time (ISO-8601, "now", or epoch time with a unit)' }),
  };
  static override flags = {
    views: Flags.string({
      char: "v",
      multiple: true,
      description: "only these feature views (comma-separated or repeated)",
    }),
  };
  async run(): Promise<void> {
    const { args, flags } = await this.parse(MaterializeIncremental);
    const store = await this.openStore(flags.repo);
    const report = await store.materializeIncremental(args.end, {
      views: splitList(flags.views),
      progress: consoleProgress(),
    });
    for (const v of report.views) {
      this.log(
        `${v.view}: ${v.rows} rows from ${isoUtc(v.start)} to ${isoUtc(v.end)}, ${v.written} written, ${v.seconds.toFixed(2)}s`,
      );
    }
  }
}
