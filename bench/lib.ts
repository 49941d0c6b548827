// Shared helpers for benchmarks: timing, percentiles, memory, and one line per figure.
import { performance } from "node:perf_hooks";

export { performance };

export function percentile(sortedOrNot: number[], p: number): number {
  const a = [...sortedOrNot].sort((x, y) => x - y);
  if (a.length === 0) return NaN;
  const i = Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1));
  return a[i];
}

export interface LatencyStats {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

/**
 * Run `fn` `iterations` times after `warmup` runs; latencies in microseconds. With `gapMs`, each call
 * waits that long first, as a server at a modest request rate runs it: on some virtual machines memory not
 * touched for a millisecond costs far more than it did a moment ago (see memoryProbe), and back-to-back
 * calls hide that.
 */
export async function measure(
  fn: () => unknown | Promise<unknown>,
  iterations: number,
  warmup = Math.min(200, iterations),
  gapMs = 0,
): Promise<LatencyStats> {
  for (let i = 0; i < warmup; i++) await fn();
  const lat: number[] = new Array(iterations);
  for (let i = 0; i < iterations; i++) {
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    const t = performance.now();
    await fn();
    lat[i] = (performance.now() - t) * 1000;
  }
  return latencyStats(lat);
}

/**
 * What the machine charges for memory after a pause, fstore aside: 8 random byte reads in a 128 MB buffer,
 * back to back and 1 ms apart (µs). On a bare machine both are a few µs; on this project's VMs the paced
 * p99 has been hundreds of µs, and every request that reads a random entity from the online store pays it.
 */
export async function memoryProbe(): Promise<{ backToBack: LatencyStats; paced: LatencyStats }> {
  const size = 128 << 20;
  const buf = Buffer.alloc(size, 1);
  let sink = 0;
  const touch = () => {
    for (let k = 0; k < 8; k++) sink += buf[Math.floor(Math.random() * size)];
  };
  const backToBack = await measure(touch, 20_000, 2_000);
  const paced = await measure(touch, 2_000, 0, 1);
  if (sink < 0) console.log(sink);
  return { backToBack, paced };
}

/** p50, p99 and mean of latencies in µs. */
function latencyStats(lat: number[]): LatencyStats {
  return {
    n: lat.length,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    mean: lat.reduce((a, b) => a + b, 0) / lat.length,
  };
}

/**
 * `a` and `b` measured in turns, one call of each per iteration, after `warmup` turns: both see the same
 * state of the page cache, the heap and the machine, where one measured after the other would get the
 * pages the first one brought in (and whatever the machine was doing meanwhile).
 */
export async function measurePair(
  a: () => unknown | Promise<unknown>,
  b: () => unknown | Promise<unknown>,
  iterations: number,
  warmup = Math.min(200, iterations),
): Promise<[LatencyStats, LatencyStats]> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const la: number[] = new Array(iterations);
  const lb: number[] = new Array(iterations);
  for (let i = 0; i < iterations; i++) {
    let t = performance.now();
    await a();
    la[i] = (performance.now() - t) * 1000;
    t = performance.now();
    await b();
    lb[i] = (performance.now() - t) * 1000;
  }
  return [latencyStats(la), latencyStats(lb)];
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Print one figure: name, value, unit, and optionally a target and a baseline measured in the same run. */
export function report(
  name: string,
  value: number,
  unit: string,
  extra: { target?: string; baseline?: number; baselineName?: string; pass?: boolean } = {},
): void {
  const parts = [`${name.padEnd(58)} ${value.toFixed(value >= 100 ? 0 : 3).padStart(12)} ${unit}`];
  if (extra.baseline !== undefined)
    parts.push(
      `${extra.baselineName ?? "baseline"} ${extra.baseline.toFixed(extra.baseline >= 100 ? 0 : 3)} ${unit} (ratio ${(value / extra.baseline).toFixed(2)}x)`,
    );
  if (extra.target)
    parts.push(`target ${extra.target}${extra.pass === undefined ? "" : extra.pass ? " PASS" : " MISS"}`);
  console.log(parts.join(" | "));
}
