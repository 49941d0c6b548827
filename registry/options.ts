// Options that fstore does not know are refused, never dropped: a misspelt `tll: "7d"` or `onlne_store:`
// would otherwise apply as if it were not there.

import { ValidationError } from "../common/errors.js";

/**
 * The accepted name closest to `word` when it is a likely misspelling (at most 2 edits away, or a shortening),
 * else undefined.
 */
export function closest(word: string, accepted: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const a of accepted) {
    const d = editDistance(word.toLowerCase(), a.toLowerCase());
    if (d < bestDistance) {
      best = a;
      bestDistance = d;
    }
  }
  if (best === undefined && word.length >= 3)
    best = accepted.find((a) => a.toLowerCase().startsWith(word.toLowerCase()) || word.toLowerCase().startsWith(a));
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** A name quoted for an error line, cut short when long (common/errors.ts quoteValue will replace this). */
export function quoteName(name: string): string {
  return JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name);
}

/** The first key of `obj` not in `accepted`, or undefined when all are known. */
export function unknownKey(obj: object, accepted: readonly string[]): string | undefined {
  return Object.keys(obj).find((k) => !accepted.includes(k));
}

/** "(did you mean "x"? accepted: a, b, c)" for an unknown name. */
export function acceptedHint(name: string, accepted: readonly string[], prefix = ""): string {
  const near = closest(name, accepted);
  const list = accepted.map((a) => prefix + a).join(", ");
  return near ? `(did you mean "${prefix}${near}"? accepted: ${list})` : `(accepted: ${list})`;
}

/**
 * Refuses options of a definition that fstore does not know, naming the object, the option and the accepted
 * ones. `opts` must be an object; each definition class lists its options in one array, so adding one is a
 * one-word change.
 */
export function checkOptions(kind: string, name: unknown, opts: unknown, accepted: readonly string[]): void {
  const what = typeof name === "string" && name ? `${kind} "${name}"` : kind;
  if (typeof opts !== "object" || opts === null || Array.isArray(opts))
    throw new ValidationError(`${what}: expected an object of options (${accepted.join(", ")})`);
  const bad = unknownKey(opts, accepted);
  if (bad !== undefined)
    throw new ValidationError(`${what}: unknown option ${quoteName(bad)} ${acceptedHint(bad, accepted)}`);
}
