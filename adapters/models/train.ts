// The training loop shared by the models: shuffled mini-batches, progress per epoch, loss and samples/s.
import type { ProgressSink } from "../../common/progress.js";
import { silentProgress } from "../../common/progress.js";
import { rng, shuffled, takeRows, type Frame } from "./frame.js";

export interface Trainable {
  /** columns a batch must carry */
  readonly columns: string[];
  trainBatch(batch: Frame): number;
  /** sees the whole training set once before the first batch (e.g. to count item frequencies) */
  beforeFit?(data: Frame): void;
}

export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  seed?: number;
  progress?: ProgressSink;
  /** one line per epoch (loss, samples/s, metrics) */
  log?: (line: string) => void;
  /** metrics computed after each epoch (e.g. a validation evaluation), printed on the epoch line */
  afterEpoch?: (epoch: number) => Record<string, number> | void;
}

export interface EpochStats {
  epoch: number;
  loss: number;
  samples: number;
  seconds: number;
  samplesPerSecond: number;
  metrics: Record<string, number>;
}

export function fit(model: Trainable, data: Frame, opts: FitOptions = {}): EpochStats[] {
  const epochs = opts.epochs ?? 1;
  const batchSize = opts.batchSize ?? 1024;
  const progress = opts.progress ?? silentProgress;
  const rand = rng(opts.seed ?? 7);
  const cols = model.columns;
  const history: EpochStats[] = [];
  model.beforeFit?.(data);
  const nBatches = Math.ceil(data.length / batchSize);
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const order = shuffled(data.length, rand);
    progress.start(`epoch ${epoch}/${epochs}`, nBatches);
    const t0 = performance.now();
    let lossSum = 0;
    let seen = 0;
    for (let b = 0; b < nBatches; b++) {
      const idx = order.subarray(b * batchSize, Math.min(data.length, (b + 1) * batchSize));
      // A batch of one cannot hold an in-batch negative; skip a trailing singleton.
      if (idx.length < 2) continue;
      const loss = model.trainBatch(takeRows(data, idx, cols));
      if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at epoch ${epoch}, batch ${b + 1}`);
      lossSum += loss * idx.length;
      seen += idx.length;
      progress.tick(b + 1);
    }
    progress.stop();
    const seconds = (performance.now() - t0) / 1000;
    const metrics = opts.afterEpoch?.(epoch) ?? {};
    const stats: EpochStats = {
      epoch,
      loss: lossSum / Math.max(seen, 1),
      samples: seen,
      seconds,
      samplesPerSecond: seen / seconds,
      metrics,
    };
    history.push(stats);
    const m = Object.entries(metrics)
      .map(([k, v]) => `${k} ${v.toFixed(4)}`)
      .join(" ");
    opts.log?.(
      `epoch ${epoch}/${epochs}: loss ${stats.loss.toFixed(4)} | ${Math.round(stats.samplesPerSecond)} samples/s | ${seconds.toFixed(1)}s${m ? " | " + m : ""}`,
    );
  }
  return history;
}
