import { ValidationError } from "./errors.js";

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** ttl as a number of seconds or "90s" | "15m" | "12h" | "7d" | "2w"; 0 means no limit. */
export function parseTtl(ttl: number | string, what: string): number {
  if (typeof ttl === "number") {
    if (!Number.isFinite(ttl) || ttl < 0) throw new ValidationError(`${what}: ttl must be >= 0 seconds, got ${ttl}`);
    return ttl;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/.exec(ttl);
  if (!m)
    throw new ValidationError(
      `${what}: ttl "${ttl}" is not a number of seconds or a duration like "90s", "15m", "12h", "7d"`,
    );
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
  if (Number.isNaN(ms))
    throw new ValidationError(`${what}: "${t}" is not an ISO-8601 timestamp (e.g. 2024-01-31T12:00:00, read as UTC)`);
  return ms;
}

/** Whether `ms` is a whole millisecond in years 0000-9999, the range `utcFields` handles. */
export function inCivilRange(ms: number): boolean {
  return ms >= -62167219200000 && ms < 253402300800000 && Number.isInteger(ms);
}

/**
 * The UTC calendar fields of `ms` (in civil range) written into `out`: year, month, day, hour, minute, second,
 * millisecond. Integer arithmetic (Hinnant's civil-from-days) rather than a Date: online answers format one time
 * per (view, entity row), and the caller's `out` is reused, so nothing is allocated.
 */
export function utcFields(ms: number, out: Int32Array): void {
  const days = Math.floor(ms / 86400000);
  let rest = ms - days * 86400000;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const m = mp < 10 ? mp + 3 : mp - 9;
  out[0] = yoe + era * 400 + (m <= 2 ? 1 : 0);
  out[1] = m;
  out[2] = doy - Math.floor((153 * mp + 2) / 5) + 1;
  out[3] = Math.floor(rest / 3600000);
  rest -= out[3] * 3600000;
  out[4] = Math.floor(rest / 60000);
  rest -= out[4] * 60000;
  out[5] = Math.floor(rest / 1000);
  out[6] = rest - out[5] * 1000;
}

const fields = new Int32Array(7);

/** ms since the epoch as ISO-8601 UTC text, e.g. 2024-01-31T12:00:00Z (milliseconds only when not zero). */
export function isoUtc(ms: number): string {
  if (!inCivilRange(ms)) return new Date(ms).toISOString().replace(".000Z", "Z");
  utcFields(ms, fields);
  const [y, m, d, hh, mi, ss, milli] = fields;
  const frac = milli === 0 ? "" : `.${String(milli).padStart(3, "0")}`;
  return `${String(y).padStart(4, "0")}-${pad2(m)}-${pad2(d)}T${pad2(hh)}:${pad2(mi)}:${pad2(ss)}${frac}Z`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
