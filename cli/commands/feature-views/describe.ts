import { Args } from "@oclif/core";
import { isoUtc } from "../../../common/time.js";
import { RepoCommand } from "../../base.js";

export default class FeatureViewsDescribe extends RepoCommand {
  static override description = "Show a feature view's definition and materialization intervals as JSON";
  static override args = { name: Args.string({ required: true, description: "feature view name" }) };
  async run(): Promise<void> {
    const { args, flags } = await this.parse(FeatureViewsDescribe);
    const store = await this.openStore(flags.repo);
    const view = store.getFeatureView(args.name);
    const intervals = store
      .contents()
      .materializations.filter((m) => m.view === view.name)
      .map((m) => ({ start: isoUtc(m.start), end: isoUtc(m.end), at: isoUtc(m.at) }));
    this.log(JSON.stringify({ ...view, materializations: intervals }, null, 2));
  }
}
