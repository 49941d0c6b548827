// Dates and entity ids that used to be quietly misread (2024-02-30 as March 1st, 2024 as 2,024 ms, 0x10 as 16)
// are refused with one line, on the command line, over HTTP and in the library, with nothing written.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateAliccp } from "../adapters/datasets/aliccp.js";
import { generateRees46 } from "../adapters/datasets/rees46.js";
import { ValidationError } from "../common/errors.js";
import { parseIntText } from "../common/numbers.js";
import { parseTimeText, toEpochMs } from "../common/time.js";
import { Registry } from "../registry/registry.js";
import { type FeatureServer, startFeatureServer } from "../server/server.js";
import { FeatureStore } from "../stores/feature_store.js";
import { tempDir, writeRepo } from "./repo_fixture.js";
import { NOW, type TestRepo, createTestRepo, post } from "./server_fixture.js";

const FS = fileURLToPath(new URL("../bin/fs.js", import.meta.url));
const run = promisify(execFile);

describe("time text", () => {
  it("reads ISO dates and times (UTC without a zone), now, and epoch time with a unit", () => {
    expect(parseTimeText("2024-02-29")).toBe(Date.UTC(2024, 1, 29));
    expect(parseTimeText("2024-01-31T12:00:00")).toBe(Date.UTC(2024, 0, 31, 12));
    expect(parseTimeText("2024-01-31 14:00:00.5+02:00")).toBe(Date.UTC(2024, 0, 31, 12, 0, 0, 500));
    expect(parseTimeText("2024-01-31T12:00-0130")).toBe(Date.UTC(2024, 0, 31, 13, 30));
    expect(parseTimeText("0001-01-01")).toBe(new Date("0001-01-01T00:00:00Z").getTime());
    expect(parseTimeText("1706702400s")).toBe(1706702400000);
    expect(parseTimeText("1706702400000ms")).toBe(1706702400000);
    expect(Math.abs(parseTimeText(" NOW ") - Date.now())).toBeLessThan(1000);
  });

  it("refuses impossible dates, bare numbers and times outside years 0000-9999, in one line", () => {
    const err = (s: string) => {
      try {
        parseTimeText(s, "start");
      } catch (e) {
        expect(e).toBeInstanceOf(ValidationError);
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(err("2024-02-30")).toBe('start: "2024-02-30" is not a date: February 2024 has 29 days');
    expect(err("2026-11-31")).toBe('start: "2026-11-31" is not a date: November 2026 has 30 days');
    expect(err("2023-02-29T00:00:00Z")).toMatch(/February 2023 has 28 days/);
    expect(err("2024-13-01")).toMatch(/no month 13/);
    expect(err("2024-01-01T24:00:00")).toMatch(/not a time of day/);
    expect(err("2024")).toMatch(/^start: "2024" is a bare number; write an ISO-8601 date or time .*"1706702400s"/);
    expect(err("-99999999999999999")).toMatch(/is a bare number/);
    expect(err("1e3")).toMatch(/is a bare number/);
    expect(err("-99999999999999999s")).toBe('start: "-99999999999999999s" is outside years 0000-9999');
    expect(err("last week")).toMatch(/"last week" is not a timestamp: expected an ISO-8601 date or time/);
    expect(() => toEpochMs(1e20, "end")).toThrow(/end: 100000000000000000000 ms since the epoch is outside years/);
  });
});

describe("dataset generators", () => {
  it("read their start and end with the same parser: impossible dates are refused", async () => {
    const { dir, cleanup } = tempDir("strict-datasets");
    try {
      await expect(generateAliccp(join(dir, "a"), { rows: 100, end: "2024-02-30" })).rejects.toThrow(
        'generateAliccp: end: "2024-02-30" is not a date: February 2024 has 29 days',
      );
      await expect(generateRees46(join(dir, "r.parquet"), { sessions: 10, start: "2026-11-31" })).rejects.toThrow(
        'generateRees46: start: "2026-11-31" is not a date: November 2026 has 30 days',
      );
    } finally {
      cleanup();
    }
  });
});

describe("integer text", () => {
  it("takes plain integers within range and refuses 0x10, 1e1 and overflow", () => {
    expect(parseIntText("42", "int64", "k")).toBe(42);
    expect(parseIntText("-9223372036854775808", "int64", "k")).toBe("-9223372036854775808");
    expect(parseIntText("9007199254740993", "int64", "k")).toBe("9007199254740993");
    expect(() => parseIntText("0x10", "int64", "k")).toThrow('k: "0x10" is not a plain integer');
    expect(() => parseIntText("1e1", "int64", "k")).toThrow('k: "1e1" is not a plain integer');
    expect(() => parseIntText("99999999999999999999", "int64", "k")).toThrow(
      'k: "99999999999999999999" is outside the int64 range -9223372036854775808 to 9223372036854775807',
    );
    expect(() => parseIntText("2147483648", "int32", "k")).toThrow(/outside the int32 range/);
  });
});

describe("library entity values", { timeout: 120_000 }, () => {
  it("an int64 join key refuses values out of range or not plain integers", async () => {
    const { dir, cleanup } = tempDir("strict-lib");
    try {
      await writeRepo(dir, "strict_lib");
      const store = await FeatureStore.open(dir);
      await store.apply();
      for (const bad of [1e20, "0x10", "1e1", 99999999999999999999n, 1.5])
        await expect(
          store.getOnlineFeatures({ features: ["user_features:age"], entityRows: [{ user_id: bad }] }),
        ).rejects.toThrow(/join key "user_id" value .* is not a valid int64 key/);
      const ok = await store.getOnlineFeatures({
        features: ["user_features:age"],
        entityRows: [{ user_id: "9223372036854775807" }],
      });
      expect(ok.toObject().age).toEqual([null]);
      await store.close();
    } finally {
      cleanup();
    }
  });
});

async function fs(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [FS, ...args], { env: { ...process.env, NO_COLOR: "1" } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? 1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

describe.skipIf(!existsSync(join(FS, "../../dist/cli/commands.js")))("the command line", { timeout: 300_000 }, () => {
  let dir: string;
  let cleanup: () => void;
  const intervals = () => {
    const reg = Registry.open(join(dir, "data/registry.db"));
    try {
      return reg.load("strict_cli").materializations;
    } finally {
      reg.close();
    }
  };
  beforeAll(async () => {
    ({ dir, cleanup } = tempDir("strict-cli"));
    await writeRepo(dir, "strict_cli");
    expect((await fs("apply", "--repo", dir)).code).toBe(0);
  });
  afterAll(() => cleanup());

  const refused = async (args: string[], message: RegExp) => {
    const r = await fs(...args, "--repo", dir);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  };

  it("materialize refuses impossible dates, bare numbers and far-out times in one line, writing nothing", async () => {
    await refused(["materialize", "2024-02-30", "now"], /start: "2024-02-30" is not a date: February 2024 has 29 days/);
    await refused(["materialize", "2023-12-01", "2026-11-31"], /end: "2026-11-31" is not a date: November 2026 has 30/);
    await refused(["materialize", "2024", "now"], /start: "2024" is a bare number/);
    await refused(["materialize", "-99999999999999999", "now"], /start: "-99999999999999999" is a bare number/);
    await refused(["materialize", "-99999999999999999s", "now"], /outside years 0000-9999/);
    await refused(["materialize-incremental", "2024"], /end: "2024" is a bare number/);
    expect(intervals()).toEqual([]);
    const help = await fs("materialize", "--help");
    expect(help.stdout.replace(/\s+/g, " ")).toMatch(/epoch time with its unit \("1706702400s", "1706702400000ms"\)/);
  });

  it("materialize-incremental refuses an end before a view's start", async () => {
    const ok = await fs("materialize", "2023-12-01", "9999-12-31T00:00:00", "--views", "user_features", "--repo", dir);
    expect(ok.code).toBe(0);
    const before = intervals();
    await refused(
      ["materialize-incremental", "now"],
      /materialize-incremental: end .* is before feature view "user_features"'s start 9999-12-31T00:00:00Z/,
    );
    expect(intervals()).toEqual(before);
  });

  it("get-online-features refuses int64 ids that are not plain integers in range", async () => {
    for (const [value, message] of [
      ["0x10", /join key "user_id": "0x10" is not a plain integer/],
      ["1e1", /join key "user_id": "1e1" is not a plain integer/],
      ["99999999999999999999", /"99999999999999999999" is outside the int64 range/],
    ] as const)
      await refused(["get-online-features", "-f", "user_features:age", "-e", `user_id=${value}`], message);
    const ok = await fs("get-online-features", "-f", "user_features:age", "-e", "user_id=1", "--repo", dir);
    expect(ok.code).toBe(0);
  });
});

describe("over HTTP", { timeout: 120_000 }, () => {
  let repo: TestRepo;
  let server: FeatureServer;
  const iso = (ms: number) => new Date(ms).toISOString();
  beforeAll(async () => {
    repo = await createTestRepo("sqlite");
    server = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent" });
  });
  afterAll(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it("times are refused as on the command line: impossible dates, bare numbers (text or JSON)", async () => {
    const m = (body: unknown) => post(`${server.url}/materialize`, body);
    for (const [body, message] of [
      [
        { start_ts: "2024-02-30", end_ts: iso(NOW) },
        /^start_ts: "2024-02-30" is not a date: February 2024 has 29 days$/,
      ],
      [{ start_ts: "2024", end_ts: iso(NOW) }, /^start_ts: "2024" is a bare number/],
      [
        { start_ts: 2024, end_ts: iso(NOW) },
        /^start_ts: expected string, got 2024 \(a time is an ISO-8601 date or time/,
      ],
      [{ start_ts: iso(NOW - 86400_000), end_ts: "2026-11-31T00:00:00Z" }, /November 2026 has 30 days/],
    ] as const) {
      const r = await m(body);
      expect(r.status).toBe(400);
      expect(String(r.json.error ?? r.json.detail)).toMatch(message);
    }
    const push = await post(`${server.url}/push`, {
      push_source_name: "item_push",
      df: { item_id: ["i1"], price: [1], views: [1], event_timestamp: ["2026-11-31T00:00:00Z"] },
    });
    expect(push.status).toBe(400);
    expect(String(push.json.error ?? push.json.detail)).toMatch(
      /df\.event_timestamp\[0\]: .*November 2026 has 30 days/,
    );
    const store = await FeatureStore.open(repo.dir);
    expect(store.contents().materializations).toEqual([]);
    await store.close();
  });

  it("int64 entity ids past what a JSON number holds exactly are refused", async () => {
    const r = await post(
      `${server.url}/get-online-features`,
      '{"features": ["user_features:age"], "entities": {"user_id": [99999999999999999999]}}',
    );
    expect(r.status).toBe(400);
    expect(String(r.json.error ?? r.json.detail)).toMatch(
      /entities\.user_id\[0\]: 100000000000000000000 is out of range: expected an integer from -9007199254740991 to 9007199254740991/,
    );
    const hex = await post(`${server.url}/get-online-features`, {
      features: ["user_features:age"],
      entities: { user_id: ["0x10"] },
    });
    expect(hex.status).toBe(400);
  });

  it("materialize-incremental with an end before a view's start is a 400", async () => {
    const later = await post(`${server.url}/materialize`, { start_ts: iso(NOW - 86400_000), end_ts: "9999-01-01" });
    expect(later.status).toBe(200);
    const r = await post(`${server.url}/materialize-incremental`, { end_ts: iso(NOW) });
    expect(r.status).toBe(400);
    expect(String(r.json.error ?? r.json.detail)).toMatch(
      /end .* is before feature view ".*"'s start 9999-01-01T00:00:00Z/,
    );
  });
});
