// Definitions, repo loading, plan and apply against a real SQLite registry and real parquet sources.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Entity, FeatureService, FeatureView, Field, FileSource } from "../index.js";
import { ValidationError } from "../common/errors.js";
import { formatPlan } from "../registry/plan.js";
import { Registry } from "../registry/registry.js";
import { parseByteSize } from "../common/duckdb.js";
import { loadRepoConfig, parseRepoConfig } from "../registry/config.js";
import { isoUtc, parseTtl, toEpochMs } from "../common/time.js";
import { FeatureStore } from "../stores/feature_store.js";
import { DEFINITIONS, tempDir, writeRepo } from "./repo_fixture.js";

const user = new Entity({ name: "user", joinKeys: ["user_id"] });
const src = new FileSource({ path: "data/u.parquet", timestampField: "ts" });

describe("definitions", () => {
  it("validates on construction", () => {
    expect(() => new Field({ name: "x", dtype: "int128" as "int64" })).toThrow(
      /Field "x": dtype "int128" is not one of/,
    );
    expect(() => new Entity({ name: "e", joinKeys: ["a", "b"] })).toThrow(/exactly one column/);
    expect(
      () =>
        new FeatureView({
          name: "v",
          entities: [user],
          schema: [new Field({ name: "a", dtype: "int64" })],
          source: src,
          ttl: "7 days",
        }),
    ).toThrow(/FeatureView "v": ttl "7 days" is not a number of seconds/);
    expect(
      () =>
        new FeatureView({
          name: "v",
          entities: [user],
          schema: [new Field({ name: "a", dtype: "int64" })],
          source: src,
          ttl: -1,
        }),
    ).toThrow(/ttl must be >= 0/);
    expect(
      () =>
        new FeatureView({
          name: "v",
          entities: [user],
          schema: [new Field({ name: "a", dtype: "int64" }), new Field({ name: "a", dtype: "string" })],
          source: src,
        }),
    ).toThrow(/field "a" is defined twice/);
    expect(
      () =>
        new FeatureView({ name: "v", entities: [], schema: [new Field({ name: "a", dtype: "int64" })], source: src }),
    ).toThrow(/at least one Entity/);
    expect(() => new FeatureService({ name: "s", features: [] })).toThrow(/at least one/);
    const v = new FeatureView({
      name: "v",
      entities: [user],
      schema: [new Field({ name: "a", dtype: "int64" })],
      source: src,
    });
    expect(() => v.select(["b"])).toThrow(/no feature "b"/);
  });

  it("parses ttl and times as UTC", () => {
    expect(parseTtl("7d", "x")).toBe(604800);
    expect(parseTtl("90s", "x")).toBe(90);
    expect(parseTtl(0, "x")).toBe(0);
    expect(toEpochMs("2024-01-01T00:00:00")).toBe(Date.UTC(2024, 0, 1));
    expect(toEpochMs("2024-01-01")).toBe(Date.UTC(2024, 0, 1));
    expect(toEpochMs("2024-01-01T02:00:00+02:00")).toBe(Date.UTC(2024, 0, 1));
    expect(() => toEpochMs("yesterday")).toThrow(/"yesterday" is not a timestamp: expected an ISO-8601 date or time/);
  });
});

describe("isoUtc", () => {
  it("writes what Date#toISOString writes (whole seconds without .000), over the whole range", () => {
    const ref = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");
    const cases = [
      0, -1, 1, 999, 86_399_999, 951_782_400_000, 951_868_800_000, 1_709_164_800_000, -2_208_988_800_001,
      -62_167_219_200_000, 253_402_300_799_999, 253_402_300_800_000, -62_167_219_200_001, 1.5,
    ];
    let seed = 7;
    for (let i = 0; i < 20_000; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      cases.push(Math.round((seed / 2147483648 - 0.5) * 2 * 62_000_000_000_000));
    }
    for (const ms of cases) expect(isoUtc(ms)).toBe(ref(ms));
    expect(isoUtc(Date.parse("2024-02-29T23:59:59.5Z"))).toBe("2024-02-29T23:59:59.500Z");
  });
});

describe("plan and apply", () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(async () => {
    ({ dir, cleanup } = tempDir("registry"));
    await writeRepo(dir, "reg_test");
  });
  afterEach(() => cleanup());

  it("plans, applies idempotently, and removes objects that left the repo", async () => {
    const store = await FeatureStore.open(dir);
    try {
      const plan = await store.plan();
      expect(
        plan.entries
          .filter((e) => e.action === "create")
          .map((e) => `${e.kind}:${e.name}`)
          .sort(),
      ).toEqual([
        "data_source:item_push",
        "data_source:users_src",
        "entity:item",
        "entity:user",
        "feature_service:ranking",
        "feature_view:item_features",
        "feature_view:user_features",
      ]);
      await store.apply();
      expect(
        store
          .listFeatureViews()
          .map((v) => v.name)
          .sort(),
      ).toEqual(["item_features", "user_features"]);
      const uf = store.getFeatureView("user_features");
      expect(uf.ttlSeconds).toBe(2 * 86400);
      expect(uf.entityColumns).toEqual([{ name: "user_id", dtype: "int64" }]);
      expect(uf.source.type === "file" && uf.source.path).toBe(join(dir, "data/users.parquet"));
      const again = await store.apply();
      expect(again.entries).toEqual([]);
      expect(formatPlan(again)).toMatch(/No changes/);

      // drop the feature service and the item view from the repo
      const defs = DEFINITIONS.split("export const itemPush")[0];
      writeFileSync(join(dir, "features.ts"), defs);
      const removal = await store.apply();
      expect(removal.entries.map((e) => `${e.action} ${e.kind}:${e.name}`).sort()).toEqual([
        "delete data_source:item_push",
        "delete feature_service:ranking",
        "delete feature_view:item_features",
      ]);
      expect(store.listFeatureServices()).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it("an apply that fails leaves the registry as it was", async () => {
    const store = await FeatureStore.open(dir);
    try {
      await store.apply();
      const before = JSON.stringify(store.contents());
      const reg = Registry.open(store.config.registryPath);
      const version = reg.version("reg_test");
      // a new field that the parquet file lacks
      writeFileSync(
        join(dir, "features.ts"),
        DEFINITIONS.replace(
          `new Field({ name: "age", dtype: "int64" }),`,
          `new Field({ name: "age", dtype: "int64" }), new Field({ name: "income", dtype: "float64" }),`,
        ),
      );
      await expect(store.apply()).rejects.toThrow(/features\.ts: .*user_features.*"income"/);
      // a field of another type
      writeFileSync(
        join(dir, "features.ts"),
        DEFINITIONS.replace(`name: "city", dtype: "string"`, `name: "city", dtype: "int64"`),
      );
      await expect(store.apply()).rejects.toThrow(/features\.ts: .*user_features.*"city".*(VARCHAR|string).*int64/s);
      expect(reg.version("reg_test")).toBe(version);
      expect(JSON.stringify(store.contents())).toBe(before);
      reg.close();
    } finally {
      await store.close();
    }
  });

  it("names the file and object for bad definitions", async () => {
    const store = await FeatureStore.open(dir);
    try {
      writeFileSync(
        join(dir, "features.ts"),
        DEFINITIONS.replace(`export const item = new Entity`, `const item = new Entity`),
      );
      await expect(store.plan()).rejects.toThrow(
        /features\.ts: feature view "item_features" uses entity "item", which no file of the repo exports/,
      );
      writeFileSync(join(dir, "features.ts"), DEFINITIONS.replace(`ttl: "2d"`, `ttl: "2 days"`));
      await expect(store.plan()).rejects.toThrow(/features\.ts: FeatureView "user_features": ttl "2 days"/);
      writeFileSync(join(dir, "features.ts"), DEFINITIONS);
      writeFileSync(
        join(dir, "more.ts"),
        `import { Entity } from "fstore";\nexport const user2 = new Entity({ name: "user", joinKeys: ["uid"] });\n`,
      );
      await expect(store.plan()).rejects.toThrow(
        /more\.ts: duplicate entity name "user" \(also defined in features\.ts\)/,
      );
      writeFileSync(join(dir, "more.ts"), `export const x = ;\n`);
      await expect(store.plan()).rejects.toThrow(/more\.ts: /);
      writeFileSync(join(dir, "more.ts"), "");
      writeFileSync(
        join(dir, "features.ts"),
        DEFINITIONS.replace(`path: "data/users.parquet"`, `path: "data/nope.parquet"`),
      );
      await expect(store.plan()).rejects.toThrow(/features\.ts: .*nope\.parquet/);
    } finally {
      await store.close();
    }
  });

  it("rejects a bad feature_store.yaml with the key at fault", async () => {
    const yamlPath = join(dir, "feature_store.yaml");
    writeFileSync(yamlPath, readFileSync(yamlPath, "utf8").replace("type: sqlite", "type: cassandra"));
    await expect(FeatureStore.open(dir)).rejects.toThrow(/online_store\.type "cassandra" is not supported/);
    writeFileSync(yamlPath, "registry: data/registry.db\n");
    await expect(FeatureStore.open(dir)).rejects.toThrow(/"project" is required/);
    await expect(FeatureStore.open(join(dir, "missing"))).rejects.toThrow(ValidationError);
  });
});

describe("feature_store.yaml offline_store", () => {
  const parse = (offline: unknown) =>
    parseRepoConfig({ project: "p", offline_store: offline }, "/repo", "feature_store.yaml");

  it("takes DuckDB's memory_limit, temp_directory (relative to the repo) and threads", () => {
    expect(
      parse({ type: "duckdb", memory_limit: "4GB", temp_directory: "data/spill", threads: 2 }).offlineStore,
    ).toEqual({
      type: "duckdb",
      memoryLimit: "4GB",
      memoryLimitBytes: 4e9,
      tempDirectory: "/repo/data/spill",
      threads: 2,
    });
    expect(parse(undefined).offlineStore).toEqual({ type: "duckdb" });
    expect([parseByteSize("512MB"), parseByteSize("2 GiB"), parseByteSize("1.5gb"), parseByteSize("64MiB")]).toEqual([
      512e6,
      2 ** 31,
      1.5e9,
      2 ** 26,
    ]);
    expect([parseByteSize("lots"), parseByteSize("4"), parseByteSize("4 GX")]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });

  it("a serving process's default DuckDB threads apply only where feature_store.yaml sets none", async () => {
    const { dir, cleanup } = tempDir("offline_threads");
    try {
      await writeRepo(dir, "threads_test");
      const byDefault = await FeatureStore.open(dir, { defaultOfflineThreads: 1 });
      expect(byDefault.config.offlineStore.threads).toBe(1);
      await byDefault.close();
      const yamlPath = join(dir, "feature_store.yaml");
      writeFileSync(
        yamlPath,
        readFileSync(yamlPath, "utf8").replace(
          "offline_store:\n  type: duckdb\n",
          "offline_store:\n  type: duckdb\n  threads: 3\n",
        ),
      );
      const set = await FeatureStore.open(dir, { defaultOfflineThreads: 1 });
      expect(set.config.offlineStore.threads).toBe(3);
      await set.close();
    } finally {
      cleanup();
    }
  });

  it("rejects bad settings with the key at fault", () => {
    expect(() => parse({ type: "duckdb", memory_limit: "lots" })).toThrow(
      /offline_store\.memory_limit "lots" is not a size: expected e\.g\. "512MB"/,
    );
    expect(() => parse({ type: "duckdb", memory_limit: "10MB" })).toThrow(
      /offline_store\.memory_limit "10MB" is below 64MB/,
    );
    expect(() => parse({ type: "duckdb", threads: 0 })).toThrow(
      /offline_store\.threads must be a whole number >= 1, got 0/,
    );
    expect(() => parse({ type: "duckdb", threads: "many" })).toThrow(/offline_store\.threads/);
    expect(() => parse("duckdb")).toThrow(/"offline_store" must be a mapping/);
  });
});

describe("feature_store.yaml provider and entity_key_serialization_version", () => {
  const parse = (keys: Record<string, unknown>) =>
    parseRepoConfig({ project: "p", ...keys }, "/repo", "feature_store.yaml");

  it("accepts Feast's defaults, given or not", () => {
    for (const keys of [
      {},
      { provider: "local", entity_key_serialization_version: 3 },
      { provider: null, entity_key_serialization_version: "3" },
    ]) {
      const config = parse(keys);
      expect([config.provider, config.entityKeySerializationVersion]).toEqual(["local", 3]);
    }
  });

  it("refuses any other value, naming the file, the key, the value and what is accepted", () => {
    expect(() => parse({ provider: "gcp" })).toThrow(
      new ValidationError(
        `feature_store.yaml: provider "gcp" is not supported: expected "local" (the default; fstore's stores are the ones feature_store.yaml names, as with Feast's local provider)`,
      ),
    );
    expect(() => parse({ entity_key_serialization_version: 2 })).toThrow(
      new ValidationError(
        "feature_store.yaml: entity_key_serialization_version 2 is not supported: expected 3 (the default; fstore's online keys have a single format of their own)",
      ),
    );
    expect(() => parse({ provider: 1 })).toThrow(/provider 1 is not supported: expected "local"/);
    expect(() => parse({ entity_key_serialization_version: "three" })).toThrow(
      /entity_key_serialization_version "three" is not supported: expected 3/,
    );
    expect(() => parse({ entity_key_serialization_version: 3.5 })).toThrow(/entity_key_serialization_version 3\.5/);
  });

  it("names the repo's own feature_store.yaml when loading it", () => {
    const { dir, cleanup } = tempDir("yaml_keys");
    try {
      const file = join(dir, "feature_store.yaml");
      writeFileSync(file, "project: p\nprovider: aws\n");
      expect(() => loadRepoConfig(dir)).toThrow(`${file}: provider "aws" is not supported: expected "local"`);
      writeFileSync(file, "project: p\nprovider: local\nentity_key_serialization_version: 2\n");
      expect(() => loadRepoConfig(dir)).toThrow(`${file}: entity_key_serialization_version 2 is not supported`);
      writeFileSync(file, "project: p\nprovider: local\nentity_key_serialization_version: 3\n");
      expect(loadRepoConfig(dir).provider).toBe("local");
    } finally {
      cleanup();
    }
  });
});
