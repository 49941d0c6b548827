// Progress for long jobs: a bar on a TTY, plain log lines otherwise (CI, pipes, log files).
import cliProgress from "cli-progress";

/** Progress of a long job (materialize, ETL, training), reported by the worker and drawn by the caller. */
export interface ProgressSink {
  start(label: string, total: number): void;
  tick(done: number): void;
  stop(): void;
}

export const silentProgress: ProgressSink = { start() {}, tick() {}, stop() {} };

/** A bar when `stream` is a TTY, else one log line per ~10% and at the end. */
export function consoleProgress(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  if (stream.isTTY) {
    let bar: cliProgress.SingleBar | null = null;
    return {
      start(label, total) {
        bar = new cliProgress.SingleBar(
          {
            format: `${label} [{bar}] {percentage}% | {value}/{total} | {duration_formatted} | eta {eta_formatted}`,
            stream,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(total, 1), 0);
      },
      tick(done) {
        bar?.update(done);
      },
      stop() {
        bar?.stop();
        bar = null;
      },
    };
  }
  let label = "";
  let total = 0;
  let nextReport = 0;
  let t0 = 0;
  let last = 0;
  return {
    start(l, t) {
      label = l;
      total = t;
      last = 0;
      nextReport = Math.max(1, Math.ceil(t / 10));
      t0 = Date.now();
      stream.write(`${label}: started (${t} to do)\n`);
    },
    tick(done) {
      last = done;
      if (done >= nextReport && done < total) {
        stream.write(`${label}: ${done}/${total} (${Math.round((100 * done) / Math.max(total, 1))}%)\n`);
        nextReport = done + Math.max(1, Math.ceil(total / 10));
      }
    },
    stop() {
      const s = (Date.now() - t0) / 1000;
      stream.write(`${label}: done ${last}/${total} in ${s.toFixed(1)}s\n`);
    },
  };
}
