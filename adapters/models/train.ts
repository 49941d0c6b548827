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
  /** the rate the model was built with, and a way to change it between steps (for `learningRateEnd`) */
  readonly learningRate?: number;
  setLearningRate?(lr: number): void;
}

/** The rate of step `done` of `total`: linear from `start` down to `start * endShare` at the last step. */
export function scheduledRate(start: number, endShare: number, done: number, total: number): number {
  return start * (1 - ((1 - endShare) * done) / Math.max(1, total - 1));
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
  /**
   * the learning rate falls linearly over all steps to this share of the model's own (1: constant); needs a
   * model with setLearningRate
   */
  learningRateEnd?: number;
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
  const rateEnd = opts.learningRateEnd ?? 1;
  if (rateEnd !== 1 && !(model.setLearningRate && model.learningRate))
    throw new Error("fit: learningRateEnd needs a model with a learning rate it can change");
  const steps = epochs * nBatches;
  let step = 0;
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
      if (rateEnd !== 1) model.setLearningRate?.(scheduledRate(model.learningRate as number, rateEnd, step, steps));
      step++;
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
