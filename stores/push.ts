// Push: rows a service sends for the views fed by a push source, to the online store, the offline batch source
// or both; in append mode each row is one event added to its key's stored lists (stores/append.ts).
import { NotFoundError, ValidationError } from "../common/errors.js";
import type { RegistryContents } from "../registry/types.js";
import { DEFAULT_APPEND_MAX_LENGTH, appendToStored, eventsAsLists } from "./append.js";
import { type RowsInput, toColumns, toOnlineBatch } from "./rows.js";
import type { OfflineStore, OnlineStore } from "./types.js";

export type PushTarget = "online" | "offline" | "online_and_offline";

export interface PushOptions {
  to?: PushTarget;
  /** "replace" (default, Feast's push) or "append": each row's values are appended to its key's stored lists */
  mode?: "replace" | "append";
  /** append: how many latest values each list keeps (default 50) */
  maxLength?: number;
}

/** Runs async tasks one after another (a failed task does not stop the next). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export interface PushContext {
  project: string;
  contents: RegistryContents;
  online: () => Promise<OnlineStore>;
  offline: () => Promise<OfflineStore>;
  appendQueue: SerialQueue;
}

export async function pushRows(
  ctx: PushContext,
  pushSourceName: string,
  rows: RowsInput,
  opts: PushOptions,
): Promise<number> {
  const to = opts.to ?? "online";
  const mode = opts.mode ?? "replace";
  if (!["online", "offline", "online_and_offline"].includes(to))
    throw new ValidationError(`push: "to" must be online, offline or online_and_offline, got ${JSON.stringify(to)}`);
  if (mode !== "replace" && mode !== "append")
    throw new ValidationError(`push: "mode" must be replace or append, got ${JSON.stringify(mode)}`);
  if (mode === "append" && to !== "online")
    throw new ValidationError(`push: mode "append" writes the online store only ("to": "online"), got "${to}"`);
  const reg = ctx.contents;
  const source = reg.dataSources.find((s) => s.name === pushSourceName);
  if (!source || source.type !== "push") {
    const known = reg.dataSources.filter((s) => s.type === "push").map((s) => s.name);
    throw new NotFoundError(
      `push source "${pushSourceName}" is not in the registry of project "${ctx.project}" (push sources: ${known.join(", ") || "none"})`,
    );
  }
  const views = reg.featureViews.filter((v) => v.source.type === "push" && v.source.name === pushSourceName);
  // Check every view's rows before writing anything.
  const now = Date.now();
  const what = `push to "${pushSourceName}"`;
  const cols = toColumns(rows, what);
  const batches = views.map((v) => ({
    view: v,
    batch: toOnlineBatch(v, mode === "append" ? eventsAsLists(v, cols.columns, what) : cols.columns, what, now),
  }));
  let written = 0;
  if (to !== "online") await (await ctx.offline()).appendRows(source.batchSource, cols);
  if (to === "offline") return written;
  const online = await ctx.online();
  if (mode === "replace") {
    for (const { view, batch } of batches)
      if (view.online && batch.length) written += await online.write(ctx.project, view, batch);
    return written;
  }
  const maxLength = opts.maxLength ?? DEFAULT_APPEND_MAX_LENGTH;
  return ctx.appendQueue.run(async () => {
    for (const { view, batch } of batches) {
      if (!view.online || !batch.length) continue;
      written += await online.write(
        ctx.project,
        view,
        await appendToStored(online, ctx.project, view, batch, maxLength),
      );
    }
    return written;
  });
}
