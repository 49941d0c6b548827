import { RepoCommand } from "../base.js";

export default class RegistryDump extends RepoCommand {
  static override description = "Print the registry of the project as JSON";
  async run(): Promise<void> {
    const { flags } = await this.parse(RegistryDump);
    const store = await this.openStore(flags.repo);
    this.log(JSON.stringify(store.contents(), null, 2));
  }
}
