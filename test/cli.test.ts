// The `fs` command end to end, on a repository created by `fs init` outside the checkout.
// Runs the compiled CLI (npm test builds dist/ first).
import { execFile } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeParquet } from "../stores/offline/parquet.js";
import { tempDir } from "./repo_fixture.js";

const FS = fileURLToPath(new URL("../bin/fs.js", import.meta.url));
const run = promisify(execFile);

async function fs(cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [FS, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: "1" },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? 1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

// Each step spawns a node process: allow for a loaded 2-core machine.
describe.skipIf(!existsSync(join(FS, "../../dist/cli/commands.js")))("fs CLI", { timeout: 240_000 }, () => {
  let root: string;
  let cleanup: () => void;
  let repo: string;

  beforeAll(async () => {
    ({ dir: root, cleanup } = tempDir("cli"));
    const init = await fs(root, "init", "shop");
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    repo = join(root, "shop");
  });
  afterAll(() => cleanup());

  it("init -> apply -> materialize-incremental now -> get-online-features", async () => {
    const apply = await fs(repo, "apply");
    expect(apply.code).toBe(0);
    expect(apply.stdout).toMatch(/\+ create feature view\s+user_stats/);
    expect((await fs(repo, "plan")).stdout).toMatch(/No changes/);
    const mat = await fs(repo, "materialize-incremental", "now");
    expect(mat.code).toBe(0);
    expect(mat.stdout).toMatch(/user_stats: 20 rows/);
    expect(mat.stderr).toMatch(/user_stats: done 20\/20/); // progress as log lines off a TTY
    const got = await fs(
      repo,
      "get-online-features",
      "--features",
      "user_stats:clicks_7d,user_stats:favorite_category",
      "--entity",
      "user_id=1",
      "--entity",
      "user_id=404",
    );
    expect(got.code).toBe(0);
    const body = JSON.parse(got.stdout) as {
      metadata: { feature_names: string[] };
      results: Array<{ values: unknown[]; statuses: string[] }>;
    };
    expect(body.metadata.feature_names).toEqual(["user_id", "clicks_7d", "favorite_category"]);
    expect(body.results[0].values).toEqual([1, 404]);
    expect(body.results[1].statuses).toEqual(["PRESENT", "NOT_FOUND"]);
    expect(typeof body.results[1].values[0]).toBe("number");
    const svc = await fs(
      repo,
      "get-online-features",
      "--feature-service",
      "recommender_v1",
      "-e",
      "user_id=2,item_id=3",
      "--full-feature-names",
    );
    expect(JSON.parse(svc.stdout).metadata.feature_names).toContain("item_stats__price");
  });

  it("lists, describes and dumps the registry", async () => {
    expect((await fs(repo, "feature-views", "list")).stdout).toMatch(/user_stats\s+user\s+4\s+604800s/);
    expect((await fs(repo, "entities", "list")).stdout).toMatch(/user\s+user_id\s+int64/);
    expect((await fs(repo, "feature-services", "list")).stdout).toMatch(/recommender_v1/);
    const described = JSON.parse((await fs(repo, "feature-views", "describe", "user_stats")).stdout);
    expect(described.ttlSeconds).toBe(604800);
    expect(described.materializations.length).toBeGreaterThan(0);
    const dump = JSON.parse((await fs(repo, "registry-dump")).stdout);
    expect(dump.featureViews.map((v: { name: string }) => v.name).sort()).toEqual(["item_stats", "user_stats"]);
  });

  it("writes a point-in-time training set", async () => {
    const entities = join(root, "entities.parquet");
    const now = Date.now();
    await writeParquet(
      entities,
      [
        { user_id: 1, event_timestamp: now },
        { user_id: 2, event_timestamp: now - 30 * 86400_000 },
      ],
      { user_id: "int64", event_timestamp: "timestamp" },
    );
    const out = join(root, "train.parquet");
    const res = await fs(
      repo,
      "get-historical-features",
      "--entity-df",
      entities,
      "--features",
      "user_stats:clicks_7d",
      "--output",
      out,
    );
    expect(res.stderr).toBe("");
    expect(res.stdout).toMatch(/wrote .*train\.parquet \(user_id, event_timestamp, clicks_7d\)/);
    expect(existsSync(out)).toBe(true);
  });

  it("names what is wrong in bad input, with exit code 1 and no stack trace", async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ["get-online-features", "-f", "user_stats:nope", "-e", "user_id=1"],
        /feature view "user_stats" has no feature "nope"/,
      ],
      [
        ["get-online-features", "-f", "user_stats:clicks_7d", "-e", "user_id=abc"],
        /join key "user_id": "abc" is not a plain integer \(int64/,
      ],
      [["get-online-features", "-f", "user_stats:clicks_7d", "-e", "user_id"], /expected KEY=VALUE/],
      [["materialize", "yesterday", "now"], /start: "yesterday" is not a timestamp: expected an ISO-8601 date or time/],
      [["materialize", "2024-01-02", "2024-01-01"], /start .* is after end/],
      [["materialize", "2024-01-01", "now", "--views", "nope"], /feature view "nope" is not in the registry/],
      [["feature-views", "describe", "nope"], /feature view "nope" is not in the registry/],
    ];
    for (const [args, message] of cases) {
      const res = await fs(repo, ...args);
      expect(res.code, args.join(" ")).toBe(1);
      expect(res.stderr, args.join(" ")).toMatch(message);
      expect(res.stderr).not.toMatch(/\n\s+at /);
    }
    expect((await fs(root, "apply")).stderr).toMatch(/feature_store\.yaml not found/);
    expect((await fs(root, "init", "shop")).stderr).toMatch(/exists and is not empty/);
    writeFileSync(
      join(repo, "broken.ts"),
      `import { Entity } from "fstore";\nexport const e = new Entity({ name: "bad name" });\n`,
    );
    const broken = await fs(repo, "apply");
    expect(broken.stderr).toMatch(/broken\.ts: Entity name "bad name" must be an identifier/);
  });

  it("tears down", async () => {
    expect((await fs(repo, "teardown")).code).toBe(0);
    expect((await fs(repo, "feature-views", "list")).stdout).toMatch(/\(none\)/);
  });
});
