// Shared plumbing of the `fs` commands: the repo flag, opening the store, clear errors.
import { Command, Flags } from "@oclif/core";
import { resolve } from "node:path";
import { FstoreError } from "../common/errors.js";
import { FeatureStore } from "../stores/feature_store.js";
import "../adapters/serving/index.js"; // registers the serving runtime: apply checks pipelines, recommend runs them

/** A command whose user-facing errors print as one line (see reportError). */
export abstract class FstoreCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number }): Promise<void> {
    return reportError(this, err, () => super.catch(err));
  }
}

export abstract class RepoCommand extends FstoreCommand {
  static override baseFlags = {
    repo: Flags.string({
      char: "r",
      aliases: ["chdir"],
      description: "feature repository folder (holds feature_store.yaml)",
      default: ".",
      helpGroup: "GLOBAL",
    }),
  };

  private store: FeatureStore | null = null;

  protected async openStore(repo: string): Promise<FeatureStore> {
    this.store = await FeatureStore.open(resolve(repo));
    return this.store;
  }

  protected override async finally(err: Error | undefined): Promise<void> {
    await this.store?.close();
    this.store = null;
    await super.finally(err);
  }

  protected printTable(rows: Array<Record<string, string>>): void {
    if (rows.length === 0) {
      this.log("(none)");
      return;
    }
    const cols = Object.keys(rows[0]);
    const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? "").length)));
    const line = (vals: string[]) =>
      vals
        .map((v, i) => v.padEnd(width[i]))
        .join("  ")
        .trimEnd();
    this.log(line(cols.map((c) => c.toUpperCase())));
    for (const r of rows) this.log(line(cols.map((c) => r[c] ?? "")));
  }
}

/**
 * Errors a user can act on print unwrapped on one line (file, object and value at fault), without a
 * stack trace; anything else goes to oclif's handler.
 */
export function reportError(cmd: Command, err: Error, fallback: () => Promise<void>): Promise<void> {
  if (err instanceof FstoreError || ["FstoreError", "ValidationError", "NotFoundError"].includes(err.name)) {
    process.stderr.write(`Error: ${err.message}\n`);
    cmd.exit(1);
  }
  return fallback();
}

/** "a:x,b:y" or repeated flags -> list of references. */
export function splitList(values: string[] | undefined): string[] {
  return (values ?? [])
    .flatMap((v) => v.split(","))
    .map((s) => s.trim())
    .filter(Boolean);
}
