import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { Args, Flags } from "@oclif/core";
import type { Splits, Workflow } from "../../../adapters/etl/index.js";
import { ValidationError } from "../../../common/errors.js";
import { consoleProgress } from "../../../common/progress.js";
import { FstoreCommand } from "../../base.js";

/** A workflow from a .ts file (its default export, or its only exported Workflow) or a saved workflow folder. */
export async function loadWorkflowFrom(path: string): Promise<{ workflow: Workflow; saved: boolean }> {
  // Loaded here, not at the top: every fs command loads this file.
  const { isWorkflow, Workflow, WORKFLOW_FILE } = await import("../../../adapters/etl/index.js");
  const { importTs } = await import("../../../registry/loader.js");
  const p = resolve(path);
  if (!existsSync(p)) throw new ValidationError(`workflow ${path}: no such file or folder`);
  if (statSync(p).isDirectory()) {
    if (!existsSync(join(p, WORKFLOW_FILE)))
      throw new ValidationError(
        `workflow ${path}: the folder has no ${WORKFLOW_FILE} (save one with Workflow.save or --save)`,
      );
    return { workflow: Workflow.load(p), saved: true };
  }
  const mod = await importTs(p);
  const found =
    mod.default !== undefined && isWorkflow(mod.default) ? [mod.default] : Object.values(mod).filter(isWorkflow);
  if (found.length !== 1)
    throw new ValidationError(
      `workflow ${path}: expected a default export or exactly one exported Workflow, found ${found.length}`,
    );
  // jiti may have loaded a second copy of the library for the file: that copy's Workflow works the same
  return { workflow: found[0], saved: false };
}

function parseSplits(s: string | undefined): Splits | undefined {
  if (!s) return undefined;
  const parts = s.split(",").map((x) => Number(x.trim()));
  if (parts.length < 1 || parts.length > 3 || parts.some((x) => Number.isNaN(x)))
    throw new ValidationError(`--splits "${s}": expected train[,valid[,test]] fractions, e.g. 0.8,0.1,0.1`);
  return { train: parts[0], valid: parts[1] ?? 0, test: parts[2] ?? 0 };
}

export default class EtlRun extends FstoreCommand {
  static override description =
    "Fit a workflow (a .ts file exporting a Workflow, or a saved workflow folder) and write the transformed data as parquet with schema.json";
  static override examples = [
    "fs etl run workflow.ts --input data/raw/train --output data/processed/train --save data/workflow",
    "fs etl run data/workflow --input data/raw/valid --output data/processed/valid",
    "fs etl run sessions.ts --input events.parquet --output sessions --partition-by day_index --splits 0.8,0.1,0.1",
  ];
  static override args = {
    workflow: Args.string({ required: true, description: "workflow .ts file or saved workflow folder" }),
  };
  static override flags = {
    input: Flags.string({
      char: "i",
      required: true,
      description: "dataset to transform: parquet file, folder or glob, or a CSV file",
    }),
    output: Flags.string({ char: "o", required: true, description: "output folder" }),
    fit: Flags.string({ description: "fit on this dataset instead of --input (a .ts workflow is always fitted)" }),
    save: Flags.string({ description: "save the fitted workflow to this folder" }),
    "partition-by": Flags.string({ description: "output column to partition by (one folder per value)" }),
    splits: Flags.string({ description: "train,valid,test fractions per partition, e.g. 0.8,0.1,0.1" }),
    "split-by": Flags.string({ description: "order rows by this column to split (default: a hash of the row)" }),
    training: Flags.boolean({
      description:
        "the input is training data (target encoding uses out-of-fold statistics); default when fitting on the input",
    }),
    "memory-limit": Flags.string({ description: 'DuckDB memory limit, e.g. "2GB"' }),
  };
  async run(): Promise<void> {
    const { args, flags } = await this.parse(EtlRun);
    const progress = consoleProgress();
    const { workflow, saved } = await loadWorkflowFrom(args.workflow);
    const fitOn = flags.fit ?? (saved ? null : flags.input);
    const t0 = Date.now();
    if (fitOn) await workflow.fit(fitOn, { progress });
    if (flags.save) {
      workflow.save(flags.save);
      this.log(`saved workflow to ${resolve(flags.save)}`);
    }
    const res = await workflow.transform(flags.input, flags.output, {
      partitionBy: flags["partition-by"],
      splits: parseSplits(flags.splits),
      splitBy: flags["split-by"],
      training: flags.training || (fitOn !== null && resolve(fitOn) === resolve(flags.input)),
      memoryLimit: flags["memory-limit"],
      progress,
    });
    const s = (Date.now() - t0) / 1000;
    this.log(
      `wrote ${res.rows} rows to ${res.outDir} (${res.files.length} file${res.files.length === 1 ? "" : "s"}, ${res.schema.length} columns) in ${s.toFixed(1)}s`,
    );
  }
}
