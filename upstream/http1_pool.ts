/**
 * The upstream HTTP/1.1 client: one pool of keep-alive connections per server. This folder is the
 * whole client, usable and tested on its own: `http1_parse.ts` parses and validates response
 * heads, `http1_chunked.ts` decodes chunked bodies, `http1_connection.ts` runs one connection,
 * `http1_body.ts` reads its answers' bodies, `http1_call.ts` is one request in flight, and this
 * file pools connections. It knows nothing of the gateway, models or strategies.
 *
 * The gateway used `fetch` before; measured on one core against the benchmark upstream
 * (`bench/clients/main.ts`), `fetch` (with or without `Deno.createHttpClient`), `node:http`
 * with a keep-alive agent and undici all cost about 70 µs per small request, while a plain
 * `Deno.connect` socket speaking HTTP/1.1 costs about 17 µs. Owning the socket also gives a real
 * connect timeout and a body that is read into one reused buffer per connection.
 *
 * Idle connections keep a read pending, so one the server closes (uvicorn closes idle ones after
 * 5 s) leaves the pool at once; connections idle for 4 s are not reused. A request
 * that fails on a reused connection before any byte of the answer came back is sent once more on
 * a new connection (the server closed it as we wrote: nothing was processed).
 *
 * @module
 */
import { Http1Connection, type UpstreamBody, UpstreamClosed } from "./http1_connection.ts";
import { ProtocolError } from "./http1_parse.ts";
import { concatBytes } from "../common/bytes.ts";
import { ConnectError, UpstreamCall } from "./http1_call.ts";
import { errorLine } from "../common/errors.ts";

export { ConnectError, UpstreamCall } from "./http1_call.ts";

/** Idle connections older than this are closed rather than reused (below uvicorn's 5 s). */
const IDLE_MS = 4_000;
/** Idle connections kept per server at most. */
const MAX_IDLE = 1_024;
/** Bodies up to this size are written together with the head in one write. */
const COALESCE_BYTES = 64 * 1024;

/** A request to send. */
export interface UpstreamRequest {
  /** The method. */
  method: string;
  /** The path (with query), appended to the server URL's own path. */
  path: string;
  /** Header pairs; `host` and `content-length` are set by the client. */
  headers: Iterable<readonly [string, string]>;
  /** The body, if any. */
  body: Uint8Array | null;
}

/** A server's answer; the body streams from the connection. */
export interface UpstreamResponse {
  /** The status code. */
  status: number;
  /** Header pairs as received, names lower-cased. */
  headers: [string, string][];
  /** The body, `null` when the answer has none. */
  body: UpstreamBody | null;
}

/** Options for {@link Http1Pool.send}. */
export interface SendOptions {
  /** Milliseconds allowed to open a new connection. */
  connectTimeoutMs: number;
}

/** Keep-alive connections to one server. */
export class Http1Pool {
  readonly #hostname: string;
  readonly #port: number;
  readonly #tls: boolean;
  readonly #host: string;
  readonly #basePath: string;
  readonly #idle: Http1Connection[] = [];
  readonly #open = new Set<Http1Connection>();
  #closed = false;

  /**
   * Creates a pool for a server.
   *
   * @param baseUrl The server's base URL (`http:` or `https:`, maybe with a path prefix).
   */
  constructor(baseUrl: string) {
    const url = new URL(baseUrl);
    this.#tls = url.protocol === "https:";
    this.#hostname = url.hostname.replace(/^\[|\]$/g, "");
    this.#port = Number(url.port || (this.#tls ? 443 : 80));
    this.#host = url.host;
    this.#basePath = url.pathname.replace(/\/+$/, "");
  }

  /** Connections open now (idle or busy). */
  get openCount(): number {
    return this.#open.size;
  }

  /** Idle connections ready for reuse. */
  get idleCount(): number {
    return this.#idle.length;
  }

  /**
   * Sends a request on an idle connection or a new one.
   *
   * @param request The request.
   * @param options The connect timeout.
   * @returns The call; await its `response`.
   */
  send(request: UpstreamRequest, options: SendOptions): UpstreamCall {
    return new UpstreamCall((call) => this.#run(call, request, options));
  }

  /** Closes idle connections and stops reusing the busy ones once they finish. */
  close(): void {
    this.#closed = true;
    for (const connection of this.#idle.splice(0)) {
      connection.close();
      this.#open.delete(connection);
    }
  }

  async #run(
    call: UpstreamCall,
    request: UpstreamRequest,
    options: SendOptions,
  ): Promise<UpstreamResponse> {
    const parts = this.#parts(request);
    for (let attempt = 0;; attempt++) {
      const reused = attempt === 0 ? this.#takeIdle() : undefined;
      const connection = reused ?? await this.#connect(call, options.connectTimeoutMs);
      call.attach(connection);
      try {
        // Full duplex: the answer is read while the request is written.
        connection.send(parts);
        const answer = await connection.readHead(request.method);
        const body = connection.body(answer, (reusable) => {
          call.detach();
          this.#done(connection, reusable);
        });
        const empty = answer.framing === "none";
        if (empty) await body.read();
        return { status: answer.status, headers: answer.headers, body: empty ? null : body };
      } catch (error) {
        connection.close();
        this.#open.delete(connection);
        if (call.aborted) throw new UpstreamClosed("The request was aborted", { cause: error });
        if (reused && !connection.received) continue;
        throw error instanceof UpstreamClosed || error instanceof ProtocolError
          ? error
          : new UpstreamClosed(`The connection failed: ${errorLine(error)}`, { cause: error });
      }
    }
  }

  #takeIdle(): Http1Connection | undefined {
    const now = performance.now();
    for (;;) {
      const connection = this.#idle.pop();
      if (!connection) return undefined;
      if (!connection.closed && now - connection.idleSince < IDLE_MS) {
        connection.unpark();
        return connection;
      }
      connection.close();
      this.#open.delete(connection);
    }
  }

  async #connect(call: UpstreamCall, timeoutMs: number): Promise<Http1Connection> {
    const abort = new AbortController();
    call.attach(undefined, abort);
    if (call.aborted) throw new UpstreamClosed("The request was aborted");
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, timeoutMs);
    try {
      const socket = this.#tls
        ? await abortable(Deno.connectTls({ hostname: this.#hostname, port: this.#port }), abort)
        : await Deno.connect({ hostname: this.#hostname, port: this.#port, signal: abort.signal });
      if (!this.#tls) (socket as Deno.TcpConn).setNoDelay(true);
      const connection = new Http1Connection(socket);
      connection.unpark();
      this.#open.add(connection);
      return connection;
    } catch (error) {
      if (call.aborted) throw new UpstreamClosed("The request was aborted", { cause: error });
      throw new ConnectError(
        timedOut
          ? `did not accept a connection within ${timeoutMs / 1000} s`
          : `refused the connection (${errorLine(error)})`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  #head(request: UpstreamRequest): Uint8Array {
    let text =
      `${request.method} ${this.#basePath}${request.path} HTTP/1.1\r\nhost: ${this.#host}\r\n`;
    for (const [name, value] of request.headers) {
      if (value.includes("\n") || value.includes("\r")) {
        throw new TypeError(`Header "${name}" has a line break in its value`);
      }
      text += `${name}: ${value}\r\n`;
    }
    if (request.body !== null || request.method === "POST" || request.method === "PUT") {
      text += `content-length: ${request.body?.byteLength ?? 0}\r\n`;
    }
    text += "\r\n";
    return encodeHead(text);
  }

  /** The bytes to write: head and body together when the body is small, else apart. */
  #parts(request: UpstreamRequest): Uint8Array[] {
    const head = this.#head(request);
    const body = request.body;
    if (body === null || body.byteLength === 0) return [head];
    if (body.byteLength > COALESCE_BYTES) return [head, body];
    return [concatBytes([head, body])];
  }

  #done(connection: Http1Connection, reusable: boolean): void {
    if (!reusable || this.#closed || this.#idle.length >= MAX_IDLE) {
      connection.close();
      this.#open.delete(connection);
      return;
    }
    this.#idle.push(connection);
    connection.park(() => {
      const index = this.#idle.indexOf(connection);
      if (index >= 0) this.#idle.splice(index, 1);
      this.#open.delete(connection);
    });
  }
}

const encoder = new TextEncoder();

/** Encodes a head; characters above 0x7f are bytes (header values are byte strings). */
function encodeHead(text: string): Uint8Array {
  // deno-lint-ignore no-control-regex
  if (!/[^\x00-\x7f]/.test(text)) return encoder.encode(text);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new TypeError("A request header holds a character above U+00FF");
    bytes[i] = code;
  }
  return bytes;
}

async function abortable<T extends Deno.Conn>(pending: Promise<T>, abort: AbortController) {
  if (abort.signal.aborted) throw abort.signal.reason;
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abort.signal.reason);
      pending.then((socket) => socket.close(), () => {});
    };
    abort.signal.addEventListener("abort", onAbort, { once: true });
    pending.then(resolve, reject).finally(() => abort.signal.removeEventListener("abort", onAbort));
  });
}
