// The server's HTTP input and output: reading a JSON body within a byte limit, and writing an answer.
import type { IncomingMessage, ServerResponse } from "node:http";
import { NotFoundError, UnavailableError, ValidationError, errorMessage, quoteValue } from "../common/errors.js";
import type { BodyPrefixes } from "./body_prefix.js";
import type { BufferPool } from "./json_bytes.js";

export const JSON_TYPE = "application/json";
/** the other content-type clients send most, taken without parsing */
const JSON_UTF8 = "application/json; charset=utf-8";

export type Json = Record<string, unknown>;

/** Longest error text an answer or a log line carries: messages quote values cut short, this is the backstop. */
export const MAX_ERROR_CHARS = 1000;

/** An error's message, cut at MAX_ERROR_CHARS. */
export function boundedMessage(e: unknown): string {
  const m = errorMessage(e);
  return m.length > MAX_ERROR_CHARS ? `${m.slice(0, MAX_ERROR_CHARS)}… (${m.length} chars)` : m;
}

/** nginx's status for a client that closed the connection before its answer: it is counted, never sent. */
export const CLIENT_CLOSED = 499;

/** A failure answered with its own status (and headers): the message is the error body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The status an error answers with: its own for an HttpError, 4xx for bad input, 503 for a store down, else 500. */
export function statusOf(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (e instanceof NotFoundError) return 404;
  if (e instanceof ValidationError) return 400;
  if (e instanceof UnavailableError) return 503;
  return 500;
}

export interface Answer {
  status: number;
  body: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  /** a buffer of `pool`, given back once the socket has written it */
  pooled?: boolean;
}

/** Writes an answer with its length; `closing` asks the client to drop the connection. */
export function send(res: ServerResponse, a: Answer, pool: BufferPool, closing: boolean): void {
  const body = a.body;
  const headers: Record<string, string | number> = {
    "content-type": a.contentType ?? JSON_TYPE,
    "content-length": typeof body === "string" ? Buffer.byteLength(body) : body.length,
  };
  if (closing) headers.connection = "close";
  if (a.headers) Object.assign(headers, a.headers);
  res.writeHead(a.status, headers);
  // given back only after a write that completed: a failed one may still be held by the socket
  if (a.pooled && typeof body !== "string") res.end(body, () => res.writableFinished && pool.give(body));
  else res.end(body);
}

/** The answer to a failed request: `{"error": ...}`, with 500 kept for the server's own faults. */
export function errorAnswer(e: unknown): Answer {
  const status = statusOf(e);
  let headers = e instanceof HttpError ? e.headers : undefined;
  // the body was not read: close rather than read it through
  if (status === 413 || status === 415) headers = { ...headers, connection: "close" };
  const msg = status === 500 ? `internal error: ${boundedMessage(e)}` : boundedMessage(e);
  return { status, body: JSON.stringify({ error: msg }), headers };
}

/**
 * 415 unless the body is declared JSON (`application/json`, charset utf-8 if one is named, the only one JSON
 * has) and sent without a content encoding: bodies are parsed as they arrive, never decompressed.
 */
export function checkJsonBody(req: IncomingMessage): void {
  const type = req.headers["content-type"];
  if ((type === JSON_TYPE || type === JSON_UTF8) && req.headers["content-encoding"] === undefined) return;
  const [media, ...params] = (type ?? "").split(";").map((p) => p.trim().toLowerCase());
  const charset = params
    .find((p) => p.startsWith("charset="))
    ?.slice(8)
    .replace(/^"|"$/g, "");
  if (media !== JSON_TYPE || (charset !== undefined && charset !== "utf-8" && charset !== "utf8"))
    throw new HttpError(
      415,
      `content-type: expected application/json (charset utf-8), got ${type === undefined ? "none" : quoteValue(type)}`,
    );
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity")
    throw new HttpError(
      415,
      `content-encoding: ${quoteValue(encoding)} is not supported: send the body uncompressed (identity)`,
    );
}

/** The request body as a JSON object; 413 past `limit` bytes, 400 for anything but a JSON object. */
export function readJson(req: IncomingMessage, limit: number, prefixes?: BodyPrefixes): Promise<Json> {
  const declared = Number(req.headers["content-length"]);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new HttpError(413, `body: ${declared} bytes is over the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new HttpError(413, `body: over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    // a client that goes away mid-body (an "aborted" error, then close): settle, so the request is not counted
    // in flight forever, as the client's doing rather than the server's
    const gone = () =>
      reject(new HttpError(CLIENT_CLOSED, "body: the client closed the connection before the body ended"));
    req.on("error", gone);
    req.on("close", () => {
      if (!req.complete) gone();
    });
    req.on("end", () => {
      if (over) return;
      const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      let parsed: unknown;
      try {
        parsed = prefixes ? prefixes.parse(bytes) : JSON.parse(bytes.toString("utf8"));
      } catch (e) {
        if (bytes.toString("utf8").trim() === "")
          return reject(new HttpError(400, "body: expected a JSON object, got an empty body"));
        return reject(new HttpError(400, `body: malformed JSON: ${boundedMessage(e)}`));
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        return reject(
          new HttpError(
            400,
            `body: expected a JSON object, got ${Array.isArray(parsed) ? "an array" : quoteValue(parsed)}`,
          ),
        );
      }
      resolve(parsed as Json);
    });
  });
}
