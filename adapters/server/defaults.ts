// Server defaults, in a module of their own so the CLI can show them without loading the server.
export const DEFAULT_PORT = 6566;
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
