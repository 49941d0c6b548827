import { formatPlan } from "../../registry/plan.js";
import { RepoCommand } from "../base.js";

export default class Apply extends RepoCommand {
  static override description = "Register the repo's definitions and create their online tables (all-or-nothing)";
  async run(): Promise<void> {
    const { flags } = await this.parse(Apply);
    const store = await this.openStore(flags.repo);
    const plan = await store.apply();
    this.log(formatPlan(plan));
    if (plan.entries.length) this.log(`Applied to project "${store.project}" (registry ${store.config.registryPath}).`);
  }
}
