import { Args, Flags } from "@oclif/core";
import { isoUtc } from "../../common/time.js";
import { consoleProgress } from "../../common/progress.js";
import { RepoCommand, splitList } from "../base.js";

export default class Materialize extends RepoCommand {
  static override description = "Load the latest feature values with START <= event time <= END into the online store";
  static override examples = [
    "fs materialize 1995-01-01T01:01:01 2025-01-01T01:01:01",
    "fs materialize 2024-01-01 now --views user_features",
  ];
  static override args = {
    start: Args.string({ required: true, description: "start (ISO time, UTC when no zone)" }),
    end: Args.string({ required: true, description: 'end (ISO time or "now")' }),
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
