import { Args } from "@oclif/core";
import { basename, resolve } from "node:path";
import { initRepo } from "../scaffold.js";
import { FstoreCommand } from "../base.js";

export default class Init extends FstoreCommand {
  static override description = "Create a new feature repository with example definitions and generated data";
  static override examples = [
    "fs init demo && cd demo && fs apply && fs materialize-incremental now && fs get-online-features -f user_stats:clicks_7d -e user_id=1",
  ];
  static override args = { name: Args.string({ description: "folder (and project) name", default: "feature_repo" }) };
  async run(): Promise<void> {
    const { args } = await this.parse(Init);
    const project = basename(resolve(args.name)).replace(/[^A-Za-z0-9_]/g, "_");
    const repo = await initRepo(args.name, project);
    this.log(
      `Created feature repository "${project}" in ${repo}.\nNext: cd ${args.name} && fs apply && fs materialize-incremental now && fs get-online-features -f user_stats:clicks_7d -e user_id=1`,
    );
  }
}
