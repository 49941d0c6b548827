// Bounding a wait on something outside the process (Redis, a store's health check).
import { UnavailableError } from "./errors.js";

/** `p`, or an UnavailableError with `message` after `ms` (p itself is left to settle or be abandoned). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UnavailableError(message)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
