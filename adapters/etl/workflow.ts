// A Workflow: operators applied in order. fit() computes each operator's state on the data as the earlier
// operators leave it; transform() compiles the whole chain to one SQL query over the input and streams it to
// parquet (transform.ts); transformRows()/transformRow() apply the same chain to JS objects for online requests.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { openDuckDB } from "../../common/duckdb.js";
import { ValidationError, errorMessage } from "../../common/errors.js";
import { type ProgressSink, silentProgress } from "../../common/progress.js";
import type { TaggedColumn } from "./columns.js";
import type { Op, OpJson } from "./operators/base.js";
import { Categorify } from "./operators/categorify.js";
import { opFromJSON } from "./operators/kinds.js";
import { compile, datasetColumns, fitPrefix, needsRowOrder, requireRows, sqlContext, withFitTags } from "./plan.js";
import { type Dataset, type Row, describe, duckdbSettings, sourceSql } from "./sql.js";
import { type TransformOptions, type TransformResult, transformDataset } from "./transform.js";

export const WORKFLOW_FILE = "workflow.json";

function isWorkflowJson(x: unknown): x is { format: string; ops: OpJson[]; inputColumns: TaggedColumn[] | null } {
  return (
    !!x &&
    typeof x === "object" &&
    (x as { format?: unknown }).format === "fstore-workflow" &&
    Array.isArray((x as { ops?: unknown }).ops)
  );
}

export class Workflow {
  /** brand: survives loading through another module instance (jiti) */
  readonly fstoreKind = "workflow" as const;
  readonly ops: Op[];
  /** where fit state lives: a temp folder after fit(), the saved folder after save()/load() */
  stateDir: string | null = null;
  /** the columns of the data fit() saw */
  inputColumns: TaggedColumn[] | null = null;
  private onlineReady = false;
  /** the columns each operator receives online, by the signature of the request rows' keys */
  private onlineColumns = new Map<string, TaggedColumn[][]>();

  constructor(ops: Op[] = []) {
    if (!Array.isArray(ops)) throw new ValidationError("Workflow: expected an array of operators");
    this.ops = [...ops];
  }

  /** A new workflow with more operators after these. (Not `then`: a workflow must not look like a promise.) */
  add(...ops: Op[]): Workflow {
    return new Workflow([...this.ops, ...ops]);
  }

  get needsRowOrder(): boolean {
    return needsRowOrder(this.ops);
  }

  get fitted(): boolean {
    return this.ops.every((o) => !o.needsFit || o.fitted);
  }

  /** Computes every operator's state on `dataset` (a parquet file, folder or glob, or a CSV file). */
  async fit(
    dataset: Dataset,
    opts: { progress?: ProgressSink; memoryLimit?: string; threads?: number } = {},
  ): Promise<this> {
    const progress = opts.progress ?? silentProgress;
    const settings = duckdbSettings({ memoryLimit: opts.memoryLimit, threads: opts.threads });
    if (!this.stateDir) this.stateDir = mkdtempSync(join(tmpdir(), "fstore-workflow-"));
    const duck = await openDuckDB({ ...settings, tempDirectory: join(this.stateDir, ".spill") });
    const conn = duck.connection;
    try {
      const input = await datasetColumns(conn, dataset);
      this.inputColumns = input;
      const source = await sourceSql(conn, dataset, this.needsRowOrder);
      await requireRows(conn, source, dataset);
      const ctx = sqlContext(this, true);
      // a refit starts over: state checks against the previous fit must not apply to the new data
      for (const op of this.ops) if (op.needsFit) op.fitted = false;
      progress.start("fit", this.ops.length);
      const colsAt: TaggedColumn[][] = [input];
      for (let i = 0; i < this.ops.length; i++) {
        const op = this.ops[i];
        const cols = colsAt[i];
        const upTo = await compile(conn, this.ops, source, input, i, ctx, false);
        let from = `(${upTo.prefix} SELECT * FROM ${upTo.last})`;
        const types = new Map(
          (await describe(conn, from, `step ${i + 1} (${op.describe()})`)).map((t) => [t.name, t.type]),
        );
        op.check(cols, types);
        if (op.needsFit) {
          const k = fitPrefix(this.ops, colsAt, i);
          if (k < i) {
            const pre = await compile(conn, this.ops, source, input, k, ctx, false);
            from = `(${pre.prefix} SELECT * FROM ${pre.last})`;
          }
          await op.fit({ conn, stateDir: this.stateDir, from, types }, cols);
        }
        op.fitted = true;
        colsAt.push(op.columns(cols));
        progress.tick(i + 1);
      }
      progress.stop();
    } finally {
      duck.close();
      rmSync(join(this.stateDir, ".spill"), { recursive: true, force: true });
    }
    this.onlineReady = false;
    this.onlineColumns.clear();
    return this;
  }

  /** The columns (with tags and properties) the workflow outputs for the columns fit() saw. */
  outputColumns(input: TaggedColumn[] | null = this.inputColumns): TaggedColumn[] {
    if (!input) throw new ValidationError("Workflow: not fitted; the output columns depend on the input columns");
    return this.ops.reduce((cols, op) => op.columns(cols), input);
  }

  /** The SQL transform() runs over `dataset`. */
  async toSql(dataset: Dataset, opts: { training?: boolean } = {}): Promise<string> {
    const duck = await openDuckDB();
    const conn = duck.connection;
    try {
      const input = withFitTags(this, await datasetColumns(conn, dataset));
      const source = await sourceSql(conn, dataset, this.needsRowOrder);
      return (await compile(conn, this.ops, source, input, this.ops.length, sqlContext(this, opts.training ?? false)))
        .sql;
    } finally {
      duck.close();
    }
  }

  /** Writes the transformed dataset as parquet under outDir, with schema.json. */
  async transform(dataset: Dataset, outDir: string, opts: TransformOptions = {}): Promise<TransformResult> {
    return transformDataset(this, dataset, outDir, opts);
  }

  async fitTransform(dataset: Dataset, outDir: string, opts: TransformOptions = {}): Promise<TransformResult> {
    await this.fit(dataset, { progress: opts.progress });
    return this.transform(dataset, outDir, { training: true, ...opts });
  }

  // ---------------------------------------------------------------- persistence

  /** Writes workflow.json and the state files (categories/*.parquet) to dir. */
  save(dir: string): void {
    const d = resolve(dir);
    mkdirSync(d, { recursive: true });
    for (const op of this.ops) {
      for (const f of op.stateFiles()) {
        const from = join(this.stateDir ?? "", f);
        const to = join(d, f);
        if (resolve(from) === resolve(to)) continue;
        mkdirSync(dirname(to), { recursive: true });
        copyFileSync(from, to);
      }
    }
    writeFileSync(
      join(d, WORKFLOW_FILE),
      JSON.stringify(
        {
          format: "fstore-workflow",
          version: 1,
          inputColumns: this.inputColumns,
          ops: this.ops.map((o) => o.toJSON()),
        },
        null,
        2,
      ),
    );
    this.stateDir = d;
  }

  static load(dir: string): Workflow {
    const d = resolve(dir);
    const file = join(d, WORKFLOW_FILE);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new ValidationError(`cannot load workflow from ${file}: ${errorMessage(e)}`);
    }
    if (!isWorkflowJson(raw))
      throw new ValidationError(
        `${file} is not an fstore workflow (expected "format": "fstore-workflow" and an "ops" array)`,
      );
    const wf = new Workflow(raw.ops.map(opFromJSON));
    wf.stateDir = d;
    wf.inputColumns = raw.inputColumns;
    for (const op of wf.ops)
      for (const f of op.stateFiles())
        if (!existsSync(join(d, f)))
          throw new ValidationError(`workflow ${d}: state file ${f} of ${op.describe()} is missing`);
    return wf;
  }

  // ---------------------------------------------------------------- online

  /** Loads vocabularies and statistics into memory for transformRow/transformRows. */
  async prepareOnline(): Promise<this> {
    if (!this.fitted) throw new ValidationError("Workflow: not fitted; call fit(dataset) or Workflow.load(dir) first");
    const duck = await openDuckDB();
    try {
      for (const op of this.ops) await op.loadOnline(duck.connection, this.stateDir ?? "");
    } finally {
      duck.close();
    }
    this.onlineReady = true;
    return this;
  }

  /** The columns each operator receives for rows with these keys, and (last) the output columns. */
  private columnsPerStep(rows: readonly Row[]): TaggedColumn[][] {
    const names: string[] = [];
    const seen = new Set<string>();
    for (const r of rows) {
      for (const k of Object.keys(r)) {
        if (seen.has(k)) continue;
        seen.add(k);
        names.push(k);
      }
    }
    const sig = names.join("\u0001");
    let p = this.onlineColumns.get(sig);
    if (!p) {
      let cols = withFitTags(
        this,
        names.map((name) => ({ name, tags: [], properties: {} })),
      );
      p = [];
      for (const op of this.ops) {
        p.push(cols);
        cols = op.columns(cols);
      }
      p.push(cols);
      this.onlineColumns.set(sig, p);
    }
    return p;
  }

  /** The workflow over a batch of rows in JS (e.g. one session's raw events); the batch path gives the same rows. */
  transformRows(rows: Row[]): Row[] {
    if (!this.onlineReady && this.ops.some((o) => o.needsFit))
      throw new ValidationError("Workflow: call await workflow.prepareOnline() before transformRow/transformRows");
    if (rows.length === 0) return [];
    const steps = this.columnsPerStep(rows);
    let cur = rows;
    for (let i = 0; i < this.ops.length; i++) cur = this.ops[i].apply(cur, steps[i]);
    const outNames = steps[this.ops.length].map((c) => c.name);
    return cur.map((r) => {
      const o: Row = {};
      for (const n of outNames) o[n] = r[n] === undefined ? null : r[n];
      return o;
    });
  }

  /** One request row; null when a filter drops it. */
  transformRow(row: Row): Row | null {
    const out = this.transformRows([row]);
    return out.length ? out[0] : null;
  }
}

/** The raw value a Categorify'd column's index encodes (after prepareOnline); null for null, OOV and padding. */
export function decodeCategory(wf: Workflow, column: string, index: number): unknown {
  for (const op of wf.ops) if (op instanceof Categorify && column in op.vocab) return op.decode(column, index);
  throw new ValidationError(`workflow: no Categorify operator encodes "${column}"`);
}

/** The columns the workflow's Categorify operators encode. */
export function categorifiedColumns(wf: Workflow): string[] {
  return wf.ops.flatMap((op) => (op instanceof Categorify ? Object.keys(op.vocab) : []));
}

export function isWorkflow(x: unknown): x is Workflow {
  return !!x && typeof x === "object" && (x as { fstoreKind?: unknown }).fstoreKind === "workflow";
}
