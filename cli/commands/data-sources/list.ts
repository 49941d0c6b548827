import { RepoCommand } from "../../base.js";

export default class DataSourcesList extends RepoCommand {
  static override description = "List registered data sources";
  async run(): Promise<void> {
    const { flags } = await this.parse(DataSourcesList);
    const store = await this.openStore(flags.repo);
    this.printTable(
      store
        .listDataSources()
        .map((s) => ({ name: s.name, type: s.type, path: s.type === "push" ? s.batchSource.path : s.path })),
    );
  }
}
