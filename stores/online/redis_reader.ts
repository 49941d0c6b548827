// The Redis online store's read path: HMGET pipelines on a connection of its own, replies parsed in place.
//
// A read is one string written to the socket, and each array reply is handed to the caller as offsets into
// the receive buffer, decoded while the rest of the reply is still arriving: no command object, promise or
// Buffer per command or per payload, as ioredis would make. Writes and admin commands stay on ioredis, so a
// read never queues behind a big write.

import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { RedisOptions } from "ioredis";
import { FstoreError, UnavailableError } from "../../common/errors.js";

/**
 * One array reply: element i is b[starts[i], starts[i] + lens[i]), or nil when lens[i] is -1. The
 * buffer and the offset arrays are only valid during the call.
 */
export type ArrayReplyHandler = (index: number, b: Buffer, starts: Int32Array, lens: Int32Array, n: number) => void;

interface Pending {
  /** replies still to come */
  left: number;
  /** replies received so far (the index passed to onArray) */
  seen: number;
  onArray?: ArrayReplyHandler;
  /** the first error reply or handler failure; the request fails with it once all its replies are in */
  error?: Error;
  resolve: () => void;
  reject: (e: Error) => void;
}

const CR = 13;
/** CLIENT SETNAME of read connections */
export const READER_NAME = "fstore-read";
/** Parser result for a reply not yet complete */
const INCOMPLETE = -1;

/** The connection went away with requests in flight (as opposed to the server answering an error). */
class ConnectionLost extends UnavailableError {}

/** One argument as RESP text: `$<length in UTF-8 bytes>\r\n<arg>\r\n`. */
export function respBulk(arg: string): string {
  return `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
}

/** A command as RESP text: `*<n>\r\n` and its arguments. */
export function respCommand(args: readonly string[]): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += respBulk(a);
  return out;
}

export class RedisReadConnection {
  private socket?: Socket;
  private ready?: Promise<void>;
  private readonly queue: Pending[] = [];
  private head = 0;
  /** bytes received but not yet parsed: a reply still arriving (the unparsed tail, then later chunks) */
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** chunkBytes must reach this before a parse can make progress */
  private needed = 0;
  private starts = new Int32Array(64);
  private lens = new Int32Array(64);
  private closed = false;
  /** a socket still connecting (before `socket` is set), so that a timeout can give it up */
  private connecting?: Socket;

  constructor(
    private readonly opts: RedisOptions,
    /** where the server is, for error messages */
    readonly where: string,
    /** a send (connecting included) fails after this long without all its replies */
    private readonly timeoutMs: number,
  ) {}

  /**
   * Sends `commands` (RESP text holding `count` commands) and hands every array reply to `onArray` in
   * order. Resolves when all `count` replies are in; rejects with the first error reply, and with an
   * UnavailableError when Redis cannot be reached or does not answer within the timeout.
   */
  async send(commands: string, count: number, onArray?: ArrayReplyHandler): Promise<void> {
    if (count === 0) return;
    let timedOut = false;
    // a Redis that accepts but does not answer would hold the read forever: give up its connection, so the
    // replies still owed can never be taken for a later request's, and the next send connects afresh
    const timer = setTimeout(() => {
      timedOut = true;
      this.drop(new UnavailableError(`online store (redis): ${this.where} did not answer within ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.connect();
          const socket = this.socket;
          if (!socket) throw new ConnectionLost(`online store (redis): no connection to ${this.where}`);
          await new Promise<void>((resolve, reject) => {
            this.queue.push({ left: count, seen: 0, onArray, resolve, reject });
            socket.write(commands);
          });
          return;
        } catch (e) {
          // reads are idempotent: a connection lost mid-read (server restart, idle kill) is retried once on
          // a new one; handlers see the replies again from the first
          if (!(e instanceof ConnectionLost) || attempt > 0 || this.closed || timedOut) throw e;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** PING over the read connection, within the timeout. */
  ping(): Promise<void> {
    return this.send(respCommand(["PING"]), 1);
  }

  /** Fails every request on the connection (or the connection being made) with `e`. */
  private drop(e: Error): void {
    if (this.socket) this.fail(this.socket, e);
    else this.connecting?.destroy(e);
  }

  private connect(): Promise<void> {
    if (this.closed) return Promise.reject(new FstoreError(`online store (redis): the store is closed`));
    if (this.ready) return this.ready;
    const ready: Promise<void> = this.open().catch((e: unknown) => {
      // not when a newer connection is being made already
      if (this.ready === ready) this.ready = undefined;
      throw e;
    });
    this.ready = ready;
    return ready;
  }

  private async open(): Promise<void> {
    const o = this.opts;
    const host = o.host ?? "127.0.0.1";
    const port = o.port ?? 6379;
    const socket = o.tls ? tlsConnect({ host, port, servername: host, ...o.tls }) : netConnect({ host, port });
    socket.setNoDelay(true);
    this.connecting = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once(o.tls ? "secureConnect" : "connect", () => resolve());
      socket.once("error", (e: Error) =>
        reject(new UnavailableError(`online store (redis): cannot connect to ${this.where}: ${e.message}`)),
      );
      // destroyed without an error (close() meanwhile)
      socket.once("close", () => reject(new UnavailableError(`online store (redis): no connection to ${this.where}`)));
    }).finally(() => {
      if (this.connecting === socket) this.connecting = undefined;
    });
    this.socket = socket;
    this.chunks = [];
    this.chunkBytes = 0;
    this.needed = 0;
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (e: Error) =>
      this.fail(socket, new ConnectionLost(`online store (redis): connection to ${this.where} failed: ${e.message}`)),
    );
    socket.on("close", () =>
      this.fail(socket, new ConnectionLost(`online store (redis): connection to ${this.where} closed`)),
    );
    const hello: string[] = [];
    if (o.password) hello.push(respCommand(o.username ? ["AUTH", o.username, o.password] : ["AUTH", o.password]));
    if (o.db) hello.push(respCommand(["SELECT", String(o.db)]));
    // named, so that CLIENT LIST tells the read connection apart from the ioredis one
    hello.push(respCommand(["CLIENT", "SETNAME", READER_NAME]));
    await new Promise<void>((resolve, reject) => {
      this.queue.push({ left: hello.length, seen: 0, resolve, reject });
      socket.write(hello.join(""));
    }).catch((e: unknown) => {
      socket.destroy();
      throw e;
    });
  }

  /** Fails every request in flight on `socket` and forgets the connection (the next send reconnects). */
  private fail(socket: Socket, e: Error): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    this.ready = undefined;
    socket.destroy();
    const pending = this.queue.splice(this.head);
    this.queue.length = 0;
    this.head = 0;
    for (const p of pending) p.reject(e);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.connecting?.destroy();
    const socket = this.socket;
    if (!socket) return;
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.end();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.chunks.length > 0) {
      // a reply is still arriving: gather chunks until the parse can get further, then join them once
      this.chunks.push(chunk);
      this.chunkBytes += chunk.length;
      if (this.chunkBytes < this.needed) return;
      chunk = Buffer.concat(this.chunks, this.chunkBytes);
      this.chunks = [];
      this.chunkBytes = 0;
    }
    let pos = 0;
    try {
      while (pos < chunk.length) {
        const next = this.parseReply(chunk, pos);
        if (next === INCOMPLETE) {
          // `needed` was set relative to pos by the parser
          const rest = chunk.subarray(pos);
          this.chunks = [rest];
          this.chunkBytes = rest.length;
          return;
        }
        pos = next;
      }
    } catch (e) {
      // a reply that cannot be parsed leaves the stream out of step: drop the connection
      if (this.socket) this.fail(this.socket, e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** The pending request the next reply belongs to. */
  private current(): Pending {
    const p = this.queue[this.head];
    if (p === undefined)
      throw new FstoreError(`online store (redis): a reply from ${this.where} arrived that no request was waiting for`);
    return p;
  }

  private settle(p: Pending): void {
    p.seen++;
    if (--p.left > 0) return;
    this.head++;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
    if (p.error) p.reject(p.error);
    else p.resolve();
  }

  /** Parses the reply at `pos`; returns the position after it, or INCOMPLETE (setting `needed`). */
  private parseReply(b: Buffer, pos: number): number {
    const lineEnd = b.indexOf(CR, pos);
    if (lineEnd < 0 || lineEnd + 1 >= b.length) return this.incomplete(pos, b.length + 1);
    const type = b[pos];
    if (type === 0x2a /* * */) {
      const n = readInt(b, pos + 1, lineEnd);
      if (n < 0) {
        this.settle(this.current());
        return lineEnd + 2;
      }
      if (this.starts.length < n) {
        this.starts = new Int32Array(n * 2);
        this.lens = new Int32Array(n * 2);
      }
      let q = lineEnd + 2;
      for (let i = 0; i < n; i++) {
        if (q >= b.length) return this.incomplete(pos, q + 1);
        if (b[q] !== 0x24 /* $ */)
          throw this.protocolError(`expected a bulk string in an array reply, got "${String.fromCharCode(b[q])}"`);
        const e = b.indexOf(CR, q);
        if (e < 0 || e + 1 >= b.length) return this.incomplete(pos, b.length + 1);
        const len = readInt(b, q + 1, e);
        if (len < 0) {
          this.lens[i] = -1;
          q = e + 2;
          continue;
        }
        this.starts[i] = e + 2;
        this.lens[i] = len;
        q = e + 2 + len + 2;
        if (q > b.length) return this.incomplete(pos, q);
      }
      const p = this.current();
      if (p.onArray && !p.error) {
        try {
          p.onArray(p.seen, b, this.starts, this.lens, n);
        } catch (err) {
          p.error = err instanceof Error ? err : new Error(String(err));
        }
      }
      this.settle(p);
      return q;
    }
    if (type === 0x2d /* - */) {
      const p = this.current();
      p.error ??= new FstoreError(
        `online store (redis): ${this.where} answered: ${b.toString("utf8", pos + 1, lineEnd)}`,
      );
      this.settle(p);
      return lineEnd + 2;
    }
    if (type === 0x2b /* + */ || type === 0x3a /* : */) {
      this.settle(this.current());
      return lineEnd + 2;
    }
    if (type === 0x24 /* $ */) {
      const len = readInt(b, pos + 1, lineEnd);
      const end = len < 0 ? lineEnd + 2 : lineEnd + 2 + len + 2;
      if (end > b.length) return this.incomplete(pos, end);
      this.settle(this.current());
      return end;
    }
    throw this.protocolError(`unexpected reply type "${String.fromCharCode(type)}"`);
  }

  private incomplete(pos: number, end: number): number {
    this.needed = end - pos;
    return INCOMPLETE;
  }

  private protocolError(what: string): Error {
    return new FstoreError(`online store (redis): protocol error from ${this.where}: ${what}`);
  }
}

/** The decimal integer in b[start, end) (RESP lengths and counts; "-1" for nil). */
function readInt(b: Buffer, start: number, end: number): number {
  let neg = false;
  let i = start;
  if (b[i] === 0x2d) {
    neg = true;
    i++;
  }
  let n = 0;
  for (; i < end; i++) n = n * 10 + (b[i] - 48);
  return neg ? -n : n;
}
