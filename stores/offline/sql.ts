// Timestamp literals for the offline store's SQL; names and strings are quoted by common/duckdb.

/** A TIMESTAMP literal for ms since the epoch (UTC), exact to the microsecond. */
export function timestampLiteral(ms: number): string {
  return `make_timestamp(${Math.round(ms * 1000)}::BIGINT)`;
}
