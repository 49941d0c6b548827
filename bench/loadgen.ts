// A small HTTP/1.1 load generator over raw keep-alive sockets, for the server benchmark.
//
// Why not autocannon: its rate limiting sends each tick's requests in a burst over all connections, so at
// 1,000 req/s even a bare node:http handler shows a p99 of 2.5-4 ms of queueing it caused itself. Here an
// open-loop run spaces requests evenly (a request every 1/rate s, sent when due, to ~1 ms) and measures each
// latency from when the generator found it due, so a stalled server is charged for the requests that
// waited for a connection (no coordinated omission). A closed-loop run (no rate) sends the next request on each connection as
// soon as the previous answer is complete. Responses must carry content-length (no chunked encoding).
import { connect, type Socket } from "node:net";
import { percentile, performance } from "./lib.js";

/**
 * A request body `prefix + ids + suffix`, with `rows` fresh ids (comma-separated) per request: e.g.
 * `{"features":[...],"entities":{"user_id":[` + `17,4021` + `]}}`. The constant parts are encoded once.
 */
export interface BodyTemplate {
  prefix: string;
  suffix: string;
  rows: number;
  nextId: () => number;
}

export interface LoadOptions {
  url: string;
  path: string;
  body: BodyTemplate;
  connections: number;
  /** requests per second for an open-loop run; omit for a closed loop */
  rate?: number;
  seconds: number;
}

export interface LoadResult {
  /** completed requests per second */
  rps: number;
  /** latency in ms */
  p50: number;
  p99: number;
  /** non-200 answers, socket errors and requests still unanswered at the end */
  errors: number;
}

interface Conn {
  socket: Socket;
  busy: boolean;
  /** closed by the server */
  dead: boolean;
  /** when the current request was due (open loop) or sent (closed loop) */
  since: number;
  /** the answer's head while it is incomplete (rarely: it nearly always comes in one chunk) */
  head: Buffer | undefined;
  received: number;
  /** header length + content-length once the header is in, else -1 */
  total: number;
  status: number;
  /**
   * The request's bytes, rewritten in place for each request: a connection has one request in flight,
   * and its answer arriving means the request was written.
   */
  out: Buffer;
}

const CRLF2 = Buffer.from("\r\n\r\n");

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const u = new URL(opts.url);
  const host = u.hostname;
  const port = Number(u.port || 80);
  // The generator's own garbage is kept small: its scavenges delay the answers it reads, and those
  // delays would count against the server under test (a string per request body made ~28 KB per request
  // and a scavenge every ~130 requests).
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let errors = 0;
  let closed = 0;
  let completed = 0;
  const head = Buffer.from(
    `POST ${opts.path} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: `,
  );
  const prefix = Buffer.from(opts.body.prefix);
  const suffix = Buffer.from(opts.body.suffix);
  const { rows, nextId } = opts.body;
  /** Writes the next request into c.out; returns its length. */
  const render = (c: Conn): number => {
    let ids = "";
    for (let i = 0; i < rows; i++) ids += i ? `,${nextId()}` : `${nextId()}`;
    const bodyLength = prefix.length + ids.length + suffix.length;
    const need = head.length + 12 + bodyLength;
    if (c.out.length < need) c.out = Buffer.allocUnsafeSlow(need * 2);
    const b = c.out;
    let o = head.copy(b, 0);
    o += b.write(`${bodyLength}\r\n\r\n`, o, "latin1");
    o += prefix.copy(b, o);
    o += b.write(ids, o, "latin1");
    o += suffix.copy(b, o);
    return o;
  };

  const idle: Conn[] = [];
  /** open loop: due times of requests not yet sent (every connection busy) */
  const backlog: number[] = [];
  let running = true;
  const closedLoop = opts.rate === undefined;

  const send = (c: Conn, due: number) => {
    c.busy = true;
    c.since = due;
    c.head = undefined;
    c.received = 0;
    c.total = -1;
    c.socket.write(c.out.subarray(0, render(c)));
  };

  const onDone = (c: Conn) => {
    const now = performance.now();
    completed++;
    if (c.status === 200) {
      if (count === latencies.length) {
        const bigger = new Float64Array(count * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[count++] = now - c.since;
    } else errors++;
    c.busy = false;
    if (!running) return;
    if (closedLoop) send(c, performance.now());
    else if (backlog.length > 0) send(c, backlog.shift() as number);
    else idle.push(c);
  };

  const onData = (c: Conn, d: Buffer) => {
    c.received += d.length;
    if (c.total < 0) {
      // only the head is looked at; the rest of the answer is counted, not kept
      const all = c.head === undefined ? d : Buffer.concat([c.head, d]);
      const end = all.indexOf(CRLF2);
      if (end < 0) {
        c.head = all;
        return;
      }
      c.head = undefined;
      c.status = (all[9] - 48) * 100 + (all[10] - 48) * 10 + (all[11] - 48);
      c.total = end + 4 + contentLength(all, end);
    }
    if (c.received >= c.total) onDone(c);
  };

  const conns: Conn[] = await Promise.all(
    Array.from(
      { length: opts.connections },
      () =>
        new Promise<Conn>((resolve, reject) => {
          const socket = connect({ host, port }, () => resolve(c));
          const c: Conn = {
            socket,
            busy: false,
            dead: false,
            since: 0,
            head: undefined,
            received: 0,
            total: -1,
            status: 0,
            out: Buffer.allocUnsafeSlow(16_384),
          };
          socket.setNoDelay(true);
          socket.on("data", (d: Buffer) => onData(c, d));
          socket.once("error", (e) => {
            if (!running) return;
            errors++;
            reject(e);
          });
          // a connection the server closes mid-run is an error, and is not used again (a request sent on
          // it would wait for an answer forever)
          socket.once("close", () => {
            if (!running) return;
            closed++;
            c.dead = true;
          });
        }),
    ),
  );

  const start = performance.now();
  const end = start + opts.seconds * 1000;
  if (closedLoop) {
    for (const c of conns) send(c, performance.now());
    await new Promise((r) => setTimeout(r, opts.seconds * 1000));
  } else {
    idle.push(...conns);
    const interval = 1000 / (opts.rate as number);
    let due = start;
    // sleep until the next request is due (timers fire at ~1 ms granularity, so at 1,000 req/s one or two
    // go out per wake-up); a busy loop would space them better but takes a core from the server under
    // test on a 2-core machine
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        while (due <= now && due < end) {
          // latency counts from this wake-up, not from `due`: the timer's own lateness (up to ~1 ms) is
          // the generator's, while waiting for a free connection is the server's
          let c = idle.pop();
          while (c?.dead) c = idle.pop();
          if (c) send(c, now);
          else backlog.push(now);
          due += interval;
        }
        if (now >= end) resolve();
        else setTimeout(tick, Math.max(0, Math.min(due, end) - performance.now()));
      };
      tick();
    });
  }
  running = false;
  const elapsed = (performance.now() - start) / 1000;
  // let answers in flight arrive (up to 2 s), then count the rest as errors
  const deadline = performance.now() + 2000;
  while (conns.some((c) => c.busy && !c.dead) && performance.now() < deadline)
    await new Promise((r) => setTimeout(r, 5));
  errors += conns.filter((c) => c.busy).length + backlog.length;
  if (closed > 0) console.error(`load generator: the server closed ${closed} connection(s) during the run`);
  for (const c of conns) c.socket.destroy();
  const measured = Array.from(latencies.subarray(0, count));
  return { rps: completed / elapsed, p50: percentile(measured, 50), p99: percentile(measured, 99), errors };
}

const CONTENT_LENGTH = Buffer.from("\r\ncontent-length:");

/** The content-length of the head b[0, end), read without making strings. */
function contentLength(b: Buffer, end: number): number {
  // header names are case-insensitive: compare lower-cased
  outer: for (let i = 0; i + CONTENT_LENGTH.length <= end; i++) {
    for (let j = 0; j < CONTENT_LENGTH.length; j++) {
      const x = b[i + j];
      if ((x >= 65 && x <= 90 ? x + 32 : x) !== CONTENT_LENGTH[j]) continue outer;
    }
    let p = i + CONTENT_LENGTH.length;
    while (b[p] === 32) p++;
    let n = 0;
    while (b[p] >= 48 && b[p] <= 57) n = n * 10 + (b[p++] - 48);
    return n;
  }
  throw new Error("the answer has no content-length");
}
