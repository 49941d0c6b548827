import { Args, Flags } from "@oclif/core";
import { TIME_TEXT_HELP, isoUtc } from "../../common/time.js";
import { consoleProgress } from "../../common/progress.js";
import { RepoCommand, splitList } from "../base.js";

export default class Materialize extends RepoCommand {
  static override description = `Load the latest feature values with START <= event time <= END into the online store

START and END are each ${TIME_TEXT_HELP}. Bare numbers (2024) and impossible dates (2024-02-30) are refused.`;
  static override examples = [
    "fs materialize 1995-01-01T01:01:01 2025-01-01T01:01:01",
    "fs materialize 2024-01-01 now --views user_features",
    "fs materialize 1706702400s 1709251200s",
  ];
  static override args = {
    start: Args.string({ required: true, description: "start time (ISO-8601, UTC when no zone; see below)" }),
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
    const { args, flags } = await this.parse(Materialize);
    const store = await this.openStore(flags.repo);
    const report = await store.materialize(args.start, args.end, {
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
