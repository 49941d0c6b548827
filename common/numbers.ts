// Numbers typed as text (a command line's KEY=VALUE): only plain decimal forms are read, so "0x10", "1e1"
// or an integer past its type's range is refused rather than read as 16, 10 or a rounded neighbour.

import { ValidationError } from "./errors.js";

export type IntType = "int32" | "int64";

/** Each integer type's range, inclusive. */
export const INT_RANGES: Record<IntType, readonly [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
};

const INT_TEXT = /^[+-]?\d+$/;
const FLOAT_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function quoted(raw: string): string {
  return JSON.stringify(raw.length > 60 ? `${raw.slice(0, 60)}…` : raw);
}

/**
 * A plain decimal integer of `type`: a number when it is exact as one, else its decimal text (an int64
 * past 2^53, which a number would round).
 */
export function parseIntText(raw: string, type: IntType, what: string): number | string {
  const s = raw.trim();
  if (!INT_TEXT.test(s))
    throw new ValidationError(`${what}: ${quoted(raw)} is not a plain integer (${type}: digits with an optional sign)`);
  const big = BigInt(s);
  const [lo, hi] = INT_RANGES[type];
  if (big < lo || big > hi)
    throw new ValidationError(`${what}: ${quoted(raw)} is outside the ${type} range ${lo} to ${hi}`);
  const n = Number(big);
  return Number.isSafeInteger(n) ? n : big.toString();
}

/** A plain decimal number (exponent allowed, no hex, no Infinity or NaN). */
export function parseFloatText(raw: string, what: string): number {
  const s = raw.trim();
  const n = Number(s);
  if (!FLOAT_TEXT.test(s) || !Number.isFinite(n))
    throw new ValidationError(`${what}: ${quoted(raw)} is not a decimal number`);
  return n;
}

/** Whether a bigint-valued integer lies in `type`'s range. */
export function inIntRange(v: bigint, type: IntType): boolean {
  const [lo, hi] = INT_RANGES[type];
  return v >= lo && v <= hi;
}
