// How long one large get-online-features holds the server's event loop (what every other request waits),
// for reads at the default limits (server/defaults.ts) and past them. SQLite, one view of 100 float64 features
// over 10,000 entities. Beside each figure: the floor, JSON.parse of the same request body and
// JSON.stringify of plain arrays holding the same values (what any Node server pays to answer them).
//
//   npm run bench -- server_limits         FSTORE_BENCH_ROUNDS=5
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { openDuckDB } from "../common/duckdb.js";
import { DEFAULT_MAX_ENTITY_ROWS, DEFAULT_MAX_FEATURE_VALUES } from "../server/defaults.js";
import { percentile, performance, report } from "./lib.js";

const FEATURES = 100;
const ENTITIES = DEFAULT_MAX_ENTITY_ROWS;
const ROUNDS = Number(process.env.FSTORE_BENCH_ROUNDS ?? 5);

async function makeRepo(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "fstore-limits-bench-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(
    join(dir, "feature_store.yaml"),
    "project: limits\nregistry: data/registry.db\nonline_store:\n  type: sqlite\n  path: data/online.db\n",
  );
  const fields = Array.from({ length: FEATURES }, (_, i) => `new Field({ name: "f${i}", dtype: "float64" })`);
  writeFileSync(
    join(dir, "definitions.ts"),
    `import { Entity, FeatureView, Field, FileSource } from "fstore";
export const user = new Entity({ name: "user", joinKeys: ["user_id"], valueType: "int64" });
export const wide = new FeatureView({ name: "wide", entities: [user], ttl: 0, schema: [${fields.join(", ")}],
  source: new FileSource({ name: "wide_source", path: "data/wide.parquet", timestampField: "event_timestamp" }), online: true });
`,
  );
  const db = await openDuckDB();
  try {
    const cols = Array.from({ length: FEATURES }, (_, i) => `random() AS f${i}`).join(", ");
    await db.connection.run(
      `COPY (SELECT i::BIGINT AS user_id, ${cols}, TIMESTAMP '2025-01-01' AS event_timestamp FROM range(1, ${ENTITIES + 1}) t(i)) TO '${join(dir, "data/wide.parquet")}' (FORMAT parquet)`,
    );
  } finally {
    db.close();
  }
  return dir;
}

/** POSTs `body` and reads the answer away; resolves with the status. */
function postRaw(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/get-online-features`,
      { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export async function main(): Promise<void> {
  const { FeatureStore } = await import("../stores/feature_store.js");
  const { startFeatureServer } = await import("../server/server.js");
  const dir = await makeRepo();
  try {
    const store = await FeatureStore.open(dir);
    await store.apply();
    await store.materialize(Date.parse("2024-01-01T00:00:00Z"), Date.parse("2026-01-01T00:00:00Z"));
    await store.close();
    // limits raised so that the reads past the defaults are served and measured too
    const server = await startFeatureServer({
      repoPath: dir,
      port: 0,
      logLevel: "silent",
      maxFeatureValues: ENTITIES * FEATURES,
    });
    const feats = Array.from({ length: FEATURES }, (_, i) => `wide:f${i}`);
    const body = (rows: number, features: number) =>
      JSON.stringify({
        features: feats.slice(0, features),
        entities: { user_id: Array.from({ length: rows }, (_, i) => i + 1) },
      });
    const cases: Array<[string, number, number]> = [
      [`1,000 x 100 (${DEFAULT_MAX_FEATURE_VALUES} values: the default limit)`, 1000, 100],
      [`10,000 x 10 (${DEFAULT_MAX_FEATURE_VALUES} values: the default limit)`, 10_000, 10],
      ["10,000 x 100 (1M values: 10x the default)", 10_000, 100],
    ];
    for (const [name, rows, features] of cases) {
      const text = body(rows, features);
      // plain arrays of as many values as the answer, for the floor
      const results = Array.from({ length: features }, () => Array.from({ length: rows }, () => Math.random()));
      const held: number[] = [];
      const floor: number[] = [];
      for (let round = 0; round <= ROUNDS; round++) {
        const h = monitorEventLoopDelay({ resolution: 2 });
        h.enable();
        const status = await postRaw(server.url, text);
        h.disable();
        if (status !== 200) throw new Error(`${name}: status ${status}`);
        const t = performance.now();
        JSON.parse(text);
        JSON.stringify({ results });
        const f = performance.now() - t;
        if (round === 0) continue; // the first round compiles the request's plan
        held.push(h.max / 1e6);
        floor.push(f);
      }
      report(`longest event-loop delay, ${name}, median of ${ROUNDS}`, percentile(held, 50), "ms", {
        baseline: percentile(floor, 50),
        baselineName: "JSON.parse + JSON.stringify floor",
      });
    }
    const million = JSON.stringify({
      features: ["wide:f0"],
      entities: { user_id: Array.from({ length: 1_000_000 }, (_, i) => i + 1) },
    });
    const held: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const h = monitorEventLoopDelay({ resolution: 2 });
      h.enable();
      const status = await postRaw(server.url, million);
      h.disable();
      if (status !== 413) throw new Error(`1M ids: status ${status}, expected 413`);
      held.push(h.max / 1e6);
    }
    const t = performance.now();
    JSON.parse(million);
    report(`longest event-loop delay, 1,000,000 ids refused (413), median of ${ROUNDS}`, percentile(held, 50), "ms", {
      baseline: performance.now() - t,
      baselineName: "JSON.parse floor",
    });
    await server.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
