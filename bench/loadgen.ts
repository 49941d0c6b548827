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

export interface LoadOptions {
  url: string;
  path: string;
  /** request body, made fresh for each request */
  body: () => string;
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
  /** when the current request was due (open loop) or sent (closed loop) */
  since: number;
  chunks: Buffer[];
  received: number;
  /** header length + content-length once the header is in, else -1 */
  total: number;
  status: number;
}

const CRLF2 = Buffer.from("\r\n\r\n");

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const u = new URL(opts.url);
  const host = u.hostname;
  const port = Number(u.port || 80);
  const latencies: number[] = [];
  let errors = 0;
  let completed = 0;
  const head = (len: number) => `POST ${opts.path} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: ${len}\r\n\r\n`;
  const request = () => {
    const b = opts.body();
    return head(Buffer.byteLength(b)) + b;
  };

  const idle: Conn[] = [];
  /** open loop: due times of requests not yet sent (every connection busy) */
  const backlog: number[] = [];
  let running = true;
  const closedLoop = opts.rate === undefined;

  const send = (c: Conn, due: number) => {
    c.busy = true;
    c.since = due;
    c.chunks = [];
    c.received = 0;
    c.total = -1;
    c.socket.write(request());
  };

  const onDone = (c: Conn) => {
    const now = performance.now();
    completed++;
    if (c.status === 200) latencies.push(now - c.since);
    else errors++;
    c.busy = false;
    if (!running) return;
    if (closedLoop) send(c, performance.now());
    else if (backlog.length > 0) send(c, backlog.shift() as number);
    else idle.push(c);
  };

  const onData = (c: Conn, d: Buffer) => {
    c.chunks.push(d);
    c.received += d.length;
    if (c.total < 0) {
      const all = c.chunks.length === 1 ? c.chunks[0] : Buffer.concat(c.chunks);
      c.chunks = [all];
      const end = all.indexOf(CRLF2);
      if (end < 0) return;
      const header = all.toString("latin1", 0, end);
      c.status = Number(header.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(header);
      if (!m) throw new Error(`${opts.url}${opts.path}: the answer has no content-length`);
      c.total = end + 4 + Number(m[1]);
    }
    if (c.received >= c.total) onDone(c);
  };

  const conns: Conn[] = await Promise.all(
    Array.from(
      { length: opts.connections },
      () =>
        new Promise<Conn>((resolve, reject) => {
          const socket = connect({ host, port }, () => resolve(c));
          const c: Conn = { socket, busy: false, since: 0, chunks: [], received: 0, total: -1, status: 0 };
          socket.setNoDelay(true);
          socket.on("data", (d: Buffer) => onData(c, d));
          socket.once("error", (e) => {
            if (!running) return;
            errors++;
            reject(e);
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
          const c = idle.pop();
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
  while (conns.some((c) => c.busy) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  errors += conns.filter((c) => c.busy).length + backlog.length;
  for (const c of conns) c.socket.destroy();
  return { rps: completed / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}
