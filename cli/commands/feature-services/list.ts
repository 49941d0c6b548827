import { RepoCommand } from "../../base.js";

export default class FeatureServicesList extends RepoCommand {
  static override description = "List registered feature services";
  async run(): Promise<void> {
    const { flags } = await this.parse(FeatureServicesList);
    const store = await this.openStore(flags.repo);
    this.printTable(
      store.listFeatureServices().map((s) => ({
        name: s.name,
        features: s.projections.map((p) => `${p.view}:${p.features.join("|")}`).join(", "),
      })),
    );
  }
}
