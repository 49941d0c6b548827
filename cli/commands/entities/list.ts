import { RepoCommand } from "../../base.js";

export default class EntitiesList extends RepoCommand {
  static override description = "List registered entities";
  async run(): Promise<void> {
    const { flags } = await this.parse(EntitiesList);
    const store = await this.openStore(flags.repo);
    this.printTable(
      store
        .listEntities()
        .map((e) => ({ name: e.name, joinKey: e.joinKeys.join(","), type: e.valueType, description: e.description })),
    );
  }
}
