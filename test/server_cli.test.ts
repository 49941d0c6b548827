// The real `fs serve` process: serves a repo on a free port, logs JSON lines, and on SIGTERM finishes the
// request in flight, closes the stores and exits 0.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SERVER_NODE_FLAGS } from "../server/defaults.js";
import { NOW, type TestRepo, createTestRepo, get, post } from "./server_fixture.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Calls `fn` with each JSON log line the child writes to stdout. */
function onJsonLines(child: ChildProcess, fn: (line: Record<string, unknown>) => void): void {
  let buf = "";
  child.stdout!.on("data", (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      fn(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
}

describe("fs serve (CLI process)", () => {
  let repo: TestRepo;
  let child: ChildProcess;
  let url = "";
  const lines: Array<Record<string, unknown>> = [];
  let exited: Promise<number | null>;

  beforeAll(async () => {
    // `npm test` builds dist/ first; build here when this file runs alone on a fresh checkout
    if (!existsSync(join(ROOT, "dist/cli/commands/serve.js"))) {
      try {
        execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: ROOT, stdio: "ignore" });
      } catch {
        // type errors elsewhere still emit JavaScript
      }
    }
    repo = await createTestRepo("sqlite");
    child = spawn(
      process.execPath,
      [join(ROOT, "bin/fs.js"), "serve", "--repo", repo.dir, "--port", "0", "--log-level", "info"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fs serve did not start in 30 s; stderr: ${stderr}`)), 30_000);
      onJsonLines(child, (line) => {
        lines.push(line);
        if (line.msg === "feature server listening") {
          clearTimeout(timer);
          resolve(line.url as string);
        }
      });
      child.once("exit", (code) => reject(new Error(`fs serve exited with ${code}; stderr: ${stderr}`)));
    });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await repo?.cleanup();
  });

  it("runs the server in a worker process started with SERVER_NODE_FLAGS", () => {
    const listening = lines.find((l) => l.msg === "feature server listening")!;
    expect(listening.pid).not.toBe(child.pid);
    if (!existsSync("/proc")) return;
    const argv = readFileSync(`/proc/${listening.pid as number}/cmdline`, "utf8").split("\0");
    for (const flag of SERVER_NODE_FLAGS) expect(argv).toContain(flag);
  });

  it("serves health, materialize and online reads", async () => {
    expect((await get(`${url}/health`)).status).toBe(200);
    const m = await post(`${url}/materialize`, {
      start_ts: new Date(NOW - 30 * 86400_000).toISOString(),
      end_ts: new Date(NOW).toISOString(),
    });
    expect(m.status, m.text).toBe(200);
    const r = await post(`${url}/get-online-features`, {
      features: ["user_features:age"],
      entities: { user_id: [1, 3] },
    });
    expect(r.status).toBe(200);
    expect((r.json.results as Array<{ values: unknown[]; statuses: string[] }>)[1]).toMatchObject({
      values: [31, null],
      statuses: ["PRESENT", "NOT_FOUND"],
    });
  });

  it("on SIGTERM finishes the request in flight and exits 0", async () => {
    const body = JSON.stringify({ features: ["user_features:age"], entities: { user_id: [1] } });
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        `${url}/get-online-features`,
        { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.write(body.slice(0, 10));
      // the rest of the body arrives after SIGTERM
      setTimeout(() => req.end(body.slice(10)), 500);
    });
    await new Promise((r) => setTimeout(r, 150));
    child.kill("SIGTERM");
    const r = await answer;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).results[1].values).toEqual([31]);
    expect(await exited).toBe(0);
    const msgs = lines.map((l) => l.msg);
    expect(msgs).toContain("shutting down");
    expect(msgs[msgs.length - 1]).toBe("feature server stopped");
    const reqLine = lines.find((l) => l.msg === "request" && l.path === "/get-online-features");
    expect(reqLine).toMatchObject({ level: "info", method: "POST", status: 200 });
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });
});

describe("fs serve and Ctrl-C", () => {
  it("finishes the request in flight when SIGINT reaches the whole process group (primary and worker)", async () => {
    const repo = await createTestRepo("sqlite");
    // a process group of its own, as a terminal's foreground job: Ctrl-C signals every process in it
    const child = spawn(process.execPath, [join(ROOT, "bin/fs.js"), "serve", "--repo", repo.dir, "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    try {
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("fs serve did not start in 30 s")), 30_000);
        onJsonLines(child, (line) => {
          if (line.msg === "feature server listening") {
            clearTimeout(timer);
            resolve(line.url as string);
          }
        });
      });
      const body = JSON.stringify({ features: ["user_features:age"], entities: { user_id: [1] } });
      const answer = new Promise<number>((resolve, reject) => {
        const req = request(
          `${url}/get-online-features`,
          {
            method: "POST",
            headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.write(body.slice(0, 10));
        setTimeout(() => req.end(body.slice(10)), 500);
      });
      await new Promise((r) => setTimeout(r, 150));
      process.kill(-child.pid!, "SIGINT");
      expect(await answer).toBe(200);
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, "SIGKILL");
      await repo.cleanup();
    }
  });
});

describe("fs serve --workers 2 (cluster)", () => {
  it("serves from two processes on one port, and SIGTERM stops them all with exit 0", async () => {
    const repo = await createTestRepo("sqlite");
    const child = spawn(
      process.execPath,
      [join(ROOT, "bin/fs.js"), "serve", "--repo", repo.dir, "--port", "0", "--workers", "2"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      const lines: Array<Record<string, unknown>> = [];
      const listening = await new Promise<string[]>((resolve, reject) => {
        const urls: string[] = [];
        const timer = setTimeout(() => reject(new Error("two workers did not start in 30 s")), 30_000);
        onJsonLines(child, (line) => {
          lines.push(line);
          if (line.msg === "feature server listening") urls.push(line.url as string);
          if (urls.length === 2) {
            clearTimeout(timer);
            resolve(urls);
          }
        });
      });
      // listen(0) in a cluster: every worker gets the same port
      expect(listening[0]).toBe(listening[1]);
      const url = listening[0];
      const m = await post(`${url}/materialize`, {
        start_ts: new Date(NOW - 30 * 86400_000).toISOString(),
        end_ts: new Date(NOW).toISOString(),
      });
      expect(m.status, m.text).toBe(200);
      for (let i = 0; i < 6; i++) {
        const r = await post(`${url}/get-online-features`, {
          features: ["user_features:age"],
          entities: { user_id: [1] },
        });
        expect((r.json.results as Array<{ values: unknown[] }>)[1].values).toEqual([31]);
      }
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(lines.filter((l) => l.msg === "feature server stopped")).toHaveLength(2);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await repo.cleanup();
    }
  });
});
