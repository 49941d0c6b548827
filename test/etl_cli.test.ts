// The etl and datasets commands through bin/fs.js (over dist/: `npm test` builds first).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const fsBin = join(root, "bin", "fs.js");
let dir: string;

function fs(args: string[]): { out: string; code: number } {
  try {
    return {
      out: execFileSync(process.execPath, [fsBin, ...args], {
        cwd: dir,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      }),
      code: 0,
    };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; status?: number };
    return { out: `${err.stdout ?? ""}${err.stderr ?? ""}`, code: err.status ?? 1 };
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fstore-etl-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("fs datasets / fs etl", () => {
  it("generates events, runs a workflow file, saves it, and reruns the saved workflow", () => {
    const gen = fs(["datasets", "generate", "rees46", "--rows", "3000", "--out", "events.parquet"]);
    expect(gen.code, gen.out).toBe(0);
    expect(gen.out).toMatch(/rees46: \d+ events in \d+ sessions/);
    writeFileSync(
      join(dir, "sessions.ts"),
      `import { Workflow, Categorify, Normalize, Groupby, ListSlice } from ${JSON.stringify(join(root, "adapters", "etl", "index.ts"))};
export default new Workflow([
  new Categorify(["product_id"], { startIndex: 1 }),
  new Normalize("price"),
  new Groupby({ groupBy: ["user_session"], sortBy: ["event_time"], aggs: { product_id: ["list", "count"], price: ["list"] } }),
  new ListSlice(["product_id-list", "price-list"], -20),
]);
`,
    );
    const run = fs(["etl", "run", "sessions.ts", "--input", "events.parquet", "--output", "out", "--save", "wf"]);
    expect(run.code, run.out).toBe(0);
    expect(run.out).toMatch(/wrote \d+ rows to .*out \(1 file, 4 columns\)/);
    const schema = JSON.parse(readFileSync(join(dir, "out", "schema.json"), "utf8")) as {
      columns: Array<{ name: string; isList: boolean }>;
    };
    expect(schema.columns.map((c) => [c.name, c.isList])).toEqual([
      ["user_session", false],
      ["product_id-list", true],
      ["product_id-count", false],
      ["price-list", true],
    ]);
    expect(existsSync(join(dir, "wf", "categories", "unique.product_id.parquet"))).toBe(true);
    const again = fs(["etl", "run", "wf", "--input", "events.parquet", "--output", "out2", "--splits", "0.8,0.1,0.1"]);
    expect(again.code, again.out).toBe(0);
    expect(existsSync(join(dir, "out2", "train", "part_0.parquet"))).toBe(true);
  });

  it("bad input prints one clear line and exits 1", () => {
    const r = fs(["etl", "run", "wf", "--input", "missing.parquet", "--output", "x"]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/dataset missing\.parquet: no such file or folder/);
    expect(r.out).not.toMatch(/at .*\.js:\d+/);
    const bad = fs(["etl", "run", "wf", "--input", "events.parquet", "--output", "x", "--splits", "a,b"]);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/--splits "a,b"/);
  });
});
