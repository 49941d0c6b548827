// quoteValue: user-supplied values in errors and logs stay short, whatever their size or depth.
import { describe, expect, it } from "vitest";
import { quoteValue } from "../common/errors.js";

describe("quoteValue", () => {
  it("quotes small values as JSON", () => {
    expect(quoteValue("abc")).toBe('"abc"');
    expect(quoteValue(5)).toBe("5");
    expect(quoteValue(null)).toBe("null");
    expect(quoteValue({ a: [1, "x"] })).toBe('{"a":[1,"x"]}');
  });

  it("cuts a long string to a prefix and says how long it was", () => {
    const q = quoteValue("x".repeat(15_000_000));
    expect(q.length).toBeLessThan(120);
    expect(q).toMatch(/^"x{80}"… \(15000000 chars\)$/);
    expect(quoteValue("y".repeat(100), 10)).toMatch(/^"y{10}"… \(100 chars\)$/);
  });

  it("bounds a large array or object", () => {
    expect(quoteValue(Array.from({ length: 1_000_000 }, (_, i) => i)).length).toBeLessThanOrEqual(81);
    const wide: Record<string, string> = {};
    for (let i = 0; i < 100_000; i++) wide[`k${i}`] = "v".repeat(1000);
    expect(quoteValue(wide).length).toBeLessThanOrEqual(81);
  });

  it("bounds a deeply nested value without overflowing the stack", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const q = quoteValue(deep);
    expect(q.length).toBeLessThanOrEqual(81);
    expect(q.startsWith("[[[[")).toBe(true);
  });
});
