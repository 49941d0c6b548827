// SQL text helpers for DuckDB: quoting of names and literals, and timestamp literals.

/** A quoted identifier: "name" with embedded quotes doubled. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A quoted string literal. */
export function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** A TIMESTAMP literal for ms since the epoch (UTC), exact to the microsecond. */
export function timestampLiteral(ms: number): string {
  return `make_timestamp(${Math.round(ms * 1000)}::BIGINT)`;
}
