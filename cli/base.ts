// Shared plumbing of the `fs` commands: the repo flag, opening the store, clear errors.
import { Command, Flags } from "@oclif/core";
import { resolve } from "node:path";
import { FstoreError } from "../registry/errors.js";
import { FeatureStore } from "../stores/feature_store.js";

export abstract class RepoCommand extends Command {
  static override baseFlags = {
    repo: Flags.string({ char: "r", aliases: ["chdir"], description: "feature repository folder (holds feature_store.yaml)", default: ".", helpGroup: "GLOBAL" }),
  };

  private store: FeatureStore | null = null;

  protected async openStore(repo: string): Promise<FeatureStore> {
    this.store = await FeatureStore.open(resolve(repo));
    return this.store;
  }

  protected override async finally(err: Error | undefined): Promise<void> {
    await this.store?.close();
    this.store = null;
    return super.finally(err);
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<void> {
    // Errors a user can act on print as one line, without a stack trace.
    if (err instanceof FstoreError) this.error(err.message, { exit: 1 });
    return super.catch(err);
  }

  protected printTable(rows: Array<Record<string, string>>): void {
    if (rows.length === 0) {
      this.log("(none)");
      return;
    }
    const cols = Object.keys(rows[0]);
    const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? "").length)));
    const line = (vals: string[]) => vals.map((v, i) => v.padEnd(width[i])).join("  ").trimEnd();
    this.log(line(cols.map((c) => c.toUpperCase())));
    for (const r of rows) this.log(line(cols.map((c) => r[c] ?? "")));
  }
}

/** "a:x,b:y" or repeated flags -> list of references. */
export function splitList(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(",")).map((s) => s.trim()).filter(Boolean);
}
