import { formatPlan } from "../../registry/plan.js";
import { RepoCommand } from "../base.js";

export default class Plan extends RepoCommand {
  static override description = "Show what `fs apply` would create, update and delete";
  async run(): Promise<void> {
    const { flags } = await this.parse(Plan);
    const store = await this.openStore(flags.repo);
    this.log(formatPlan(await store.plan()));
  }
}
