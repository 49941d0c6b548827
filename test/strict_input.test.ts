// Input that used to be quietly misread is refused with one line naming the file, object, key or value,
// and nothing is applied or written.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Entity, FeatureService, FeatureView, Field, FileSource, PushSource } from "../index.js";
import { ValidationError } from "../common/errors.js";
import { loadRepoConfig } from "../registry/config.js";
import { Registry } from "../registry/registry.js";
import { writeParquet } from "../stores/offline/parquet.js";
import { FeatureStore } from "../stores/feature_store.js";
import { DEFINITIONS, T0, tempDir, writeRepo } from "./repo_fixture.js";

function oneLine(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    const msg = (e as Error).message;
    expect(msg.split("\n")).toHaveLength(1);
    return msg;
  }
  throw new Error("expected an error");
}

describe("feature_store.yaml is strict", () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir("strict-yaml"));
    file = join(dir, "feature_store.yaml");
  });
  afterEach(() => cleanup());
  const load = (text: string) => {
    writeFileSync(file, text);
    return oneLine(() => loadRepoConfig(dir));
  };

  it("refuses unknown and misspelt keys, naming the file, the key and the accepted ones", () => {
    expect(load("project: p\nonlne_store:\n  type: redis\n")).toBe(
      `${file}: unknown key "onlne_store" (did you mean "online_store"? accepted: project, registry, provider, online_store, offline_store, entity_key_serialization_version, registry_ttl_sec)`,
    );
    expect(load("project: p\nonline_store:\n  type: sqlite\n  pth: data/x.db\n")).toBe(
      `${file}: unknown key "online_store.pth" (online_store type sqlite) (did you mean "online_store.path"? accepted: online_store.type, online_store.path, online_store.vector_index)`,
    );
    expect(load("project: p\nonline_store:\n  type: redis\n  ttl: 5\n")).toMatch(
      /unknown key "online_store\.ttl" \(online_store type redis\) \(accepted: online_store\.type, online_store\.connection_string, online_store\.key_ttl_seconds, online_store\.key_prefix/,
    );
    expect(load("project: p\noffline_store:\n  type: duckdb\n  memory: 4GB\n")).toMatch(
      /unknown key "offline_store\.memory" \(did you mean "offline_store\.memory_limit"\? accepted: offline_store\.type, offline_store\.memory_limit/,
    );
    expect(load("project: p\nregistry:\n  path: r.db\n  cache_ttl: 5\n")).toMatch(
      /unknown key "registry\.cache_ttl" \(did you mean "registry\.cache_ttl_seconds"\?/,
    );
  });

  it("refuses wrongly typed values", () => {
    expect(load("project: p\nonline_store:\n  type: redis\n  key_prefix: 5\n")).toBe(
      `${file}: online_store.key_prefix must be a non-empty string, got 5 (quote it in YAML: key_prefix: "5")`,
    );
    expect(load("project: p\nentity_key_serialization_version: x\n")).toMatch(
      /entity_key_serialization_version "x" is not supported: expected 3/,
    );
    expect(load("project: p\nonline_store:\n  - type: sqlite\n")).toBe(
      `${file}: "online_store" must be a mapping (type: sqlite with path, or type: redis), got a list`,
    );
    expect(load("project: p\noffline_store: [duckdb]\n")).toMatch(/"offline_store" must be a mapping .*got a list/);
    expect(load("project: p\nregistry_ttl_sec: soon\n")).toMatch(
      /registry_ttl_sec must be a number of seconds >= 0, got "soon"/,
    );
    expect(load("project: p\nonline_store:\n  type: redis\n  key_ttl_seconds: true\n")).toMatch(
      /online_store\.key_ttl_seconds must be a number of seconds >= 0, got true/,
    );
    expect(load("project: p\noffline_store:\n  type: duckdb\n  threads: '2'\n")).toMatch(/offline_store\.threads/);
  });
});

describe("definitions refuse unknown options", () => {
  const user = new Entity({ name: "user", joinKeys: ["user_id"] });
  const src = new FileSource({ path: "data/u.parquet", timestampField: "ts" });
  const age = new Field({ name: "age", dtype: "int64" });

  it("names the object, the option and the accepted ones", () => {
    const view = (extra: Record<string, unknown>) => () =>
      new FeatureView({ name: "v", entities: [user], schema: [age], source: src, ...extra });
    expect(oneLine(view({ tll: "7d" }))).toBe(
      'FeatureView "v": unknown option "tll" (did you mean "ttl"? accepted: name, entities, schema, source, ttl, online, tags, description, owner)',
    );
    expect(oneLine(view({ online: "false" }))).toBe('FeatureView "v": online must be true or false, got "false"');
    const opts = (o: object) => o as never;
    expect(oneLine(() => new Field(opts({ name: "f", dtype: "int64", default: 0 })))).toBe(
      'Field "f": unknown option "default" (accepted: name, dtype, description, tags, vectorIndex, vectorLength, vectorSearchMetric)',
    );
    expect(oneLine(() => new Entity(opts({ name: "e", joinKey: ["e_id"] })))).toMatch(
      /^Entity "e": unknown option "joinKey" \(did you mean "joinKeys"\? accepted: name, joinKeys, valueType/,
    );
    expect(
      oneLine(() => new FileSource(opts({ path: "x.parquet", timestampField: "ts", createdTimestamp: "c" }))),
    ).toMatch(
      /^FileSource "x\.parquet": unknown option "createdTimestamp" \(did you mean "createdTimestampColumn"\? accepted: name, path, timestampField, createdTimestampColumn/,
    );
    expect(oneLine(() => new PushSource(opts({ name: "p", batchSource: src, schema: [] })))).toMatch(
      /^PushSource "p": unknown option "schema" \(accepted: name, batchSource, description, tags\)/,
    );
    expect(oneLine(() => new FeatureService(opts({ name: "s", features: [], featureViews: [] })))).toMatch(
      /^FeatureService "s": unknown option "featureViews" \(accepted: name, features, tags, description, owner\)/,
    );
    expect(oneLine(() => new Entity(opts({ name: "e", description: 5 })))).toBe(
      'Entity "e": description must be a string, got number',
    );
  });
});

describe("apply checks the source's timestamp columns", { timeout: 120_000 }, () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(async () => {
    ({ dir, cleanup } = tempDir("strict-ts"));
    await writeRepo(dir, "strict_ts");
  });
  afterEach(() => cleanup());

  it("refuses a text or numeric timestamp or created column at apply, applying nothing", async () => {
    const users = join(dir, "data/users.parquet");
    const types = { user_id: "int64", age: "int64", city: "string", seen: "int64[]" } as const;
    const row = { user_id: 1, age: 30, city: "Oslo", seen: [1] };
    const store = await FeatureStore.open(dir);
    try {
      await writeParquet(users, [{ ...row, event_timestamp: "yesterday", created: T0 }], {
        ...types,
        event_timestamp: "string",
        created: "timestamp",
      });
      await expect(store.apply()).rejects.toThrow(
        new ValidationError(
          `features.ts: feature view "user_features": timestamp column "event_timestamp" in ${users} is VARCHAR, not a timestamp: expected a TIMESTAMP or DATE column (write it as one, e.g. DuckDB's CAST("event_timestamp" AS TIMESTAMP))`,
        ),
      );
      await writeParquet(users, [{ ...row, event_timestamp: T0, created: 1700000000 }], {
        ...types,
        event_timestamp: "timestamp",
        created: "int64",
      });
      await expect(store.apply()).rejects.toThrow(
        /created timestamp column "created" in .* is BIGINT, not a timestamp/,
      );
      expect(store.registry.load("strict_ts").featureViews).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe("a repo with an unknown option applies nothing", { timeout: 120_000 }, () => {
  it("names the file and the option", async () => {
    const { dir, cleanup } = tempDir("strict-repo");
    try {
      await writeRepo(dir, "strict_repo");
      writeFileSync(join(dir, "features.ts"), DEFINITIONS.replace('ttl: "2d"', 'tll: "2d"'));
      const store = await FeatureStore.open(dir);
      await expect(store.apply()).rejects.toThrow(/^features\.ts: FeatureView "user_features": unknown option "tll"/);
      await store.close();
      const reg = Registry.open(join(dir, "data/registry.db"));
      expect(reg.load("strict_repo").featureViews).toEqual([]);
      reg.close();
      expect(readFileSync(join(dir, "features.ts"), "utf8")).toContain("tll");
    } finally {
      cleanup();
    }
  });
});
