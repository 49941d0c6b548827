// takeTurn: batch work inside a serving process yields the event loop one step at a time.
import { describe, expect, it } from "vitest";
import { takeTurn } from "../stores/turns.js";

describe("takeTurn", () => {
  it("releases one waiter per turn of the event loop, in order, so sockets are polled between steps", async () => {
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    // 25 streams asking at once, as a merge of 25 views does
    const seen: number[] = [];
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        takeTurn().then(() => {
          seen.push(turns);
          order.push(i);
        }),
      ),
    );
    spinning = false;
    expect(order).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(seen.slice(1).every((t, i) => t > seen[i])).toBe(true);
    // and a waiter after the queue has drained is released too
    await expect(takeTurn()).resolves.toBeUndefined();
  });
});
