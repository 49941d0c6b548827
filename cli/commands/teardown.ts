import { RepoCommand } from "../base.js";

export default class Teardown extends RepoCommand {
  static override description = "Remove the project's online data and registry entries";
  async run(): Promise<void> {
    const { flags } = await this.parse(Teardown);
    const store = await this.openStore(flags.repo);
    await store.teardown();
    this.log(`Tore down project "${store.project}".`);
  }
}
