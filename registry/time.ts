import { ValidationError } from "./errors.js";

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** ttl as a number of seconds or "90s" | "15m" | "12h" | "7d" | "2w"; 0 means no limit. */
export function parseTtl(ttl: number | string, what: string): number {
  if (typeof ttl === "number") {
    if (!Number.isFinite(ttl) || ttl < 0) throw new ValidationError(`${what}: ttl must be >= 0 seconds, got ${ttl}`);
    return ttl;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/.exec(ttl);
  if (!m) throw new ValidationError(`${what}: ttl "${ttl}" is not a number of seconds or a duration like "90s", "15m", "12h", "7d"`);
  return Number(m[1]) * UNIT_SECONDS[m[2]];
}

/**
 * A timestamp as ms since the epoch, UTC. ISO strings without a zone are read as UTC;
 * "now" is the current time; numbers are ms since the epoch.
 */
export function toEpochMs(t: Date | string | number, what = "timestamp"): number {
  if (t instanceof Date) {
    const ms = t.getTime();
    if (Number.isNaN(ms)) throw new ValidationError(`${what}: invalid date`);
    return ms;
  }
  if (typeof t === "number") {
    if (!Number.isFinite(t)) throw new ValidationError(`${what}: ${t} is not a finite time`);
    return t;
  }
  const s = t.trim();
  if (s.toLowerCase() === "now") return Date.now();
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  // date-only or date-time without a zone: UTC
  const hasZone = /(?:[zZ]|[+-]\d\d:?\d\d)$/.test(s);
  const iso = /^\d{4}-\d\d-\d\d$/.test(s) ? `${s}T00:00:00Z` : hasZone ? s : `${s.replace(" ", "T")}Z`;
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new ValidationError(`${what}: "${t}" is not an ISO-8601 timestamp (e.g. 2024-01-31T12:00:00, read as UTC)`);
  return ms;
}

export function isoUtc(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}
