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

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
