// A Workflow: operators applied in order. fit() computes each operator's state on the data as the earlier
// operators leave it; transform() compiles the whole chain to one SQL query over the input and streams it to
// parquet with COPY (DuckDB spills to disk, so inputs may exceed memory); transformRows()/transformRow() apply
// the same chain to JS objects for online requests.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { ValidationError, errorMessage } from "../../common/errors.js";
import { silentProgress } from "../../common/progress.js";
import type { ProgressSink } from "../../common/progress.js";
import { type TaggedColumn, type SchemaEntry, schemaEntries } from "./columns.js";
import { type GroupPass, type Op, type OpJson, ProjectionOp, ROW_COL, type SqlContext } from "./operators/base.js";
import { type DedupeConsecutive, type Groupby, opFromJSON } from "./operators/index.js";
import { type DuckDBHandle, ident, openDuckDB, parseByteSize, sqlString } from "../../common/duckdb.js";
import {
  type Dataset,
  type Row,
  describe,
  describeDataset,
  duckdbSettings,
  exec,
  literal,
  queryRows,
  sourceSql,
} from "./sql.js";

export const WORKFLOW_FILE = "workflow.json";
export const SCHEMA_FILE = "schema.json";

export interface Splits {
  train: number;
  valid?: number;
  test?: number;
}

export interface TransformOptions {
  /** a column of the output: one folder per value */
  partitionBy?: string;
  /** fractions per split (summing to 1); each partition is split the same way */
  splits?: Splits;
  /** order rows by this column to split (earliest rows train; with group-by passes, ranked within each pass);
   * default: a hash of the row (random, deterministic) */
  splitBy?: string;
  /** the data is training data: target encoding uses out-of-fold statistics */
  training?: boolean;
  progress?: ProgressSink;
  /** DuckDB memory limit, e.g. "1GB" (default: DuckDB's, 80% of RAM) */
  memoryLimit?: string;
  threads?: number;
  /**
   * Run a group by in this many passes, each over the groups with hash(key) % passes = i (list aggregates
   * cannot spill to disk). Default: one pass per ROWS_PER_GROUP_PASS_PER_GIB input rows per GiB of memoryLimit
   * (4 passes for 10M rows under "1GB"; one under DuckDB's default limit, 80% of RAM, on a machine with 24 GB).
   */
  groupPasses?: number;
}

/**
 * Input rows one group-by pass takes per GiB of DuckDB memory_limit: list aggregates cannot spill, and a session
 * group by with 6 sequence columns needs about 0.25 GiB per 1M rows. Near the limit DuckDB evicts and rereads
 * (10M events under "1GB": 2 passes cost 13 CPU-s, 3 to 5 passes 9 to 10), so this keeps a margin.
 */
export const ROWS_PER_GROUP_PASS_PER_GIB = 3_000_000;

/** passes are never made smaller than this by default (each rescans the input) */
const MIN_ROWS_PER_GROUP_PASS = 100_000;

/** DuckDB's memory_limit setting ("953.6 MiB") in bytes; null when it cannot be read. */
export function parseMemory(text: string): number | null {
  return parseByteSize(text) ?? null;
}

/** Input rows per group-by pass under the connection's memory limit. */
async function groupPassRows(duck: DuckDBHandle): Promise<number> {
  const [{ m }] = await queryRows(
    duck.connection,
    "SELECT current_setting('memory_limit') AS m",
    "reading memory_limit",
  );
  const bytes = parseMemory(String(m)) ?? 2 ** 30;
  return Math.max(MIN_ROWS_PER_GROUP_PASS, Math.floor((bytes / 2 ** 30) * ROWS_PER_GROUP_PASS_PER_GIB));
}

export interface TransformResult {
  outDir: string;
  rows: number;
  /** parquet files written, relative to outDir */
  files: string[];
  schema: SchemaEntry[];
}

interface Compiled {
  /** WITH ... SELECT (no trailing semicolon) */
  sql: string;
  /** the WITH clause alone and the name of its last step: `${prefix} SELECT * FROM ${last}` */
  prefix: string;
  last: string;
  columns: TaggedColumn[];
}

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
  private plans = new Map<string, TaggedColumn[][]>();

  constructor(ops: Op[] = []) {
    if (!Array.isArray(ops)) throw new ValidationError("Workflow: expected an array of operators");
    this.ops = [...ops];
  }

  /** A new workflow with more operators after these. (Not `then`: a workflow must not look like a promise.) */
  add(...ops: Op[]): Workflow {
    return new Workflow([...this.ops, ...ops]);
  }

  get needsRowOrder(): boolean {
    return this.ops.some((o) => o.needsRowOrder);
  }

  get fitted(): boolean {
    return this.ops.every((o) => !o.needsFit || o.fitted);
  }

  // ---------------------------------------------------------------- batch

  private static async inputColumnsOf(duck: DuckDBHandle, dataset: Dataset): Promise<TaggedColumn[]> {
    const cols = await describeDataset(duck.connection, dataset);
    if (cols.length === 0) throw new ValidationError(`dataset ${dataset} has no columns`);
    return cols.map((c) => ({ name: c.name, tags: [], properties: {} }));
  }

  private static async requireRows(duck: DuckDBHandle, from: string, dataset: Dataset): Promise<number> {
    const [{ n }] = await queryRows(
      duck.connection,
      `SELECT count(*) AS n FROM ${from}`,
      `cannot read dataset ${dataset}`,
    );
    if (Number(n) === 0) throw new ValidationError(`dataset ${dataset} is empty (no rows)`);
    return Number(n);
  }

  private withTags(cols: TaggedColumn[]): TaggedColumn[] {
    // columns fit() saw keep their tags; new columns start untagged
    const known = new Map((this.inputColumns ?? []).map((c) => [c.name, c]));
    return cols.map((c) => known.get(c.name) ?? c);
  }

  /** Compiles ops[0..upTo) over the source; checks each operator against the types it receives. */
  private async compile(
    duck: DuckDBHandle,
    source: string,
    input: TaggedColumn[],
    upTo: number,
    ctx: SqlContext,
    check = true,
  ): Promise<Compiled> {
    const ctes = [`s0 AS (SELECT * FROM ${source}${this.passFilterAtSource(input, ctx)})`];
    let cols = input;
    for (let i = 0; i < upTo; i++) {
      const op = this.ops[i];
      const prefix = `WITH ${ctes.join(",\n")}`;
      if (check) {
        const types = new Map(
          (await describe(duck.connection, `(${prefix} SELECT * FROM s${i})`, `step ${i + 1} (${op.describe()})`)).map(
            (t) => [t.name, t.type],
          ),
        );
        op.check(cols, types);
      }
      ctes.push(`s${i + 1} AS (${op.sql(`s${i}`, cols, ctx)})`);
      cols = op.columns(cols);
    }
    const prefix = `WITH ${ctes.join(",\n")}`;
    return {
      sql: `${prefix}\nSELECT ${cols.map((c) => ident(c.name)).join(", ")} FROM s${upTo}`,
      prefix,
      last: `s${upTo}`,
      columns: cols,
    };
  }

  /**
   * The first Groupby's key columns when they come straight from the input (no operator before it changes them,
   * and any DedupeConsecutive works within those groups): then rows can be split by hash(key) at the source.
   */
  private groupKeysAtSource(input: TaggedColumn[]): string[] | null {
    const g = this.ops.findIndex((o) => o.kind === "Groupby");
    if (g < 0) return null;
    const keys = (this.ops[g] as Groupby).o.groupBy;
    if (!keys.every((k) => input.some((c) => c.name === k))) return null;
    let cols = input;
    for (let i = 0; i < g; i++) {
      const op = this.ops[i];
      if (op instanceof ProjectionOp) {
        const pr = op.project(cols, null);
        if (pr.outputs.some((o) => keys.includes(o.name)) || (pr.drop ?? []).some((d) => keys.includes(d))) return null;
      } else if (op.kind === "DedupeConsecutive") {
        // its windows must see whole sessions: only when the session is a group key
        if (!keys.includes((op as DedupeConsecutive).o.session)) return null;
      } else if (!["Filter", "Dropna", "AddMetadata", "AddTags", "Select"].includes(op.kind)) {
        return null;
      }
      cols = op.columns(cols);
    }
    return keys;
  }

  /** A group-by pass without buckets filters its groups at the source when it can (DuckDB does not push it below joins). */
  private passFilterAtSource(input: TaggedColumn[], ctx: SqlContext): string {
    const pass = ctx.groupPass;
    if (!pass || pass.n <= 1 || !pass.atSource) return "";
    const keys = this.groupKeysAtSource(input);
    return keys ? ` WHERE hash(${keys.map(ident).join(", ")}) % ${pass.n} = ${pass.i}` : "";
  }

  private sqlContext(training: boolean, groupPass?: GroupPass): SqlContext {
    let n = 0;
    return { stateDir: this.stateDir ?? "", rowOrder: this.needsRowOrder, training, groupPass, alias: () => `j${n++}` };
  }

  /**
   * How many leading operators the fit of ops[i] must see: trailing row-preserving projections whose outputs
   * (and dropped columns) are none of the columns ops[i] reads are left out, so e.g. Normalize("price") after
   * Categorify(ids) fits on a scan of the input instead of one that also runs the vocabulary joins.
   */
  private static fitPrefix(ops: readonly Op[], colsAt: readonly TaggedColumn[][], i: number): number {
    const reads = ops[i].fitReads(colsAt[i]);
    if (!reads) return i;
    const need = new Set(reads);
    let k = i;
    while (k > 0) {
      const prev = ops[k - 1];
      if (!(prev instanceof ProjectionOp)) break;
      const pr = prev.project(colsAt[k - 1], null);
      if (pr.outputs.some((o) => need.has(o.name)) || (pr.drop ?? []).some((d) => need.has(d))) break;
      k--;
    }
    return k;
  }

  /** Computes every operator's state on `dataset` (a parquet file, folder or glob, or a CSV file). */
  async fit(
    dataset: Dataset,
    opts: { progress?: ProgressSink; memoryLimit?: string; threads?: number } = {},
  ): Promise<this> {
    const progress = opts.progress ?? silentProgress;
    if (!this.stateDir) this.stateDir = mkdtempSync(join(tmpdir(), "fstore-workflow-"));
    const duck = await openDuckDB(
      duckdbSettings({
        tempDirectory: join(this.stateDir, ".spill"),
        memoryLimit: opts.memoryLimit,
        threads: opts.threads,
      }),
    );
    try {
      const input = await Workflow.inputColumnsOf(duck, dataset);
      this.inputColumns = input;
      const source = await sourceSql(duck.connection, dataset, this.needsRowOrder);
      await Workflow.requireRows(duck, source, dataset);
      const ctx = this.sqlContext(true);
      // a refit starts over: state checks against the previous fit must not apply to the new data
      for (const op of this.ops) if (op.needsFit) op.fitted = false;
      progress.start("fit", this.ops.length);
      const colsAt: TaggedColumn[][] = [input];
      for (let i = 0; i < this.ops.length; i++) {
        const op = this.ops[i];
        const cols = colsAt[i];
        const upTo = await this.compile(duck, source, input, i, ctx, false);
        let from = `(${upTo.prefix} SELECT * FROM ${upTo.last})`;
        const types = new Map(
          (await describe(duck.connection, from, `step ${i + 1} (${op.describe()})`)).map((t) => [t.name, t.type]),
        );
        op.check(cols, types);
        if (op.needsFit) {
          const k = Workflow.fitPrefix(this.ops, colsAt, i);
          if (k < i) {
            const pre = await this.compile(duck, source, input, k, ctx, false);
            from = `(${pre.prefix} SELECT * FROM ${pre.last})`;
          }
          await op.fit({ conn: duck.connection, stateDir: this.stateDir, from, types }, cols);
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
    this.plans.clear();
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
    try {
      const input = this.withTags(await Workflow.inputColumnsOf(duck, dataset));
      const source = await sourceSql(duck.connection, dataset, this.needsRowOrder);
      return (await this.compile(duck, source, input, this.ops.length, this.sqlContext(opts.training ?? false))).sql;
    } finally {
      duck.close();
    }
  }

  /** Writes the transformed dataset as parquet under outDir, with schema.json. */
  async transform(dataset: Dataset, outDir: string, opts: TransformOptions = {}): Promise<TransformResult> {
    for (const op of this.ops)
      if (op.needsFit && !op.fitted)
        throw new ValidationError(
          `Workflow: ${op.describe()} is not fitted; call fit(dataset) or Workflow.load(dir) first`,
        );
    const out = resolve(outDir);
    mkdirSync(out, { recursive: true });
    const spill = mkdtempSync(join(tmpdir(), "fstore-spill-"));
    const duck = await openDuckDB(
      duckdbSettings({ tempDirectory: spill, memoryLimit: opts.memoryLimit, threads: opts.threads }),
    );
    const progress = opts.progress ?? silentProgress;
    try {
      const input = this.withTags(await Workflow.inputColumnsOf(duck, dataset));
      const source = await sourceSql(duck.connection, dataset, this.needsRowOrder);
      const inputRows = await Workflow.requireRows(duck, source, dataset);
      const groups = this.ops.some((o) => o.kind === "Groupby");
      const firstPasses = groups
        ? Math.max(1, Math.floor(opts.groupPasses ?? Math.ceil(inputRows / (await groupPassRows(duck)))))
        : 1;
      const compiled = await this.compile(
        duck,
        source,
        input,
        this.ops.length,
        this.sqlContext(opts.training ?? false),
      );
      const types = new Map(
        (await describe(duck.connection, `(${compiled.sql})`, "workflow output")).map((t) => [t.name, t.type]),
      );
      const schema = schemaEntries(compiled.columns, types);
      const names = compiled.columns.map((c) => c.name);
      if (opts.partitionBy && !names.includes(opts.partitionBy))
        throw new ValidationError(
          `transform: partitionBy column "${opts.partitionBy}" is not an output column (have: ${names.join(", ")})`,
        );
      if (opts.splitBy && !names.includes(opts.splitBy))
        throw new ValidationError(
          `transform: splitBy column "${opts.splitBy}" is not an output column (have: ${names.join(", ")})`,
        );
      const splits = opts.splits ? checkSplits(opts.splits) : null;

      const wrap = (query: string): { query: string; partCols: string[] } => {
        const partCols: string[] = [];
        if (!opts.partitionBy && !splits) return { query, partCols };
        const extra: string[] = [];
        if (opts.partitionBy) {
          extra.push(`${ident(opts.partitionBy)} AS __part`);
          partCols.push("__part");
        }
        if (splits) {
          const r = opts.splitBy
            ? `percent_rank() OVER (${opts.partitionBy ? `PARTITION BY ${ident(opts.partitionBy)} ` : ""}ORDER BY ${ident(opts.splitBy)})`
            : `(hash(${names.map(ident).join(", ")}) % 1000000) / 1000000.0`;
          const t = splits.train;
          const v = t + (splits.valid ?? 0);
          extra.push(
            `CASE WHEN __r < ${literal(t)} THEN 'train' WHEN __r < ${literal(v)} THEN 'valid' ELSE 'test' END AS __split`,
          );
          partCols.push("__split");
          return {
            query: `SELECT * EXCLUDE (__r), ${extra.join(", ")} FROM (SELECT *, ${r} AS __r FROM (${query}))`,
            partCols,
          };
        }
        return { query: `SELECT *, ${extra.join(", ")} FROM (${query})`, partCols };
      };

      // after a group by, row order means nothing: let DuckDB stream without keeping it (less memory, more parallel)
      if (groups) await duck.connection.run("SET preserve_insertion_order = false");
      // Several passes: each handles the groups with hash(key) % passes = i. A parquet source is filtered by that
      // hash at the scan when the key comes straight from the input (DuckDB reads every column of every row again,
      // which costs far less than writing the input out in buckets); a CSV source is parsed once into parquet
      // buckets by the hash and each pass reads its bucket; otherwise each pass filters its groups at the group by.
      const runPasses = async (passes: number): Promise<{ rows: number; files: string[] }> => {
        progress.start("etl transform", 100 * passes);
        let rows = 0;
        const files: string[] = [];
        const bucketKeys = passes > 1 && source.includes("read_csv(") ? this.groupKeysAtSource(input) : null;
        const buckets = bucketKeys ? join(spill, `buckets-${passes}`) : null;
        if (buckets && bucketKeys) {
          await exec(
            duck.connection,
            `COPY (SELECT *, hash(${bucketKeys.map(ident).join(", ")}) % ${passes} AS __bucket FROM ${source}) TO ${sqlString(buckets)} (FORMAT parquet, PARTITION_BY (__bucket))`,
            `transform of ${dataset}: bucketing by ${bucketKeys.join(", ")}`,
          );
        }
        try {
          for (let pass = 0; pass < passes; pass++) {
            let sql = compiled.sql;
            if (buckets) {
              const bucket = join(buckets, `__bucket=${pass}`);
              if (!existsSync(bucket)) continue;
              sql = (
                await this.compile(
                  duck,
                  `read_parquet(${sqlString(join(bucket, "*.parquet"))}, hive_partitioning = false)`,
                  input,
                  this.ops.length,
                  this.sqlContext(opts.training ?? false),
                  false,
                )
              ).sql;
            } else if (passes > 1) {
              const atSource = this.groupKeysAtSource(input) !== null;
              sql = (
                await this.compile(
                  duck,
                  source,
                  input,
                  this.ops.length,
                  this.sqlContext(opts.training ?? false, { i: pass, n: passes, atSource }),
                  false,
                )
              ).sql;
            }
            const { query, partCols } = wrap(sql);
            const staging = partCols.length ? join(out, `.staging-${process.pid}-${pass}`) : null;
            const fileName = passes === 1 ? "part_0.parquet" : `part_${pass}.parquet`;
            const target = staging ?? join(out, fileName);
            const copy = `COPY (${query}) TO ${sqlString(target)} (FORMAT parquet${partCols.length ? `, PARTITION_BY (${partCols.join(", ")}), OVERWRITE_OR_IGNORE true` : ""})`;
            const timer = setInterval(() => {
              const p = duck.connection.progress.percentage;
              if (p >= 0) progress.tick(100 * pass + Math.floor(p));
            }, 250);
            try {
              const r = await duck.connection.runAndReadAll(copy);
              rows += Number(r.getRowObjectsJS()[0]?.Count ?? 0);
            } catch (e) {
              if (staging) rmSync(staging, { recursive: true, force: true });
              throw e;
            } finally {
              clearInterval(timer);
            }
            progress.tick(100 * (pass + 1));
            if (staging) {
              files.push(
                ...arrangePartitions(
                  staging,
                  out,
                  opts.partitionBy ?? null,
                  splits !== null,
                  passes === 1 ? null : pass,
                ),
              );
              rmSync(staging, { recursive: true, force: true });
            } else {
              files.push(fileName);
            }
          }
        } catch (e) {
          for (const f of files) rmSync(join(out, f), { force: true });
          throw e;
        } finally {
          if (buckets) rmSync(buckets, { recursive: true, force: true });
          progress.stop();
        }
        return { rows, files };
      };
      let passes = firstPasses;
      let done: { rows: number; files: string[] } | null = null;
      while (!done) {
        try {
          done = await runPasses(passes);
        } catch (e) {
          // the default pass count is an estimate: a group by that still runs out of memory (wide rows, long
          // lists) starts over with twice the passes, down to passes of 10,000 rows
          const retry =
            opts.groupPasses === undefined &&
            groups &&
            /out of memory/i.test(errorMessage(e)) &&
            inputRows / (passes * 2) >= 10_000;
          if (!retry)
            throw e instanceof ValidationError
              ? e
              : new ValidationError(`transform of ${dataset}: ${errorMessage(e)}`, { cause: e });
          passes *= 2;
        }
      }
      const { rows, files } = done;
      const schemaJson = JSON.stringify({ columns: schema }, null, 2);
      writeFileSync(join(out, SCHEMA_FILE), schemaJson);
      if (splits && !opts.partitionBy)
        for (const s of ["train", "valid", "test"])
          if (existsSync(join(out, s))) writeFileSync(join(out, s, SCHEMA_FILE), schemaJson);
      return { outDir: out, rows, files, schema };
    } finally {
      duck.close();
      rmSync(spill, { recursive: true, force: true });
    }
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

  private plan(rows: readonly Row[]): TaggedColumn[][] {
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
    let p = this.plans.get(sig);
    if (!p) {
      let cols = this.withTags(names.map((name) => ({ name, tags: [], properties: {} })));
      p = [];
      for (const op of this.ops) {
        p.push(cols);
        cols = op.columns(cols);
      }
      p.push(cols);
      this.plans.set(sig, p);
    }
    return p;
  }

  /** The workflow over a batch of rows in JS (e.g. one session's raw events); the batch path gives the same rows. */
  transformRows(rows: Row[]): Row[] {
    if (!this.onlineReady && this.ops.some((o) => o.needsFit))
      throw new ValidationError("Workflow: call await workflow.prepareOnline() before transformRow/transformRows");
    if (rows.length === 0) return [];
    const plan = this.plan(rows);
    let cur = rows;
    for (let i = 0; i < this.ops.length; i++) cur = this.ops[i].apply(cur, plan[i]);
    const outNames = plan[this.ops.length].map((c) => c.name);
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

function checkSplits(s: Splits): Splits {
  const parts = [s.train, s.valid ?? 0, s.test ?? 0];
  if (parts.some((x) => typeof x !== "number" || x < 0 || x > 1))
    throw new ValidationError(`transform: split fractions must be numbers in [0, 1], got ${JSON.stringify(s)}`);
  const sum = parts.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-9) throw new ValidationError(`transform: split fractions must sum to 1, got ${sum}`);
  return s;
}

/** DuckDB's __part=V/__split=S/data_i.parquet becomes V/S.parquet (notebook 004's layout), <col>=V/part_i.parquet, or S/part_i.parquet. */
function arrangePartitions(
  staging: string,
  out: string,
  partitionBy: string | null,
  split: boolean,
  pass: number | null,
): string[] {
  const files: string[] = [];
  const walk = (dir: string, keys: Record<string, string>) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        const m = /^(__part|__split)=(.*)$/.exec(name);
        walk(p, m ? { ...keys, [m[1]]: decodeURIComponent(m[2]) } : keys);
      } else if (name.endsWith(".parquet")) {
        const n = Number(/(\d+)\.parquet$/.exec(name)?.[1] ?? 0);
        // several passes write into the same folders: their files carry the pass number
        const i = pass === null ? n : `${pass}${n ? `_${n}` : ""}`;
        let rel: string;
        if (partitionBy && split)
          rel = join(keys.__part, i === 0 ? `${keys.__split}.parquet` : `${keys.__split}_${i}.parquet`);
        else if (partitionBy) rel = join(`${partitionBy}=${keys.__part}`, `part_${i}.parquet`);
        else rel = join(keys.__split, `part_${i}.parquet`);
        mkdirSync(dirname(join(out, rel)), { recursive: true });
        renameSync(p, join(out, rel));
        files.push(rel);
      }
    }
  };
  walk(staging, {});
  return files.sort();
}

export function isWorkflow(x: unknown): x is Workflow {
  return !!x && typeof x === "object" && (x as { fstoreKind?: unknown }).fstoreKind === "workflow";
}

export { ROW_COL };
