import { Command } from "@oclif/core";
import { createRequire } from "node:module";

export default class Version extends Command {
  static override description = "Print the fstore version";
  async run(): Promise<void> {
    const pkg = createRequire(import.meta.url)("../../../package.json") as { version: string };
    this.log(pkg.version);
  }
}
