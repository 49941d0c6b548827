// Server defaults, in a module of their own so the CLI can show them without loading the server.
import { availableParallelism } from "node:os";
export const DEFAULT_PORT = 6566;
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Entity rows one get-online-features request may ask; more answer 413. */
export const DEFAULT_MAX_ENTITY_ROWS = 10_000;
/** Entity rows x features one get-online-features request may ask: bounds the answer (about 5 MB) and how long it holds the process; more answer 413. */
export const DEFAULT_MAX_FEATURE_VALUES = 100_000;
/** /health answers 503 after this long, whatever the stores do. */
export const HEALTH_TIMEOUT_MS = 2000;

/**
 * V8 flags `fs serve` runs its server processes with. A young generation fixed at 16 MB semi-spaces
 * (V8 starts small and grows it only when many objects survive, which a server's short-lived request
 * objects never do): a third fewer scavenges, each a pause every request in flight waits for. Measured
 * on 1 x 250-feature reads at 1,000 req/s: 88-94 scavenges per 10 s become 59, p99 1.05-1.19 -> 0.98-1.07 ms.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=16", "--min-semi-space-size=16"];

/**
 * Rows per online-store write when the server materializes (POST /materialize, /materialize-incremental).
 * A write into SQLite holds the event loop; reads wait for it. The CLI writes 65,536 rows at a time; at
 * this size a write takes a few ms, and reads go on during a materialize.
 */
export const SERVER_MATERIALIZE_BATCH_ROWS = 4096;

/**
 * DuckDB threads in a server process (POST /materialize, offline pushes) unless feature_store.yaml's
 * offline_store sets `threads`: one core fewer than the machine has, so a materialize leaves a core to the
 * reads. On 2 cores, DuckDB on both cores starved the readers (1 x 20 reads at 500 req/s during a 25-view
 * materialize: p99 1.7 s, against 81 ms with one DuckDB thread), and the materialize was no faster: its
 * SQLite writes, not DuckDB, set its pace.
 */
export const SERVER_OFFLINE_THREADS = Math.max(1, availableParallelism() - 1);
