// StringListMemo: the request-shape memo of the facade and the feature server.
import { describe, expect, it } from "vitest";
import { StringListMemo } from "../common/list_memo.js";

describe("StringListMemo", () => {
  it("finds a value by an equal list, not by a different one, a different tag or a list with a non-string", () => {
    const memo = new StringListMemo<number>();
    const list = ["view_1:a", "view_1:b", "view_2:c"];
    memo.set(list, 0, 1);
    memo.set(list, 1, 2);
    expect(memo.get(["view_1:a", "view_1:b", "view_2:c"])).toBe(1);
    expect(memo.get(["view_1:a", "view_1:b", "view_2:c"], 1)).toBe(2);
    expect(memo.get(["view_1:a", "view_1:b", "view_2:d"])).toBeUndefined();
    expect(memo.get(["view_1:a", "view_1:b"])).toBeUndefined();
    expect(memo.get(["view_1:a", "view_1:b", 3])).toBeUndefined();
    // the memo holds a copy: changing the caller's array later does not change what it matches
    list[2] = "view_9:z";
    expect(memo.get(["view_1:a", "view_1:b", "view_2:c"])).toBe(1);
  });

  it("tells apart lists whose sampled characters collide", () => {
    const memo = new StringListMemo<string>();
    // same lengths, middle and last characters: the same hash, told apart by comparing the lists
    memo.set(["abcde"], 0, "first");
    memo.set(["xbcdx"], 0, "second");
    memo.set(["abcdx"], 0, "third");
    expect(memo.get(["abcde"])).toBe("first");
    expect(memo.get(["xbcdx"])).toBe("second");
    expect(memo.get(["abcdx"])).toBe("third");
    expect(memo.get(["zbcdx"])).toBeUndefined();
  });

  it("holds at most `limit` lists", () => {
    const memo = new StringListMemo<number>(2);
    memo.set(["a"], 0, 1);
    memo.set(["b"], 0, 2);
    memo.set(["c"], 0, 3);
    expect(memo.get(["c"])).toBe(3);
    expect(memo.get(["a"])).toBeUndefined();
  });
});
