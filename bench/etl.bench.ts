// ETL at scale: 10,000,000 REES46-like raw events through categorify (product, category, brand) + normalize
// (price) + group by session (sorted by time: lists, count, first) + list slice (last 20), compiled to one DuckDB
// query and written to parquet. Baseline in the same run: a bare DuckDB COPY of the same input to parquet (the
// floor: read + write, no transformation). Also transformRow/transformRows latency for online requests.
// Events are generated once into bench/.data/ by a child process, so the peak RSS figure is the ETL's own.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Categorify, Groupby, ListSlice, Normalize, Workflow, type Row } from "../adapters/etl/index.js";
import { openDuckDB, parseByteSize } from "../common/duckdb.js";
import { queryRows } from "../adapters/etl/sql.js";
import { measure, peakRssMb, performance, report } from "./lib.js";

const here = dirname(fileURLToPath(import.meta.url));
const DATA = join(here, ".data");
const EVENTS = Number(process.env.ETL_BENCH_EVENTS ?? 10_000_000);
const INPUT = join(DATA, `etl_events_${EVENTS}.parquet`);
const OUT = join(DATA, "etl_out");
const MEMORY_LIMIT = process.env.ETL_BENCH_MEMORY ?? "1GB";
/** group-by passes (default: the workflow's, from the memory limit: 4 for 10M events under 1GB) */
const PASSES = process.env.ETL_BENCH_PASSES ? Number(process.env.ETL_BENCH_PASSES) : undefined;

function ensureData(): void {
  mkdirSync(DATA, { recursive: true });
  if (existsSync(INPUT)) return;
  const t = performance.now();
  const mod = pathToFileURL(join(here, "..", "adapters", "datasets", "rees46.ts")).href;
  // about 6.6 events per session, repeats included
  const code = `import(${JSON.stringify(mod)}).then((m) => m.generateRees46(${JSON.stringify(INPUT)}, { sessions: ${Math.round(EVENTS / 6.6)}, items: 200000, seed: 1 })).then((r) => console.log(JSON.stringify(r)))`;
  const out = execFileSync(process.execPath, [...process.execArgv, "-e", code], { encoding: "utf8" });
  console.log(`generated ${out.trim()} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

function sessionWorkflow(): Workflow {
  return new Workflow([
    new Categorify(["product_id", "category_id", "brand"], { startIndex: 1 }),
    new Normalize("price"),
    new Groupby({
      groupBy: ["user_session"],
      sortBy: ["event_time"],
      aggs: {
        product_id: ["list", "count"],
        category_id: ["list"],
        brand: ["list"],
        price: ["list"],
        event_time: ["first"],
      },
    }),
    new ListSlice(["product_id-list", "category_id-list", "brand-list", "price-list"], -20),
  ]);
}

export async function main(): Promise<void> {
  ensureData();
  const duck = await openDuckDB({ memoryLimitBytes: parseByteSize(MEMORY_LIMIT) });
  const [{ n }] = await queryRows(duck.connection, `SELECT count(*) AS n FROM read_parquet('${INPUT}')`, "count");
  const events = Number(n);
  console.log(`input: ${events} events (${INPUT})`);

  // baseline: the floor, a bare COPY of the same input to parquet
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  let t = performance.now();
  await duck.connection.run(
    `COPY (SELECT * FROM read_parquet('${INPUT}')) TO '${join(OUT, "copy.parquet")}' (FORMAT parquet)`,
  );
  const copyS = (performance.now() - t) / 1000;
  duck.close();

  const wf = sessionWorkflow();
  const cpu0 = process.cpuUsage();
  t = performance.now();
  await wf.fit(INPUT, { memoryLimit: MEMORY_LIMIT });
  const fitS = (performance.now() - t) / 1000;
  t = performance.now();
  const res = await wf.transform(INPUT, join(OUT, "sessions"), { memoryLimit: MEMORY_LIMIT, groupPasses: PASSES });
  const transformS = (performance.now() - t) / 1000;
  const cpu = process.cpuUsage(cpu0);
  // CPU seconds of this process (DuckDB's threads included): with the wall time, shows how much of the 2 cores
  // the ETL got when other work loads the machine
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const rss = peakRssMb();

  report("etl fit (vocabularies + price stats)", events / fitS, "events/s");
  report("etl transform: categorify+normalize+groupby+slice", events / transformS, "events/s", {
    baseline: events / copyS,
    baselineName: "bare COPY",
    target: ">= 1,000,000 events/s",
    pass: events / transformS >= 1_000_000,
  });
  report("etl fit + transform", events / (fitS + transformS), "events/s", {
    target: ">= 1,000,000 events/s",
    pass: events / (fitS + transformS) >= 1_000_000,
  });
  console.log(
    `  ${res.rows} sessions written in ${res.files.length} file(s); fit ${fitS.toFixed(1)} s, transform ${transformS.toFixed(1)} s (CPU ${cpuS.toFixed(1)} s over both, ${(cpuS / (fitS + transformS)).toFixed(2)} cores busy), bare COPY ${copyS.toFixed(1)} s; load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores`,
  );
  report(`etl peak RSS (fit + transform, DuckDB memory_limit ${MEMORY_LIMIT})`, rss, "MB", {
    target: "< 2048 MB",
    pass: rss < 2048,
  });

  // online: one event through the row-wise part, and one session's events through the whole workflow
  await wf.prepareOnline();
  const d2 = await openDuckDB();
  const sample = await queryRows(
    d2.connection,
    `SELECT * FROM read_parquet('${INPUT}') WHERE user_session IN (SELECT user_session FROM read_parquet('${INPUT}') LIMIT 200)`,
    "sample",
  );
  d2.close();
  const rowWise = new Workflow(wf.ops.slice(0, 2));
  rowWise.stateDir = wf.stateDir;
  await rowWise.prepareOnline();
  let i = 0;
  const one = await measure(() => rowWise.transformRow(sample[i++ % sample.length]), 20_000, 2_000);
  report("transformRow p99 (categorify x3 + normalize, one event)", one.p99, "us", {
    target: "<= 50 us",
    pass: one.p99 <= 50,
  });
  report("transformRow p50", one.p50, "us");
  const bySession = new Map<string, Row[]>();
  for (const r of sample) {
    const s = r.user_session as string;
    if (!bySession.has(s)) bySession.set(s, []);
    (bySession.get(s) as Row[]).push(r);
  }
  const sessions = [...bySession.values()];
  let j = 0;
  const sess = await measure(() => wf.transformRows(sessions[j++ % sessions.length]), 5_000, 500);
  const meanLen = sample.length / sessions.length;
  report(`transformRows p99 (one session, ${meanLen.toFixed(1)} events, whole workflow)`, sess.p99, "us");
  rmSync(OUT, { recursive: true, force: true });
}
