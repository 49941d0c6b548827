import { RepoCommand } from "../../base.js";

export default class FeatureViewsList extends RepoCommand {
  static override description = "List registered feature views";
  async run(): Promise<void> {
    const { flags } = await this.parse(FeatureViewsList);
    const store = await this.openStore(flags.repo);
    this.printTable(
      store.listFeatureViews().map((v) => ({
        name: v.name,
        entities: v.entities.join(","),
        features: String(v.features.length),
        ttl: v.ttlSeconds ? `${v.ttlSeconds}s` : "none",
        online: String(v.online),
        source: v.source.name,
      })),
    );
  }
}
