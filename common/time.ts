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

/** What time text may be, for error messages and `--help`. */
export const TIME_TEXT_HELP =
  'an ISO-8601 date or time (2024-01-31, 2024-01-31T12:00:00, 2024-01-31T12:00:00+02:00; UTC when no zone), "now", or epoch time with its unit ("1706702400s", "1706702400000ms")';

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/;
const EPOCH_RE = /^([+-]?\d+)(s|ms)$/;
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

function daysInMonth(y: number, m: number): number {
  if (m === 2) return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days-from-civil, exact for any year). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/**
 * Time text from a command line or a request, as ms since the epoch: see TIME_TEXT_HELP. Impossible dates
 * (2024-02-30) and bare numbers (is 2024 a year, seconds or ms?) are refused, not rolled over or guessed.
 */
export function parseTimeText(text: string, what = "timestamp"): number {
  const s = text.trim();
  const shown = JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
  if (s.toLowerCase() === "now") return Date.now();
  if (/^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?$/.test(s))
    throw new ValidationError(
      `${what}: ${shown} is a bare number; write ${TIME_TEXT_HELP.replace(', "now", or', ", or")}`,
    );
  const epoch = EPOCH_RE.exec(s);
  if (epoch) {
    const ms = Number(epoch[1]) * (epoch[2] === "s" ? 1000 : 1);
    if (!inCivilRange(ms)) throw new ValidationError(`${what}: ${shown} is outside years 0000-9999`);
    return ms;
  }
  const m = ISO_RE.exec(s);
  if (!m) throw new ValidationError(`${what}: ${shown} is not a timestamp: expected ${TIME_TEXT_HELP}`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (mo < 1 || mo > 12) throw new ValidationError(`${what}: ${shown} has no month ${m[2]} (expected 01-12)`);
  if (d < 1 || d > daysInMonth(y, mo))
    throw new ValidationError(
      `${what}: ${shown} is not a date: ${MONTHS[mo - 1]} ${m[1]} has ${daysInMonth(y, mo)} days`,
    );
  const [hh, mi, ss] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  if (hh > 23 || mi > 59 || ss > 59)
    throw new ValidationError(`${what}: ${shown} is not a time of day (expected 00:00:00 to 23:59:59)`);
  const milli = m[7] ? Number(m[7].slice(0, 3).padEnd(3, "0")) : 0;
  let offsetMin = 0;
  const zone = m[8];
  if (zone && zone.toUpperCase() !== "Z") {
    const digits = zone.slice(1).replace(":", "");
    const [oh, om] = [Number(digits.slice(0, 2)), Number(digits.slice(2) || 0)];
    if (oh > 23 || om > 59) throw new ValidationError(`${what}: ${shown} has no zone offset ${zone}`);
    offsetMin = (zone[0] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const ms = daysFromCivil(y, mo, d) * 86400000 + ((hh * 60 + mi - offsetMin) * 60 + ss) * 1000 + milli;
  if (!inCivilRange(ms)) throw new ValidationError(`${what}: ${shown} is outside years 0000-9999`);
  return ms;
}

/**
 * A timestamp as ms since the epoch, UTC, in years 0000-9999. Text goes through parseTimeText (ISO, "now",
 * or epoch time with a unit suffix); numbers, from code rather than text, are ms since the epoch.
 */
export function toEpochMs(t: Date | string | number, what = "timestamp"): number {
  if (typeof t === "string") return parseTimeText(t, what);
  const ms = t instanceof Date ? t.getTime() : t;
  if (typeof ms !== "number" || !Number.isFinite(ms))
    throw new ValidationError(`${what}: ${t instanceof Date ? "invalid date" : `${String(t)} is not a finite time`}`);
  if (!inCivilRange(Math.floor(ms)))
    throw new ValidationError(`${what}: ${ms} ms since the epoch is outside years 0000-9999`);
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
