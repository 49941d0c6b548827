// Prometheus text exposition (format 0.0.4), written by hand: counters and histograms with fixed labels.

/** Latency buckets in seconds: fine below 10 ms, where the feature server lives. */
export const LATENCY_BUCKETS = [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Series key: label values only (label names are fixed per call site); escaping is left to render(). */
function seriesKey(labels: Record<string, string>): string {
  let k = "";
  for (const n in labels) k += `${labels[n]}\u0001`;
  return k;
}

function labelString(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
  );
  return parts.length ? `{${parts.join(",")}}` : "";
}

class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly buckets: number[]) {
    this.counts = new Float64Array(buckets.length);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        this.counts[i]++;
        return;
      }
    }
  }
}

interface Family<T> {
  help: string;
  type: "counter" | "histogram" | "gauge";
  series: Map<string, { labels: Record<string, string>; value: T }>;
}

export class Metrics {
  private readonly counters = new Map<string, Family<{ n: number }>>();
  private readonly histograms = new Map<string, Family<Histogram>>();
  private readonly gauges = new Map<string, { help: string; read: () => number }>();

  counter(name: string, help: string): (labels: Record<string, string>, by?: number) => void {
    const fam: Family<{ n: number }> = { help, type: "counter", series: new Map() };
    this.counters.set(name, fam);
    return (labels, by = 1) => {
      const key = seriesKey(labels);
      let s = fam.series.get(key);
      if (!s) fam.series.set(key, (s = { labels: { ...labels }, value: { n: 0 } }));
      s.value.n += by;
    };
  }

  histogram(
    name: string,
    help: string,
    buckets = LATENCY_BUCKETS,
  ): (labels: Record<string, string>, seconds: number) => void {
    const fam: Family<Histogram> = { help, type: "histogram", series: new Map() };
    this.histograms.set(name, fam);
    return (labels, v) => {
      const key = seriesKey(labels);
      let s = fam.series.get(key);
      if (!s) fam.series.set(key, (s = { labels: { ...labels }, value: new Histogram(buckets) }));
      s.value.observe(v);
    };
  }

  /** A value read when scraped (in-flight requests, uptime). */
  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, { help, read });
  }

  /** The exposition text served at /metrics. */
  render(): string {
    const out: string[] = [];
    for (const [name, fam] of this.counters) {
      out.push(`# HELP ${name} ${fam.help}`, `# TYPE ${name} counter`);
      for (const s of fam.series.values()) out.push(`${name}${labelString(s.labels)} ${s.value.n}`);
    }
    for (const [name, fam] of this.histograms) {
      out.push(`# HELP ${name} ${fam.help}`, `# TYPE ${name} histogram`);
      for (const s of fam.series.values()) {
        const h = s.value;
        let cum = 0;
        for (let i = 0; i < h.buckets.length; i++) {
          cum += h.counts[i];
          out.push(`${name}_bucket${labelString({ ...s.labels, le: String(h.buckets[i]) })} ${cum}`);
        }
        out.push(`${name}_bucket${labelString({ ...s.labels, le: "+Inf" })} ${h.count}`);
        out.push(`${name}_sum${labelString(s.labels)} ${h.sum}`);
        out.push(`${name}_count${labelString(s.labels)} ${h.count}`);
      }
    }
    for (const [name, g] of this.gauges) {
      out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
    }
    return out.join("\n") + "\n";
  }
}
