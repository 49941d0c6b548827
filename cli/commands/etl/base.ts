// Shared by the etl and datasets commands: errors a user can act on print as one line.
import { Command } from "@oclif/core";
import { FstoreError } from "../../../registry/errors.js";

export abstract class DataCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number }): Promise<void> {
    // by name too: a workflow file loaded through jiti may throw another copy's ValidationError
    if (err instanceof FstoreError || ["FstoreError", "ValidationError", "NotFoundError"].includes(err?.name)) this.error(err.message, { exit: 1 });
    return super.catch(err);
  }
}
