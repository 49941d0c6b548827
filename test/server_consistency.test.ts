// Concurrent pushes and reads of one entity: no read returns a value older than one already returned,
// nor older than a push that completed before the read was sent. On SQLite and on Redis.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FeatureServerClient } from "../server/client.js";
import { type FeatureServer, startFeatureServer } from "../server/server.js";
import { NOW, type OnlineKind, type TestRepo, createTestRepo } from "./server_fixture.js";

const PUSHES = 60;
const READERS = 4;

describe.each<OnlineKind>(["sqlite", "redis"])("concurrent push and read on %s", (kind) => {
  let repo: TestRepo;
  let server: FeatureServer;
  let client: FeatureServerClient;

  beforeAll(async () => {
    repo = await createTestRepo(kind);
    server = await startFeatureServer({ repoPath: repo.dir, port: 0, logLevel: "silent" });
    client = new FeatureServerClient(server.url);
  });
  afterAll(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it("reads never go back in time", async () => {
    // value k is pushed with event time base + k s; pushes run in two interleaved writers, so they also
    // arrive out of order (an older one after a newer one must not win)
    const base = NOW - 3600_000;
    let pushedDone = -1; // highest k whose push completed and every lower k too
    const done = new Set<number>();
    let maxSeen = -1; // highest value any completed read returned
    const violations: string[] = [];
    let reads = 0;
    let finished = false;

    const pushOne = async (k: number) => {
      await client.push({
        pushSourceName: "item_push",
        df: { item_id: ["hot"], price: [k], views: [k], event_timestamp: [new Date(base + k * 1000).toISOString()] },
      });
      done.add(k);
      while (done.has(pushedDone + 1)) pushedDone++;
    };
    const writer = async (parity: number) => {
      for (let k = parity; k < PUSHES; k += 2) await pushOne(k);
    };
    const reader = async () => {
      while (!finished) {
        const floor = Math.max(maxSeen, pushedDone);
        const o = await client.getOnlineFeaturesAsObject({
          features: ["item_stats:price", "item_stats:views"],
          entities: { item_id: ["hot"] },
        });
        reads++;
        const v = o.price[0] === null ? -1 : (o.price[0] as number);
        if (v < floor) violations.push(`read ${v} after ${floor} was already visible`);
        if (o.views[0] !== o.price[0])
          violations.push(`torn row: price ${String(o.price[0])}, views ${String(o.views[0])}`);
        maxSeen = Math.max(maxSeen, v);
      }
    };
    const readers = Array.from({ length: READERS }, reader);
    await Promise.all([writer(0), writer(1)]);
    finished = true;
    await Promise.all(readers);
    expect(violations).toEqual([]);
    expect(reads).toBeGreaterThan(PUSHES);
    // a stale push after the newest does not replace it
    await client.push({
      pushSourceName: "item_push",
      df: { item_id: ["hot"], price: [-5], views: [-5], event_timestamp: [new Date(base).toISOString()] },
    });
    const last = await client.getOnlineFeaturesAsObject({
      features: ["item_stats:price"],
      entities: { item_id: ["hot"] },
    });
    expect(last.price).toEqual([PUSHES - 1]);
  });
});
