/** An error a user can act on: it names the file, object, column or value at fault and what was expected. */
export class FstoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FstoreError";
  }
}

/** Bad input from a caller (a request, a definition, a file): HTTP maps these to 4xx. */
export class ValidationError extends FstoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ValidationError";
  }
}

/** A named object that does not exist in the registry. */
export class NotFoundError extends ValidationError {
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** A service fstore depends on (the online store) refused or did not answer in time: HTTP maps these to 503. */
export class UnavailableError extends FstoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UnavailableError";
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * A user-supplied value for an error or log line: JSON-like text of at most about `max` characters, so a
 * huge or deeply nested value never makes a huge message (or overflows the stack on its way there).
 */
export function quoteValue(v: unknown, max = 80): string {
  if (typeof v === "string") {
    return v.length <= max ? JSON.stringify(v) : `${JSON.stringify(v.slice(0, max))}… (${v.length} chars)`;
  }
  let out = "";
  const walk = (x: unknown, depth: number): void => {
    if (out.length > max) return;
    if (typeof x === "string") out += JSON.stringify(x.length > max ? x.slice(0, max) : x);
    else if (x === null || typeof x !== "object") out += typeof x === "bigint" ? `${x}` : String(x);
    else if (depth >= 8) out += Array.isArray(x) ? "[…]" : "{…}";
    else if (Array.isArray(x)) {
      out += "[";
      for (let i = 0; i < x.length && out.length <= max; i++) {
        if (i > 0) out += ",";
        walk(x[i], depth + 1);
      }
      out += "]";
    } else {
      out += "{";
      let first = true;
      for (const k in x) {
        if (out.length > max) break;
        if (!first) out += ",";
        first = false;
        out += `${JSON.stringify(k.length > max ? k.slice(0, max) : k)}:`;
        walk((x as Record<string, unknown>)[k], depth + 1);
      }
      out += "}";
    }
  };
  walk(v, 0);
  return out.length > max ? `${out.slice(0, max)}…` : out;
}
