// Applies that meet: two repos applied at once onto one registry, a registry locked by another process,
// and a repo copied elsewhere reading its own files.
import Database from "better-sqlite3";
import { execFile } from "node:child_process";
import { cpSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Registry } from "../registry/registry.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { FeatureStore } from "../stores/feature_store.js";
import { DEFINITIONS, T0, tempDir, writeRepo } from "./repo_fixture.js";

const FS = fileURLToPath(new URL("../bin/fs.js", import.meta.url));
const run = promisify(execFile);

/** The fixture's definitions plus one more view per name, all over the fixture's users file. */
function definitionsWith(extraViews: string[]): string {
  return (
    DEFINITIONS +
    extraViews
      .map(
        (name) => `
export const ${name} = new FeatureView({
  name: "${name}",
  entities: [user],
  schema: [new Field({ name: "age", dtype: "int64" })],
  source: new FileSource({ name: "${name}_src", path: "data/users.parquet", timestampField: "event_timestamp" }),
});
`,
      )
      .join("")
  );
}

/** Two repos, each with its own data and online store, sharing one registry file and project. */
async function twoRepos(root: string): Promise<{ a: string; b: string; registry: string }> {
  const registry = join(root, "shared", "registry.db");
  const online = (name: string) => `online_store:\n  type: sqlite\n  path: ${join(root, name, "data/online.db")}\n`;
  const a = join(root, "a");
  const b = join(root, "b");
  for (const [dir, name] of [
    [a, "a"],
    [b, "b"],
  ]) {
    await writeRepo(dir, "shared_project", online(name));
    writeFileSync(
      join(dir, "feature_store.yaml"),
      `project: shared_project\nregistry: ${registry}\n${online(name)}offline_store:\n  type: duckdb\n`,
    );
  }
  return { a, b, registry };
}

function viewNames(registry: string): string[] {
  const reg = Registry.open(registry);
  try {
    return reg
      .load("shared_project")
      .featureViews.map((v) => v.name)
      .sort();
  } finally {
    reg.close();
  }
}

describe("concurrent applies onto one registry", { timeout: 600_000 }, () => {
  let root: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir: root, cleanup } = tempDir("apply-race")));
  afterEach(() => cleanup());

  it("two stores applying at once leave exactly one repo's definitions; the other is told to re-run", async () => {
    const { a, b, registry } = await twoRepos(root);
    for (let round = 0; round < 3; round++) {
      writeFileSync(join(a, "features.ts"), definitionsWith([`a_view_${round}`]));
      writeFileSync(join(b, "features.ts"), definitionsWith([`b_view_${round}`]));
      const stores = [await FeatureStore.open(a), await FeatureStore.open(b)];
      const results = await Promise.allSettled(stores.map((s) => s.apply()));
      await Promise.all(stores.map((s) => s.close()));
      const base = ["item_features", "user_features"];
      const names = viewNames(registry);
      expect([[...base, `a_view_${round}`].sort(), [...base, `b_view_${round}`].sort()]).toContainEqual(names);
      expect(results.some((r) => r.status === "fulfilled")).toBe(true);
      for (const r of results)
        if (r.status === "rejected")
          expect(String(r.reason)).toMatch(
            /registry .*registry\.db: project "shared_project" changed during apply.*re-run/,
          );
    }
  });

  it.skipIf(!existsSync(join(FS, "../../dist/cli/commands.js")))(
    "two `fs apply` processes, 10 rounds: the registry equals one repo's definitions after each",
    async () => {
      const { a, b, registry } = await twoRepos(root);
      const apply = async (repo: string) => {
        try {
          await run(process.execPath, [FS, "apply", "--repo", repo], { env: { ...process.env, NO_COLOR: "1" } });
          return { code: 0, stderr: "" };
        } catch (e) {
          const err = e as { code?: number; stderr?: string };
          return { code: err.code ?? 1, stderr: err.stderr ?? "" };
        }
      };
      for (let round = 0; round < 10; round++) {
        writeFileSync(join(a, "features.ts"), definitionsWith([`a_view_${round}`, `a_more_${round}`]));
        writeFileSync(join(b, "features.ts"), definitionsWith([`b_view_${round}`]));
        const [ra, rb] = await Promise.all([apply(a), apply(b)]);
        const base = ["item_features", "user_features"];
        const names = viewNames(registry);
        expect([
          [...base, `a_more_${round}`, `a_view_${round}`].sort(),
          [...base, `b_view_${round}`].sort(),
        ]).toContainEqual(names);
        expect(ra.code === 0 || rb.code === 0).toBe(true);
        for (const r of [ra, rb]) {
          if (r.code !== 0) {
            expect(r.stderr.trim().split("\n")).toHaveLength(1);
            // the loser either saw the winner's commit, or (on a loaded machine) waited out the busy timeout
            expect(r.stderr).toMatch(/changed during apply.*re-run|registry .* is locked by another process/);
          }
        }
      }
    },
  );

  it("a registry locked beyond the busy timeout is a one-line error naming the file, with nothing applied", async () => {
    const { a, registry } = await twoRepos(root);
    const store = await FeatureStore.open(a);
    const holder = new Database(registry);
    try {
      holder.prepare("BEGIN IMMEDIATE").run();
      const started = Date.now();
      const err = await store.apply().then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toBe(
        `registry ${registry} is locked by another process (waited 5 s to apply); try again when it finishes`,
      );
      expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
      holder.prepare("ROLLBACK").run();
    } finally {
      holder.close();
      await store.close();
    }
    expect(viewNames(registry)).toEqual([]);
  });
});

describe("a copied repo", { timeout: 120_000 }, () => {
  let root: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir: root, cleanup } = tempDir("copied-repo")));
  afterEach(() => cleanup());

  it("reads its own files: the registry keeps source paths as written and resolves them per repo", async () => {
    const original = join(root, "original");
    await writeRepo(original, "copied");
    const store = await FeatureStore.open(original);
    await store.apply();
    await store.close();

    const copy = join(root, "copy");
    cpSync(original, copy, { recursive: true });
    await writeParquet(
      join(copy, "data/users.parquet"),
      [{ user_id: 1, event_timestamp: T0, created: T0, age: 77, city: "Copenhagen", seen: [7] }],
      {
        user_id: "int64",
        event_timestamp: "timestamp",
        created: "timestamp",
        age: "int64",
        city: "string",
        seen: "int64[]",
      },
    );
    const ages = async (repo: string) => {
      const s = await FeatureStore.open(repo);
      try {
        const job = await s.getHistoricalFeatures({
          entityDf: [{ user_id: 1, event_timestamp: new Date(T0) }],
          features: ["user_features:age"],
        });
        const rows = await job.toRows();
        await s.materialize("2023-12-01", "2024-01-02", { views: ["user_features"] });
        const online = await s.getOnlineFeatures({ features: ["user_features:city"], entityRows: [{ user_id: 1 }] });
        return [rows[0].age, online.toObject().city[0]];
      } finally {
        await s.close();
      }
    };
    expect(await ages(copy)).toEqual([77, "Copenhagen"]);
    expect(await ages(original)).toEqual([33, "Bergen"]);
    const reg = Registry.open(join(copy, "data/registry.db"));
    expect(reg.load("copied").featureViews.find((v) => v.name === "user_features")?.source).toMatchObject({
      path: "data/users.parquet",
    });
    reg.close();
  });
});
