// Feature logging (as Feast's): the answers of sampled requests, with the features each stage read, appended as
// parquet files under the pipeline's logging destination. One row per (request row, served item): request id,
// event_timestamp, the entity key, the item key, position, score, fallback, then the query features and the
// item features as served, so the folder can be a training job's entity dataframe. Appending only copies into a
// buffer; files are written in batches off the request path (a timer, a size threshold) and on close.

import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import type { Dtype } from "../../registry/types.js";
import type { ParquetColumnType } from "../../stores/offline/parquet.js";
import type { RunOutput } from "./runner.js";
import type { TypedPipeline } from "./typing.js";

/** rows buffered before a file is written without waiting for the timer */
const FLUSH_ROWS = 5000;
/** the longest a logged answer waits in memory */
const FLUSH_MS = 1000;

export class FeatureLogger {
  private readonly types: Record<string, ParquetColumnType>;
  private readonly queryCols: string[];
  private readonly itemCols: string[];
  private buffer: Record<string, unknown[]>;
  private rows = 0;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private seq = 0;
  /** files written, for tests and the shutdown message */
  readonly files: string[] = [];

  constructor(private readonly typed: TypedPipeline) {
    const { entityKey, itemKey } = typed;
    const types: Record<string, ParquetColumnType> = {
      request_id: "string",
      event_timestamp: "timestamp",
    };
    const dtypes = new Map<string, Dtype>();
    const itemDtypes = new Map<string, Dtype>();
    for (const s of typed.stages) {
      for (const v of s.resolved?.views ?? [])
        for (const f of v.features) {
          const dtype = v.view.features.find((x) => x.name === f.name)?.dtype ?? "string";
          (s.spec.kind === "item_features" ? itemDtypes : dtypes).set(f.outputName, dtype);
        }
    }
    types[entityKey] = typed.entityDtype;
    types[itemKey as string] = typed.itemDtype;
    types.position = "int32";
    types.score = "float64";
    types.fallback = "bool";
    this.queryCols = [...dtypes.keys()].filter((c) => !(c in types));
    for (const c of this.queryCols) types[c] = dtypes.get(c) as Dtype;
    this.itemCols = [...itemDtypes.keys()].filter((c) => !(c in types));
    for (const c of this.itemCols) types[c] = itemDtypes.get(c) as Dtype;
    this.types = types;
    this.buffer = this.emptyBuffer();
  }

  private emptyBuffer(): Record<string, unknown[]> {
    return Object.fromEntries(Object.keys(this.types).map((c) => [c, []]));
  }

  /** Copy one answer into the buffer; the write happens later. */
  append(out: RunOutput): void {
    const { entityKey, itemKey } = this.typed;
    const key = itemKey as string;
    const { req, cand } = out.state;
    const b = this.buffer;
    const now = new Date();
    out.results.forEach((res, r) => {
      const requestId = randomUUID();
      const served = res.fallback === null && cand !== null;
      res.items.forEach((item, pos) => {
        b.request_id.push(requestId);
        b.event_timestamp.push(now);
        b[entityKey].push(res[entityKey]);
        b[key].push(item[key]);
        b.position.push(pos);
        b.score.push(item.score);
        b.fallback.push(!served);
        for (const c of this.queryCols) b[c].push(req.columns[c]?.[r] ?? null);
        const i = served && cand ? cand.offsets[r] + pos : -1;
        for (const c of this.itemCols) b[c].push(i >= 0 && cand ? (cand.columns[c]?.[i] ?? null) : null);
        this.rows++;
      });
    });
    if (this.rows >= FLUSH_ROWS) void this.flush();
    else if (!this.timer && this.rows > 0) {
      this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Write what is buffered to a new parquet file; resolves when every earlier write has finished. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.rows > 0) {
      const data = { length: this.rows, columns: this.buffer };
      this.buffer = this.emptyBuffer();
      this.rows = 0;
      const dest = this.typed.spec.logging?.destination as string;
      const stamp = new Date().toISOString().replace(/[-:.]/g, "");
      const path = join(dest, `served-${this.typed.spec.name}-${stamp}-${process.pid}-${this.seq++}.parquet`);
      this.writing = this.writing.then(() =>
        // loaded on the first write: DuckDB stays out of processes that never log
        import("../../stores/offline/parquet.js")
          .then(({ writeParquet }) => writeParquet(path, data, this.types))
          .then(
            () => void this.files.push(path),
            (e: unknown) => {
              process.stderr.write(`feature log ${path}: ${data.length} rows not written: ${errorMessage(e)}\n`);
            },
          ),
      );
    }
    return this.writing;
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
