// The neural session models end to end on a small generated data set through the real session ETL: the
// typed-array forward pass against TensorFlow.js, the day-by-day job's model folders, and the served top 10
// (saved folder, session row from the saved workflow's transformRows) against the evaluation's top 10.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateRees46, rees46SessionWorkflow } from "../adapters/datasets/index.js";
import { Workflow, type Row } from "../adapters/etl/index.js";
import { openDuckDB, sqlString } from "../common/duckdb.js";
import { initBackend, type tf } from "../adapters/models/backend.js";
import { loadSessionModel } from "../adapters/models/session/artifacts.js";
import { loadSessionData, queryFromRow, type LoadedSessions } from "../adapters/models/session/data.js";
import { sessionQuery } from "../adapters/models/session/evaluate.js";
import { trainSessionJob, type SessionJobResult } from "../adapters/models/session/job.js";
import { GruTrainer, TransformerTrainer } from "../adapters/models/session/models.js";
import { makeBatch, resolveNeuralOptions, type SeqBatch } from "../adapters/models/session/neural.js";
import { scheduledRate } from "../adapters/models/train.js";
import { emptyCatalogue } from "../adapters/models/session/scorer.js";

let dir: string;
let data: string;
let loaded: LoadedSessions;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fstore-session-models-"));
  const events = join(dir, "events.parquet");
  await generateRees46(events, { sessions: 700, items: 60, days: 3, seed: 5 });
  const wf = rees46SessionWorkflow();
  await wf.fit(events);
  data = join(dir, "sessions");
  await wf.transform(events, data, { partitionBy: "day_index" });
  wf.save(join(dir, "workflow"));
  loaded = await loadSessionData(data);
  await initBackend("wasm", () => {});
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

class GruProbe extends GruTrainer {
  hidden(b: SeqBatch): tf.Tensor2D {
    return this.encode(b);
  }
}
class TransformerProbe extends TransformerTrainer {
  hidden(b: SeqBatch): tf.Tensor2D {
    return this.encode(b);
  }
}

describe("neural session models", () => {
  it("the learning rate falls linearly over a day's steps to its end share (defaults: batch 32, end 0.3)", () => {
    expect(scheduledRate(0.01, 0.3, 0, 11)).toBeCloseTo(0.01, 10);
    expect(scheduledRate(0.01, 0.3, 5, 11)).toBeCloseTo(0.0065, 10);
    expect(scheduledRate(0.01, 0.3, 10, 11)).toBeCloseTo(0.003, 10);
    expect(scheduledRate(0.01, 0.3, 0, 1)).toBeCloseTo(0.01, 10);
    const o = resolveNeuralOptions({});
    expect([o.batchSize, o.learningRateEnd, o.epochs]).toEqual([32, 0.3, 5]);
  });

  it("the typed-array forward pass computes what TensorFlow.js trained", () => {
    const { inputs, sessions: s } = loaded;
    const all = Int32Array.from({ length: s.length }, (_, i) => i);
    for (const Probe of [GruProbe, TransformerProbe]) {
      const m = new Probe(inputs, emptyCatalogue(inputs.itemCardinality, inputs.firstItemIndex, inputs.oovIndex), {
        epochs: 1,
        dim: 16,
        softmax: "sampled",
        negatives: 16,
      });
      try {
        const r = m.train(s, all);
        expect(r.samples).toBeGreaterThan(500);
        const rows = [0, 5, 17];
        const b = makeBatch(s, rows, 20);
        const h = m.hidden(b);
        const tfjs = h.dataSync();
        h.dispose();
        const scorer = m.scorer();
        rows.forEach((row, j) => {
          const len = Math.min(20, s.offsets[row + 1] - s.offsets[row]);
          const js = scorer.encode(scorer.normalize(sessionQuery(s, row)));
          for (let k = 0; k < 16; k++) expect(js[k]).toBeCloseTo(tfjs[(j * b.L + len - 1) * 16 + k], 4);
        });
      } finally {
        m.dispose();
      }
    }
  });

  it("masked-item training (mlm): the scorer's appended mask reads what TensorFlow.js computes", () => {
    const { inputs, sessions: s } = loaded;
    const m = new TransformerProbe(
      inputs,
      emptyCatalogue(inputs.itemCardinality, inputs.firstItemIndex, inputs.oovIndex),
      { epochs: 1, dim: 16, softmax: "sampled", negatives: 16, objective: "mlm", layers: 1 },
    );
    try {
      m.train(
        s,
        Int32Array.from({ length: 300 }, (_, i) => i),
      );
      const scorer = m.scorer();
      for (const row of [2, 9]) {
        const b = makeBatch(s, [row], 20);
        const n = b.lengths[0];
        const masked = new Uint8Array(n);
        masked[n - 1] = 1;
        const h = m.hidden({ ...b, masked });
        const tfjs = h.dataSync().slice((n - 1) * 16, n * 16);
        h.dispose();
        // the scorer sees the first n - 1 items and appends the mask itself
        const js = scorer.encode(scorer.normalize(sessionQuery(s, row, s.offsets[row] + n - 1)));
        for (let k = 0; k < 16; k++) expect(js[k]).toBeCloseTo(tfjs[k], 4);
      }
    } finally {
      m.dispose();
    }
  });

  describe("day-by-day job", () => {
    let res: SessionJobResult;
    const evalTop = new Map<string, Int32Array>();

    beforeAll(async () => {
      res = await trainSessionJob({
        data,
        outDir: join(dir, "models"),
        models: ["gru", "transformer"],
        neural: { epochs: 1, dim: 16, softmax: "sampled", negatives: 32, layers: 1 },
        trainLastDay: false,
        onSession: (model, day, session, top) => {
          if (day === 3) evalTop.set(`${model}:${session}`, top);
        },
      });
    }, 180_000);

    it("evaluates every model on days 2 and 3 and writes a folder per model and the report", () => {
      expect(res.days).toEqual([1, 2, 3]);
      expect(Object.keys(res.mean).sort()).toEqual(["gru", "knn", "popularity", "rules", "transformer"]);
      for (const [name, days] of Object.entries(res.perDay)) {
        expect(days.map((d) => d.day)).toEqual([2, 3]);
        expect(days[0].evaluated).toBeGreaterThan(100);
        const folder = res.models[name];
        for (const f of ["model.json", "weights.bin", "fstore-model.json"])
          expect(existsSync(join(folder, f))).toBe(true);
      }
      // the planted transitions: sequential rules beat popularity by far
      expect(res.mean.rules.ndcg_at_20).toBeGreaterThan(res.mean.popularity.ndcg_at_20 + 0.2);
      const md = readFileSync(join(res.outDir, "results.md"), "utf8");
      expect(md).toMatch(/\| transformer \| 0\.\d{4} \|/);
      expect(readFileSync(join(res.outDir, "results_by_day.svg"), "utf8")).toMatch(/day 3/);
    });

    it("the saved folders answer a session's prefix with the evaluation's top 10, also from the workflow's online rows", async () => {
      const s = loaded.sessions;
      const day3 = Array.from({ length: s.length }, (_, i) => i).filter((i) => s.day[i] === 3);
      const wf = Workflow.load(join(dir, "workflow"));
      await wf.prepareOnline();
      const duck = await openDuckDB();
      let raw: Row[];
      try {
        raw = (
          await duck.connection.runAndReadAll(
            `SELECT * FROM read_parquet(${sqlString(join(dir, "events.parquet"))}) WHERE event_time >= '2019-10-03'`,
          )
        ).getRowObjectsJS() as Row[];
      } finally {
        duck.close();
      }
      for (const name of ["gru", "transformer", "knn", "rules"]) {
        const { scorer, meta } = loadSessionModel(res.models[name]);
        expect(meta.kind).toBe(`session-${name}`);
        for (const i of day3.slice(0, 25)) {
          const want = evalTop.get(`${name}:${i}`);
          expect(want, `${name} session ${i}`).toBeDefined();
          const got = scorer.topK(sessionQuery(s, i, s.offsets[i + 1] - 1), 10);
          expect(Array.from(got.items)).toEqual(Array.from((want as Int32Array).slice(0, 10)));
        }
      }
      // serving: a session's raw events through the saved workflow, its last item left out
      const { scorer } = loadSessionModel(res.models.transformer);
      const bySession = new Map<string, Row[]>();
      for (const r of raw) {
        const k = r.user_session as string;
        if (!bySession.has(k)) bySession.set(k, []);
        (bySession.get(k) as Row[]).push(r);
      }
      let compared = 0;
      for (const events of [...bySession.values()].slice(0, 40)) {
        const rows = wf.transformRows(events);
        if (rows.length !== 1) continue;
        const q = queryFromRow(rows[0], loaded.inputs);
        const n = q.items.length;
        const i = day3.find(
          (j) =>
            s.offsets[j + 1] - s.offsets[j] === n &&
            s.items.subarray(s.offsets[j], s.offsets[j + 1]).every((x, k) => x === q.items[k]),
        );
        if (i === undefined) continue;
        const prefix = {
          items: q.items.subarray(0, n - 1),
          categorical: q.categorical.map((c) => c.subarray(0, n - 1)),
          continuous: q.continuous.map((c) => c.subarray(0, n - 1)),
        };
        expect(Array.from(scorer.topK(prefix, 10).items)).toEqual(
          Array.from((evalTop.get(`transformer:${i}`) as Int32Array).slice(0, 10)),
        );
        compared++;
      }
      expect(compared).toBeGreaterThan(10);
    });
  });
});

const FS = fileURLToPath(new URL("../bin/fs.js", import.meta.url));
describe.skipIf(!existsSync(join(FS, "../../dist/cli/commands/train/session.js")))("fs train session", () => {
  it("trains the chosen model beside the baselines with progress and saves the folders", async () => {
    const out = join(dir, "cli");
    const run = promisify(execFile);
    const { stdout, stderr } = await run(
      process.execPath,
      [FS, "train", "session", "--model", "knn", "--data", data, "--output", out, "--days", "1-2"],
      { env: { ...process.env, NO_COLOR: "1" } },
    );
    expect(stdout).toMatch(/knn: trained on day 1 \(\d+ sessions/);
    expect(stderr).toMatch(/evaluate session-knn/);
    expect(stdout).toMatch(/\| rules \| 0\.\d{4}/);
    for (const m of ["knn", "rules", "popularity"]) expect(existsSync(join(out, m, "fstore-model.json"))).toBe(true);
    const bad = await run(process.execPath, [
      FS,
      "train",
      "session",
      "--model",
      "lstm",
      "--data",
      data,
      "-o",
      out,
    ]).catch((e: { stderr: string }) => e);
    expect((bad as { stderr: string }).stderr).toMatch(
      /--model lstm: expected one of gru, transformer, knn, rules, popularity/,
    );
    // `fs train session` is its own command; `fs train two-tower|dlrm` still reach the two-tower / DLRM command
    const old = await run(process.execPath, [FS, "train", "dlrm", "--help"]);
    expect(old.stdout).toMatch(/Train a two-tower retrieval or DLRM ranking model/);
  }, 120_000);
});
