import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, matMulFast, tf } from "../adapters/models/backend.js";
import { EmbeddingTable } from "../adapters/models/embedding.js";
import { frameFromRows, rng, sliceFrame, takeRows, uniqueBy, type Frame } from "../adapters/models/frame.js";
import { auc, evaluateTopK, listMetrics, logLoss, topK } from "../adapters/models/metrics.js";
import { sampleNegatives } from "../adapters/models/negatives.js";
import { FeatureEncoder, Optimizer } from "../adapters/models/nn.js";
import { loadSchema, parseSchema, poolingWeights, selectInputs } from "../adapters/models/schema.js";
import { accidentalHitMask, TwoTowerModel } from "../adapters/models/two_tower.js";
import { DlrmModel } from "../adapters/models/dlrm.js";
import { DlrmScorer } from "../adapters/models/dlrm_scorer.js";
import { QueryTowerScorer } from "../adapters/models/query_tower_scorer.js";
import { fit } from "../adapters/models/train.js";
import {
  dlrmToLayers,
  loadModel,
  predict,
  readItemEmbeddings,
  saveDlrm,
  saveModel,
  towerToLayers,
  writeItemEmbeddings,
} from "../adapters/models/artifacts.js";
import { leaveLastOut, loadMovieLens, recentItems } from "../adapters/models/movielens.js";
import { ValidationError } from "../common/errors.js";

let dir: string;
beforeAll(async () => {
  await initBackend("wasm", () => {});
  dir = mkdtempSync(join(tmpdir(), "fstore-models-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Central finite differences of a scalar function of `x`. */
function numericGrad(f: (x: tf.Tensor) => tf.Scalar, x: Float32Array, shape: number[], h = 1e-2): Float32Array {
  const g = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const p = x.slice();
    const m = x.slice();
    p[i] += h;
    m[i] -= h;
    const fp = tf.tidy(() => f(tf.tensor(p, shape)).dataSync()[0]);
    const fm = tf.tidy(() => f(tf.tensor(m, shape)).dataSync()[0]);
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol);
}

// A planted signal: users and items fall in G groups; users only interact with items of their own group.
const U = 200;
const I = 100;
const G = 10;
const plantedSchema = [
  { name: "user_id", dtype: "int32", tags: ["categorical", "user", "user_id"], properties: { cardinality: U } },
  { name: "item_id", dtype: "int32", tags: ["categorical", "item", "item_id"], properties: { cardinality: I } },
  { name: "item_cat", dtype: "int32", tags: ["categorical", "item"], properties: { cardinality: G } },
  { name: "item_id_raw", dtype: "int64", tags: ["item", "item_id"], properties: {} },
  { name: "click", dtype: "int32", tags: ["target", "binary_classification"], properties: {} },
];
function planted(n: number, seed: number): Frame {
  const r = rng(seed);
  const user_id = new Int32Array(n);
  const item_id = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    user_id[k] = Math.floor(r() * U);
    item_id[k] = (user_id[k] % G) + G * Math.floor(r() * (I / G));
  }
  return {
    length: n,
    columns: { user_id, item_id, item_cat: item_id.map((x) => x % G), click: new Int32Array(n).fill(1) },
  };
}

describe("backend and gradients", () => {
  it("picks wasm and computes the gather gradient on it, summing duplicate ids (numeric check)", () => {
    expect(tf.getBackend()).toBe("wasm");
    const x0 = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
    const w = tf.tensor2d(
      Float32Array.from({ length: 12 }, (_, i) => (i % 5) - 2),
      [4, 3],
    );
    const ids = tf.tensor1d([2, 0, 2, 3], "int32");
    const f = (x: tf.Tensor) => tf.sum(tf.mul(tf.square(tf.gather(x, ids)), w)) as tf.Scalar;
    const analytic = tf
      .grad(f)(tf.tensor2d(x0, [4, 3]))
      .dataSync();
    expectClose(analytic, numericGrad(f, x0, [4, 3]), 2e-2);
    // Row 1 is never gathered: exactly zero.
    expect(Array.from(analytic.slice(3, 6))).toEqual([0, 0, 0]);
  });

  it("computes the gather gradient along axis 1", () => {
    const x0 = Float32Array.from({ length: 8 }, (_, i) => i * 0.3 - 1);
    const ids = tf.tensor1d([3, 3, 0], "int32");
    const f = (x: tf.Tensor) =>
      tf.sum(
        tf.mul(
          tf.gather(x, ids, 1),
          tf.tensor2d([
            [1, 2, 3],
            [4, 5, 6],
          ]),
        ),
      ) as tf.Scalar;
    const analytic = tf
      .grad(f)(tf.tensor2d(x0, [2, 4]))
      .dataSync();
    expect(Array.from(analytic)).toEqual([3, 0, 0, 3, 6, 0, 0, 9]);
  });

  it("keeps matMul gradients right for every transpose combination", () => {
    const a0 = Float32Array.from({ length: 6 }, (_, i) => Math.cos(i));
    const b = tf.tensor2d(
      Float32Array.from({ length: 6 }, (_, i) => i - 2.5),
      [3, 2],
    );
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const aShape = ta ? [3, 2] : [2, 3];
      const bb = tb ? tf.transpose(b) : b;
      const f = (a: tf.Tensor) =>
        tf.sum(tf.square(tf.matMul(a as tf.Tensor2D, bb as tf.Tensor2D, ta, tb))) as tf.Scalar;
      expectClose(tf.grad(f)(tf.tensor(a0, aShape)).dataSync(), numericGrad(f, a0, aShape), 5e-2);
    }
    expectClose(
      matMulFast(tf.ones([2, 3]), tf.ones([4, 3]), false, true).dataSync(),
      new Float32Array(8).fill(3),
      1e-6,
    );
  });

  it("lazy Adam moves only the touched rows, exactly as dense Adam does on them", () => {
    const init = Float32Array.from({ length: 20 }, (_, i) => (i % 7) * 0.01);
    const lazy = new EmbeddingTable("t", 5, 4, "lazy", 1, init.slice());
    const dense = new EmbeddingTable("t", 5, 4, "dense", 1, init.slice());
    const target = tf.tensor2d(
      Float32Array.from({ length: 12 }, (_, i) => i * 0.1),
      [3, 4],
    );
    const ids = Int32Array.from([1, 3, 1]);
    const encL = new Optimizer({ learningRate: 0.1 });
    const encD = new Optimizer({ learningRate: 0.1 });
    for (let step = 0; step < 3; step++) {
      const pl = lazy.prepare(ids, true);
      encL.minimize(
        () => tf.sum(tf.square(tf.sub(tf.gather(pl.source, pl.index), target))) as tf.Scalar,
        [],
        [{ lookups: [pl], pooling: [null], continuous: null, length: 3 }],
      );
      const pd = dense.prepare(ids, true);
      encD.minimize(
        () => tf.sum(tf.square(tf.sub(tf.gather(pd.source, pd.index), target))) as tf.Scalar,
        [dense.variable as tf.Variable],
        [],
      );
      pl.index.dispose();
      pl.leaf?.dispose();
      pd.index.dispose();
    }
    const wl = lazy.getWeights();
    const wd = dense.getWeights();
    expectClose(wl, wd, 1e-5);
    for (const r of [0, 2, 4]) expectClose(wl.subarray(r * 4, r * 4 + 4), init.subarray(r * 4, r * 4 + 4), 1e-9);
    expect(Math.abs(wl[4] - init[4])).toBeGreaterThan(0.1);
    dense.dispose();
  });
});

describe("learning-rate schedule", () => {
  it("fit lowers the model's rate linearly to learningRateEnd of its start over all steps", () => {
    const rates: number[] = [];
    const model = {
      columns: ["x"],
      learningRate: 0.01,
      setLearningRate: (lr: number) => rates.push(lr),
      trainBatch: () => 1,
    };
    const data: Frame = { length: 30, columns: { x: new Int32Array(30) } };
    fit(model, data, { epochs: 2, batchSize: 10, learningRateEnd: 0.3 });
    expectClose(rates, [0.01, 0.0086, 0.0072, 0.0058, 0.0044, 0.003], 1e-9);
    expect(() => fit({ columns: ["x"], trainBatch: () => 1 }, data, { learningRateEnd: 0.5 })).toThrow(
      /learningRateEnd needs a model with a learning rate/,
    );
  });

  it("a two-tower's new rate reaches both the dense and the lazy embedding updates", () => {
    const spec = selectInputs(parseSchema(plantedSchema), { maxEmbeddingDim: 8 });
    const data = planted(128, 5);
    const moved = (lr: number) => {
      const tt = new TwoTowerModel(spec, { layers: [8], seed: 3 });
      tt.beforeFit(data);
      const w0 = tt.candidate.enc.tables[0].getWeights();
      const k0 = Float32Array.from(tt.candidate.mlp[0].kernel.dataSync());
      tt.setLearningRate(lr);
      tt.trainBatch(data);
      const w1 = tt.candidate.enc.tables[0].getWeights();
      const k1 = Float32Array.from(tt.candidate.mlp[0].kernel.dataSync());
      const d = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + Math.abs(x - b[i]), 0);
      const out = { table: d(w0, w1), kernel: d(k0, k1) };
      tt.dispose();
      return out;
    };
    // Adam's first step moves each touched weight by about the rate: a tenth of the rate, a tenth of the move.
    const full = moved(0.01);
    const tenth = moved(0.001);
    expect(tenth.table / full.table).toBeCloseTo(0.1, 2);
    expect(tenth.kernel / full.kernel).toBeCloseTo(0.1, 2);
  });
});

describe("shared embedding tables", () => {
  const hist = { name: "hist", side: "user" as const, cardinality: 5, dim: 4, isList: true, table: "item" };
  const item = { name: "item", side: "item" as const, cardinality: 5, dim: 4, isList: false };

  it("gives encoders that share a map one table per name, and names a size mismatch", () => {
    const shared = new Map();
    const q = new FeatureEncoder([hist], [], "lazy", 1, undefined, shared);
    const c = new FeatureEncoder([item], [], "lazy", 2, undefined, shared);
    expect(q.tables[0]).toBe(c.tables[0]);
    expect(() => new FeatureEncoder([{ ...item, dim: 8 }], [], "lazy", 2, undefined, shared)).toThrow(
      /embedding table "item": column "item" needs 5 x 8, but "hist" made it 5 x 4/,
    );
    // Without a shared name each column has its own table.
    const own = new FeatureEncoder([{ ...hist, table: undefined }, item], [], "lazy", 1);
    expect(own.tables[0]).not.toBe(own.tables[1]);
  });

  it("steps a table looked up twice once, with the summed gradients (as one lookup of both id lists)", () => {
    const init = Float32Array.from({ length: 20 }, (_, i) => ((i * 7) % 11) * 0.01);
    const twice = new EmbeddingTable("t", 5, 4, "lazy", 1, init.slice());
    const once = new EmbeddingTable("t", 5, 4, "lazy", 1, init.slice());
    const a = Int32Array.from([1, 3]);
    const b = Int32Array.from([3, 4, 4]);
    const loss = (x: tf.Tensor) => tf.sum(tf.square(tf.sub(x, 0.5))) as tf.Scalar;
    const optTwice = new Optimizer({ learningRate: 0.1 });
    const optOnce = new Optimizer({ learningRate: 0.1 });
    for (let step = 0; step < 3; step++) {
      const pa = twice.prepare(a, true);
      const pb = twice.prepare(b, true);
      optTwice.minimize(
        () => tf.add(loss(tf.gather(pa.source, pa.index)), loss(tf.gather(pb.source, pb.index))) as tf.Scalar,
        [],
        [
          { lookups: [pa], pooling: [null], continuous: null, length: 2 },
          { lookups: [pb], pooling: [null], continuous: null, length: 3 },
        ],
      );
      const p = once.prepare(Int32Array.from([...a, ...b]), true);
      optOnce.minimize(
        () => loss(tf.gather(p.source, p.index)),
        [],
        [{ lookups: [p], pooling: [null], continuous: null, length: 5 }],
      );
      for (const l of [pa, pb, p]) {
        l.index.dispose();
        l.leaf?.dispose();
      }
    }
    expectClose(twice.getWeights(), once.getWeights(), 1e-6);
    expect(Math.abs(twice.getWeights()[12] - init[12])).toBeGreaterThan(0.1);
  });
});

describe("schema inputs", () => {
  it("sizes tables from cardinalities, splits sides by tag and leaves raw ids out", () => {
    const spec = selectInputs(parseSchema(plantedSchema));
    expect(spec.categorical.map((c) => [c.name, c.side, c.cardinality, c.dim])).toEqual([
      ["user_id", "user", U, 31],
      ["item_id", "item", I, 21],
      ["item_cat", "item", G, 16],
    ]);
    expect(spec.itemIdColumn).toBe("item_id");
    expect(spec.targetColumn).toBe("click");
    expect(spec.categorical.some((c) => c.name === "item_id_raw")).toBe(false);
  });

  it("rejects a bad schema with the file and column named", () => {
    const p = join(dir, "schema.json");
    writeFileSync(p, JSON.stringify([{ name: "a", tags: ["categorical"], properties: {} }]));
    expect(() => loadSchema(p)).toThrow(
      /schema file .*schema\.json: categorical column "a" needs properties.cardinality/,
    );
    expect(() => parseSchema([{ name: "a", tags: ["colour"] }])).toThrow(/column "a": unknown tag "colour"/);
    expect(() => parseSchema({ cols: [] })).toThrow(ValidationError);
  });

  it("reads list pooling and shared table names, and names a bad one", () => {
    const hist = { name: "hist", dtype: "int32", isList: true, tags: ["categorical", "user", "list"] };
    const spec = selectInputs(
      parseSchema([
        ...plantedSchema,
        { ...hist, properties: { cardinality: I, domain: { name: "item_id" }, pooling: "recency" } },
      ]),
    );
    expect(spec.categorical.find((c) => c.name === "hist")).toMatchObject({ pooling: "recency", table: "item_id" });
    expect(spec.categorical.find((c) => c.name === "item_id")?.table).toBeUndefined();
    expect(() => parseSchema([{ ...hist, properties: { cardinality: 3, pooling: "max" } }])).toThrow(
      /column "hist": properties.pooling must be one of mean, recency, got "max"/,
    );
    expect(() =>
      parseSchema([{ name: "a", tags: ["categorical"], properties: { cardinality: 3, pooling: "recency" } }]),
    ).toThrow(/column "a": properties.pooling applies to list columns only/);
    expect(() => parseSchema([{ ...hist, properties: { cardinality: 3, domain: { name: 7 } } }])).toThrow(
      /column "hist": properties.domain.name must be a non-empty string/,
    );
  });

  it("weighs a list's items equally (mean) or by 1/age (recency), summing to 1", () => {
    const w = new Float32Array(4);
    poolingWeights("recency", 3, w, 1);
    expectClose(w, [0, 2 / 11, 3 / 11, 6 / 11], 1e-7);
    poolingWeights("mean", 4, w);
    expectClose(w, [0.25, 0.25, 0.25, 0.25], 1e-7);
  });

  it("names missing feature columns and out-of-range categories", () => {
    const spec = selectInputs(parseSchema(plantedSchema));
    expect(() => frameFromRows([{ user_id: 1, item_id: 2 }], spec, "entity rows")).toThrow(
      /entity rows: missing feature column\(s\) "item_cat"/,
    );
    expect(() => frameFromRows([{ user_id: 1, item_id: 200, item_cat: 0 }], spec)).toThrow(
      /column "item_id" row 0: value 200 is not a category index in \[0, 100\)/,
    );
  });
});

describe("blocks", () => {
  it("encodes scalar, list and continuous columns to the expected shapes", () => {
    const enc = new FeatureEncoder(
      [
        { name: "a", side: "user", cardinality: 5, dim: 3, isList: false },
        { name: "g", side: "item", cardinality: 4, dim: 2, isList: true },
      ],
      [{ name: "x", side: "item" }],
      "lazy",
      1,
    );
    const frame: Frame = {
      length: 2,
      columns: {
        a: Int32Array.from([1, 4]),
        g: { offsets: Int32Array.from([0, 2, 2]), values: Int32Array.from([1, 3]) },
        x: Float32Array.from([0.5, -1]),
      },
    };
    const p = enc.prepare(frame, false);
    const out = enc.concat(p);
    expect(out.shape).toEqual([2, 6]);
    const w = enc.tables[1].getWeights();
    const v = out.arraySync() as number[][];
    // Mean pooling of the list [1, 3]; an empty list gives zeros.
    expectClose([v[0][3], v[0][4]], [(w[2] + w[6]) / 2, (w[3] + w[7]) / 2], 1e-6);
    expect([v[1][3], v[1][4]]).toEqual([0, 0]);
    expect(v[1][5]).toBe(-1);
  });

  it("gives two-tower embeddings and DLRM scores of the right shapes", () => {
    const spec = selectInputs(parseSchema(plantedSchema));
    const tt = new TwoTowerModel(spec, { layers: [16, 8] });
    const data = planted(50, 3);
    expect(tt.encode("query", data).length).toBe(50 * 8);
    expect(tt.encode("candidate", data).length).toBe(50 * 8);
    const dl = new DlrmModel(spec, { embeddingDim: 4, topLayers: [8, 4] });
    expect(dl.nVectors).toBe(3);
    expect(dl.pairs).toEqual([
      [0, 1],
      [0, 2],
      [1, 2],
    ]);
    const s = dl.score(data);
    expect(s.length).toBe(50);
    expect(s.every((x) => x > 0 && x < 1)).toBe(true);
    tt.dispose();
    dl.dispose();
  });
});

describe("learning a planted signal", () => {
  it("two-tower retrieval beats chance several times over on the full catalogue", () => {
    const spec = selectInputs(parseSchema(plantedSchema), { maxEmbeddingDim: 16 });
    const tt = new TwoTowerModel(spec, { layers: [32, 16], learningRate: 0.01, seed: 5 });
    const train = planted(6000, 11);
    fit(tt, train, { epochs: 3, batchSize: 256, seed: 1 });
    const cat = uniqueBy(train, "item_id", ["item_id", "item_cat"]);
    const users: Frame = { length: U, columns: { user_id: Int32Array.from({ length: U }, (_, i) => i) } };
    const q = tt.encode("query", users);
    const c = tt.encode("candidate", cat);
    const itemIds = cat.columns.item_id as Int32Array;
    // One relevant item per user: a random item of its group.
    const r = rng(99);
    const relevant = Array.from(
      { length: U },
      (_, u) => new Set([itemIds.indexOf((u % G) + G * Math.floor(r() * (I / G)))]),
    );
    const qt = tf.tensor2d(q, [U, tt.dim]);
    const ctT = tf.transpose(tf.tensor2d(c, [cat.length, tt.dim]));
    const m = evaluateTopK({
      nUsers: U,
      nItems: cat.length,
      k: 10,
      relevant,
      scoreUsers: (s, e) => {
        const t = tf.tidy(() => tf.matMul(tf.slice(qt, [s, 0], [e - s, tt.dim]), ctT));
        const d = t.dataSync() as Float32Array;
        t.dispose();
        return d;
      },
    });
    // Chance Recall@10 is 10/100; the group structure allows 10/10.
    expect(m.recall).toBeGreaterThan(0.5);
    tt.dispose();
  });

  it("DLRM with sampled negatives ranks in-group items above the others (AUC)", () => {
    const spec = selectInputs(parseSchema(plantedSchema));
    const dl = new DlrmModel(spec, { embeddingDim: 8, topLayers: [32, 16], negatives: 4, learningRate: 0.01, seed: 3 });
    fit(dl, planted(4000, 12), { epochs: 2, batchSize: 256 });
    const r = rng(5);
    const n = 1000;
    const user_id = Int32Array.from({ length: n }, () => Math.floor(r() * U));
    const item_id = Int32Array.from({ length: n }, () => Math.floor(r() * I));
    const labels = Int32Array.from(user_id, (u, k) => (u % G === item_id[k] % G ? 1 : 0));
    const scores = dl.score({ length: n, columns: { user_id, item_id, item_cat: item_id.map((x) => x % G) } });
    expect(auc(scores, labels)).toBeGreaterThan(0.9);
    dl.dispose();
  });
});

describe("negative sampling", () => {
  it("never yields the positive item, from the batch or the catalogue", () => {
    const r = rng(1);
    const pos = Int32Array.from({ length: 500 }, () => Math.floor(r() * 5));
    const fromBatch = sampleNegatives(pos, pos, 8, r);
    expect(fromBatch.positiveRow.length).toBeGreaterThan(3500);
    for (let k = 0; k < fromBatch.positiveRow.length; k++)
      expect(pos[fromBatch.candidateRow[k]]).not.toBe(pos[fromBatch.positiveRow[k]]);
    const catalogue = Int32Array.from({ length: 5 }, (_, i) => i);
    const fromCat = sampleNegatives(pos, catalogue, 8, r);
    expect(fromCat.positiveRow.length).toBe(500 * 8);
    for (let k = 0; k < fromCat.positiveRow.length; k++)
      expect(catalogue[fromCat.candidateRow[k]]).not.toBe(pos[fromCat.positiveRow[k]]);
    // A batch holding only one item has no negative to offer.
    expect(sampleNegatives(Int32Array.from([7, 7]), Int32Array.from([7, 7]), 3, r).positiveRow.length).toBe(0);
  });

  it("builds DLRM training rows with user columns of the positive and item columns of the negative", () => {
    const spec = selectInputs(parseSchema(plantedSchema));
    const dl = new DlrmModel(spec, { embeddingDim: 4, negatives: 3, negativeSource: "catalogue" });
    const data = planted(64, 8);
    dl.setCatalogue(uniqueBy(data, "item_id", ["item_id", "item_cat"]));
    const { rows, labels } = dl.trainingRows(data);
    expect(rows.length).toBe(64 * 4);
    expect(labels.slice(0, 64).every((x) => x === 1) && labels.slice(64).every((x) => x === 0)).toBe(true);
    const items = rows.columns.item_id as Int32Array;
    const cats = rows.columns.item_cat as Int32Array;
    for (let k = 64; k < rows.length; k++) expect(cats[k]).toBe(items[k] % G);
    dl.dispose();
  });

  it("draws hard negatives from each row's own candidate list, never the positive", () => {
    const spec = selectInputs(parseSchema(plantedSchema));
    expect(() => new DlrmModel(spec, { negatives: 2, negativeSource: "column" })).toThrow(/negativeColumn/);
    const dl = new DlrmModel(spec, {
      embeddingDim: 4,
      negatives: 2,
      negativeSource: "column",
      negativeColumn: "cands",
    });
    const data = planted(64, 8);
    const catalogue = uniqueBy(data, "item_id", ["item_id", "item_cat"]);
    dl.setCatalogue(catalogue);
    const known = Array.from(catalogue.columns.item_id as Int32Array);
    // row r's list: its positive, two catalogue items chosen by its user, and an item the catalogue lacks (skipped)
    const pick = (u: number) => [known[u % known.length], known[(u + 1) % known.length]];
    const pos = data.columns.item_id as Int32Array;
    const user = data.columns.user_id as Int32Array;
    const lists = Array.from(pos, (p, r) => [p, ...pick(user[r]), 99999]);
    const offsets = Int32Array.from({ length: 65 }, (_, r) => r * 4);
    const cands = { offsets, values: Int32Array.from(lists.flat()) };
    expect(dl.columns).toContain("cands");
    const { rows, labels } = dl.trainingRows({ length: 64, columns: { ...data.columns, cands } });
    expect(rows.columns.cands).toBeUndefined();
    expect(rows.length).toBeGreaterThan(64 + 32);
    expect(labels.slice(64).every((x) => x === 0)).toBe(true);
    const items = rows.columns.item_id as Int32Array;
    const users = rows.columns.user_id as Int32Array;
    const cats = rows.columns.item_cat as Int32Array;
    for (let k = 64; k < rows.length; k++) {
      expect(pick(users[k])).toContain(items[k]);
      expect(cats[k]).toBe(items[k] % G);
    }
    dl.dispose();
  });
});

describe("in-batch and mixed negatives", () => {
  it("masks only other columns holding the row's own positive item", () => {
    expect(accidentalHitMask(Int32Array.from([1, 2, 3]))).toBeNull();
    const m = accidentalHitMask(Int32Array.from([1, 2, 1]), Int32Array.from([1, 2, 1, 2, 7])) as Float32Array;
    const hits = Array.from(m).flatMap((v, k) => (v < 0 ? [[Math.floor(k / 5), k % 5]] : []));
    expect(hits).toEqual([
      [0, 2],
      [1, 3],
      [2, 0],
    ]);
  });

  it("trains with catalogue items mixed into the in-batch negatives, with logQ correction", () => {
    const spec = selectInputs(parseSchema(plantedSchema), { maxEmbeddingDim: 8 });
    const tt = new TwoTowerModel(spec, { layers: [16, 8], mixedNegatives: 32, logQCorrection: true });
    const data = planted(512, 21);
    expect(() => tt.trainBatch(data)).toThrow(/mixed negatives need setCatalogue/);
    tt.setCatalogue(uniqueBy(data, "item_id", ["item_id", "item_cat"]));
    expect(() => tt.trainBatch(data)).toThrow(/logQ correction needs setItemFrequencies/);
    tt.setItemFrequencies(Float32Array.from({ length: I }, (_, i) => 1 + (i % 3)));
    const h = fit(tt, data, { epochs: 3, batchSize: 128 });
    expect(h[2].loss).toBeLessThan(h[0].loss);
    tt.dispose();
  });
});

describe("metrics", () => {
  it("match hand-computed values", () => {
    const m = listMetrics([5, 1, 9, 2], new Set([1, 2, 7]), 4);
    expect(m.recall).toBeCloseTo(2 / 3, 10);
    expect(m.precision).toBeCloseTo(0.5, 10);
    expect(m.mrr).toBeCloseTo(0.5, 10);
    expect(m.map).toBeCloseTo((1 / 2 + 2 / 4) / 3, 10);
    const dcg = 1 / Math.log2(3) + 1 / Math.log2(5);
    const idcg = 1 + 1 / Math.log2(3) + 1 / Math.log2(4);
    expect(m.ndcg).toBeCloseTo(dcg / idcg, 10);
    expect(Array.from(topK([0.1, 0.9, 0.5, 0.9, 0.2], 3))).toEqual([1, 3, 2]);
    expect(Array.from(topK([0.1, 0.9, 0.5, 0.9, 0.2], 3, new Set([1])))).toEqual([3, 2, 4]);
    // AUC with a tie between a positive and a negative: 3 of 4 pairs ordered, 1 tied = 3.5 / 4.
    expect(auc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.875, 10);
    expect(logLoss([0.5, 0.9], [1, 0])).toBeCloseTo((Math.log(2) - Math.log(0.1)) / 2, 6);
  });
});

describe("MovieLens model inputs (the committed slice of the real files, through the shared loader)", () => {
  it("recent items hold each user's previous items only", () => {
    const l = recentItems(Int32Array.of(0, 0, 0, 1, 1), Int32Array.of(5, 6, 7, 5, 8), 2);
    const rows = Array.from({ length: 5 }, (_, r) => Array.from(l.values.subarray(l.offsets[r], l.offsets[r + 1])));
    expect(rows).toEqual([[], [5], [5, 6], [], [5]]);
  });

  it("encodes ids, genres, year and recent items; the split holds out each user's last rating", async () => {
    // test/fixtures/ml-latest-small: 31 users' whole histories; the 19 movies nobody in it rated are left out
    const ml = await loadMovieLens(join(import.meta.dirname, "fixtures", "ml-latest-small"), { historyLength: 3 });
    expect([ml.interactions.length, ml.nUsers, ml.nItems, ml.items.length]).toEqual([3815, 31, 1746, 1746]);
    const c = ml.interactions.columns;
    const items = c.item_id as Int32Array;
    const hist = c.recent_items as { offsets: Int32Array; values: Int32Array };
    // Row 3 of the first user: its three predecessors, oldest first.
    expect(Array.from(hist.values.subarray(hist.offsets[3], hist.offsets[4]))).toEqual([items[0], items[1], items[2]]);
    expect(hist.offsets[1]).toBe(0);
    const last = c.last_item as Int32Array;
    expect([last[0], last[1], last[3]]).toEqual([ml.nItems, items[0], items[2]]);
    const toy = ml.rawItemIds.indexOf(1);
    const g = ml.items.columns.genres as { offsets: Int32Array; values: Int32Array };
    expect(g.offsets[toy + 1] - g.offsets[toy]).toBe(5); // Adventure|Animation|Children|Comedy|Fantasy
    const split = leaveLastOut(ml.interactions);
    expect(split.test.length).toBe(31);
    expect(split.train.length + split.test.length).toBe(3815);
    expect(ml.schema.find((s) => s.name === "recent_items")?.tags).toEqual(["categorical", "user", "list"]);
  });
});

describe("artifacts", () => {
  it("save/load gives identical query embeddings, item embeddings and DLRM scores", async () => {
    const schema = [
      ...plantedSchema,
      {
        name: "genres",
        dtype: "int32",
        isList: true,
        tags: ["categorical", "item", "list"],
        properties: { cardinality: 6 },
      },
      { name: "age", dtype: "float32", tags: ["continuous", "user"], properties: {} },
    ];
    const spec = selectInputs(parseSchema(schema), { maxEmbeddingDim: 8 });
    const base = planted(300, 4);
    const r = rng(2);
    const offsets = new Int32Array(301);
    const values: number[] = [];
    for (let i = 0; i < 300; i++) {
      const n = Math.floor(r() * 3);
      for (let k = 0; k < n; k++) values.push(Math.floor(r() * 6));
      offsets[i + 1] = values.length;
    }
    const data: Frame = {
      length: 300,
      columns: {
        ...base.columns,
        genres: { offsets, values: Int32Array.from(values) },
        age: Float32Array.from({ length: 300 }, () => r()),
      },
    };
    const tt = new TwoTowerModel(spec, { layers: [16, 8], l2Normalize: true, temperature: 0.1 });
    fit(tt, data, { epochs: 1, batchSize: 64 });
    const q = towerToLayers(tt, "query");
    await saveModel(q.model, join(dir, "query"), {
      kind: "query-tower",
      inputs: q.inputs,
      output: { name: "embedding", dim: 8, l2Normalize: true },
      metrics: { recall_at_10: 0.5 },
      training: {},
    });
    const loaded = await loadModel(join(dir, "query"));
    expect(loaded.meta.metrics.recall_at_10).toBe(0.5);
    expectClose(predict(loaded, data), tt.encode("query", data), 1e-5);
    const c = towerToLayers(tt, "candidate");
    await saveModel(c.model, join(dir, "item"), {
      kind: "item-tower",
      inputs: c.inputs,
      output: { name: "embedding", dim: 8, l2Normalize: true },
      metrics: {},
      training: {},
    });
    const itemEmb = tt.encode("candidate", data);
    expectClose(predict(await loadModel(join(dir, "item")), data), itemEmb, 1e-5);

    const cat = uniqueBy(data, "item_id");
    const catEmb = tt.encode("candidate", cat);
    await writeItemEmbeddings(
      join(dir, "item_embeddings.parquet"),
      "item_id",
      cat.columns.item_id as Int32Array,
      catEmb,
      8,
    );
    const back = await readItemEmbeddings(join(dir, "item_embeddings.parquet"), "item_id");
    expect(Array.from(back.ids)).toEqual(Array.from(cat.columns.item_id as Int32Array));
    expect(Array.from(back.embeddings)).toEqual(Array.from(catEmb));

    const dl = new DlrmModel(spec, { embeddingDim: 8, topLayers: [16, 8], negatives: 2 });
    fit(dl, data, { epochs: 1, batchSize: 64 });
    const d = dlrmToLayers(dl);
    await saveModel(d.model, join(dir, "dlrm"), {
      kind: "dlrm",
      inputs: d.inputs,
      output: { name: "click_probability", dim: 1 },
      metrics: { auc: 0.7 },
      training: {},
    });
    expectClose(predict(await loadModel(join(dir, "dlrm")), data), dl.score(data), 1e-5);
    tt.dispose();
    dl.dispose();
  });

  it("the typed-array DLRM scorer gives the trained model's scores (rows, one user's candidates, a loaded model)", async () => {
    const tensorsBefore = tf.memory().numTensors;
    // Continuous inputs on the user side (the bottom MLP is shared by a request) and on the item side (it is not);
    // the list mean-pooled in the first case, recency-pooled in the second.
    for (const continuousSide of ["user", "item"] as const) {
      const schema = [
        ...plantedSchema,
        {
          name: "genres",
          dtype: "int32",
          isList: true,
          tags: ["categorical", "item", "list"],
          properties: { cardinality: 6, ...(continuousSide === "item" ? { pooling: "recency" } : {}) },
        },
        { name: "age", dtype: "float32", tags: ["continuous", continuousSide], properties: {} },
        { name: "device", dtype: "int32", tags: ["categorical"], properties: { cardinality: 3 } }, // no side tag: context
      ];
      const spec = selectInputs(parseSchema(schema));
      const n = 400;
      const base = planted(n, 8);
      const r = rng(3);
      const offsets = new Int32Array(n + 1);
      const values: number[] = [];
      for (let i = 0; i < n; i++) {
        const k = Math.floor(r() * 3);
        for (let j = 0; j < k; j++) values.push(Math.floor(r() * 6));
        offsets[i + 1] = values.length;
      }
      const cols = {
        ...base.columns,
        genres: { offsets, values: Int32Array.from(values) },
        age: Float32Array.from({ length: n }, () => r() * 2 - 1),
        device: Int32Array.from({ length: n }, () => Math.floor(r() * 3)),
      };
      const data: Frame = { length: n, columns: cols };
      const dl = new DlrmModel(spec, {
        embeddingDim: 8,
        bottomLayers: [16, 8],
        topLayers: [32, 16],
        negatives: 2,
        learningRate: 0.01,
        seed: 9,
      });
      fit(dl, data, { epochs: 2, batchSize: 64 });
      const expected = dl.score(data);
      expect(new Set(Array.from(expected, (x) => x.toFixed(5))).size).toBeGreaterThan(50); // not a constant model
      // One request: user 7 on device 2 (age 0.3 when it is a user feature) against 60 candidate items.
      const m = 60;
      const cand = takeRows(
        data,
        Int32Array.from({ length: m }, (_, i) => i * 5),
      );
      const shared: Frame = {
        length: 1,
        columns: {
          user_id: Int32Array.of(7),
          device: Int32Array.of(2),
          ...(continuousSide === "user" ? { age: Float32Array.of(0.3) } : {}),
        },
      };
      const repeated: Frame = {
        length: m,
        columns: {
          ...cand.columns,
          user_id: new Int32Array(m).fill(7),
          device: new Int32Array(m).fill(2),
          ...(continuousSide === "user" ? { age: new Float32Array(m).fill(0.3) } : {}),
        },
      };
      const want = dl.score(repeated);
      for (const engine of ["tfjs", "js"] as const) {
        const scorer = DlrmScorer.fromModel(dl, engine);
        expect(scorer.engine).toBe(engine);
        expectClose(scorer.score(data), expected, 1e-5);
        expectClose(scorer.scoreCandidates(shared, cand), want, 1e-5);
        // Scratch buffers are reused: a second, smaller call is not polluted by the first.
        expectClose(scorer.scoreCandidates(shared, sliceFrame(cand, 0, 7)), want.subarray(0, 7), 1e-5);
        scorer.dispose();
      }

      const folder = join(dir, `dlrm-scorer-${continuousSide}`);
      await saveDlrm(dl, folder);
      const loaded = await loadModel(folder);
      const fromLayers = DlrmScorer.fromLayers(loaded);
      // The folded F x F interaction kernel keeps exactly the trained pairs.
      expect(fromLayers.weights.pairs).toEqual(dl.pairs);
      expectClose(fromLayers.scoreCandidates(shared, cand), want, 1e-5);
      expectClose(fromLayers.score(data), expected, 1e-5);
      fromLayers.dispose();
      loaded.model.dispose();
      dl.dispose();
    }
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const tower = await loadModel(join(dir, "query"));
    expect(() => DlrmScorer.fromLayers(tower)).toThrow(/not a dlrm/);
    tower.model.dispose();
  });

  it("names a missing model file", async () => {
    await expect(loadModel(join(dir, "nope"))).rejects.toThrow(/model folder .*nope: missing .*model\.json/);
  });
});

describe("query tower scorer", () => {
  it("gives the loaded tfjs query tower's embeddings on typed arrays (scalar, list and continuous inputs)", async () => {
    const schema = [
      ...plantedSchema,
      {
        name: "recent",
        dtype: "int32",
        isList: true,
        tags: ["categorical", "user", "list"],
        properties: { cardinality: I },
      },
      { name: "age", dtype: "float32", tags: ["continuous", "user"], properties: {} },
    ];
    // The history either mean-pooled with its own table, or recency-pooled on the item id's table.
    const specOf = (recency: boolean) =>
      selectInputs(
        parseSchema(
          schema.map((c) =>
            c.name === "recent" && recency
              ? { ...c, properties: { cardinality: I, domain: { name: "item_id" }, pooling: "recency" } }
              : c,
          ),
        ),
        { maxEmbeddingDim: 8 },
      );
    const base = planted(400, 21);
    const r = rng(22);
    const offsets = new Int32Array(401);
    const values: number[] = [];
    for (let i = 0; i < 400; i++) {
      const n = Math.floor(r() * 4);
      for (let k = 0; k < n; k++) values.push(Math.floor(r() * I));
      offsets[i + 1] = values.length;
    }
    const data: Frame = {
      length: 400,
      columns: {
        ...base.columns,
        recent: { offsets, values: Int32Array.from(values) },
        age: Float32Array.from({ length: 400 }, () => r() * 3),
      },
    };
    // An unknown user id (past the table) maps to row 0 in both.
    (data.columns.user_id as Int32Array)[0] = U + 5;
    for (const l2Normalize of [false, true]) {
      const tt = new TwoTowerModel(specOf(l2Normalize), { layers: [16, 8], l2Normalize });
      if (l2Normalize) expect(tt.query.enc.tables[1]).toBe(tt.candidate.enc.tables[0]);
      fit(tt, data, { epochs: 1, batchSize: 64 });
      const trained = tt.encode("query", data);
      const q = towerToLayers(tt, "query");
      const out = join(dir, `qts_${l2Normalize}`);
      await saveModel(q.model, out, {
        kind: "query-tower",
        inputs: q.inputs,
        output: { name: "embedding", dim: 8, l2Normalize },
        metrics: {},
        training: {},
      });
      q.model.dispose();
      tt.dispose();
      const loaded = await loadModel(out);
      expect(loaded.meta.inputs.find((x) => x.name === "recent")?.pooling).toBe(l2Normalize ? "recency" : undefined);
      const reference = predict(loaded, data);
      loaded.model.dispose();
      // The saved tower pools the history as training did (row 0's unknown user is the scorers' own rule).
      expectClose(reference.subarray(8), trained.subarray(8), 1e-5);
      const tensorsBefore = tf.memory().numTensors;
      const scorer = await QueryTowerScorer.load(out);
      expect(scorer.dim).toBe(8);
      expect(scorer.inputs.map((x) => x.name)).toEqual(["user_id", "recent", "age"]);
      const emb = scorer.embed(data);
      expectClose(emb, reference, 1e-5);
      // One user at a time gives the same rows.
      expectClose(scorer.embed(sliceFrame(data, 7, 8)), reference.subarray(7 * 8, 8 * 8), 1e-5);
      expect(tf.memory().numTensors).toBe(tensorsBefore);
    }
    const item = await loadModel(join(dir, "qts_true"));
    expect(() => QueryTowerScorer.fromLayers({ ...item, meta: { ...item.meta, kind: "item-tower" } })).toThrow(
      /not a query-tower/,
    );
    item.model.dispose();
  });
});
