// Every `fs` command, by oclif id ("feature-views:list" is typed `fs feature-views list`).
// oclif loads this map (explicit strategy) so startup does not scan folders.
import type { Command } from "@oclif/core";
import Version from "./commands/version.js";

export const COMMANDS: Record<string, typeof Command> = {
  version: Version,
};
