// takeTurn: batch work inside a serving process yields the event loop one step at a time.
import { describe, expect, it } from "vitest";
import { takeTurn } from "../common/turns.js";
import { turnCounter } from "./repo_fixture.js";

describe("takeTurn", () => {
  it("releases one waiter per turn of the event loop, in order, so sockets are polled between steps", async () => {
    const counter = turnCounter();
    // 25 streams asking at once, as a merge of 25 views does
    const seen: number[] = [];
    const order: number[] = [];
    try {
      await Promise.all(
        Array.from({ length: 25 }, (_, i) =>
          takeTurn().then(() => {
            seen.push(counter.turns());
            order.push(i);
          }),
        ),
      );
    } finally {
      counter.stop();
    }
    expect(order).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(seen.slice(1).every((t, i) => t > seen[i])).toBe(true);
    // and a waiter after the queue has drained is released too
    await expect(takeTurn()).resolves.toBeUndefined();
  });
});
