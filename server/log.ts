// Structured JSON logs: one line per event on a stream (stdout by default), filtered by level.
import type { Writable } from "node:stream";
import { quoteValue } from "../common/errors.js";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function isLogLevel(s: unknown): s is LogLevel {
  return typeof s === "string" && (LOG_LEVELS as readonly string[]).includes(s);
}

export interface Logger {
  readonly level: LogLevel;
  enabled(level: Exclude<LogLevel, "silent">): boolean;
  log(level: Exclude<LogLevel, "silent">, msg: string, fields?: Record<string, unknown>): void;
  /** Write the lines still held back (the server calls it on close). */
  flush(): void;
}

/** Text of a log field, cut so that no message quoting a caller's value makes a huge line. */
function cut(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s;
}

/** The chain of causes of an error as plain JSON (message, name, stack of the first), each field cut short. */
export function errorFields(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { error: quoteValue(e, 1000) };
  const causes: string[] = [];
  let c: unknown = e.cause;
  for (let i = 0; c !== undefined && i < 5; i++) {
    causes.push(cut(c instanceof Error ? `${c.name}: ${c.message}` : quoteValue(c, 1000), 1000));
    c = c instanceof Error ? c.cause : undefined;
  }
  const out: Record<string, unknown> = {
    error: cut(e.message, 1000),
    error_type: e.name,
    stack: e.stack === undefined ? undefined : cut(e.stack, 4000),
  };
  if (causes.length) out.cause = causes;
  return out;
}

/** Lines held back are written at this size even within one turn of the event loop. */
const FLUSH_CHARS = 64 * 1024;

/**
 * A logger writing one JSON object per line. Lines are held until the end of the current turn of the
 * event loop (setImmediate) and written together, since a write per request line is a measurable share of a
 * small request's CPU. Warnings and errors are written at once, with what was held.
 */
export function jsonLogger(level: LogLevel = "info", stream: Writable = process.stdout): Logger {
  const min = RANK[level];
  let held = "";
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (held === "") return;
    const text = held;
    held = "";
    stream.write(text);
  };
  return {
    level,
    enabled: (l) => RANK[l] >= min,
    flush,
    log(l, msg, fields) {
      if (RANK[l] < min) return;
      let line: string;
      try {
        line = JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...fields });
      } catch {
        line = JSON.stringify({ time: new Date().toISOString(), level: l, msg, note: "fields not serialisable" });
      }
      held += line + "\n";
      if (RANK[l] >= RANK.warn || held.length >= FLUSH_CHARS) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
}
