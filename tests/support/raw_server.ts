/**
 * Test helper: a raw TCP server on loopback whose every connection runs a script the test writes
 * (exact bytes, step by step), for testing the gateway's HTTP/1.1 client.
 *
 * @module
 */
import { Http1Pool, type UpstreamCall } from "../../upstream/http1_pool.ts";

/** A string with one character per byte (the server side's view of the wire). */
export function latin1(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

export function bytesOf(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0) & 0xff);
}

/** One accepted connection of {@link RawServer}, driven by the test's script. */
export class Peer {
  #buffer = "";
  #closed = false;
  constructor(readonly conn: Deno.Conn, readonly log: string[]) {}

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk).catch(() => null);
    if (n === null) return false;
    this.#buffer += latin1(chunk.subarray(0, n));
    return true;
  }

  /** Reads one request (head and content-length body) as a byte string; null at end of file. */
  async request(): Promise<string | null> {
    for (;;) {
      const headEnd = this.#buffer.indexOf("\r\n\r\n");
      if (headEnd >= 0) {
        const length = /\r\ncontent-length: (\d+)\r\n/i.exec(this.#buffer.slice(0, headEnd + 2));
        const end = headEnd + 4 + Number(length?.[1] ?? 0);
        if (this.#buffer.length >= end) {
          const request = this.#buffer.slice(0, end);
          this.#buffer = this.#buffer.slice(end);
          this.log.push(request);
          return request;
        }
      }
      if (!(await this.#fill())) return null;
    }
  }

  /** Reads one request's head only (its body is left unread); null at end of file. */
  async head(): Promise<string | null> {
    for (;;) {
      const headEnd = this.#buffer.indexOf("\r\n\r\n");
      if (headEnd >= 0) {
        const head = this.#buffer.slice(0, headEnd + 4);
        this.#buffer = this.#buffer.slice(headEnd + 4);
        return head;
      }
      if (!(await this.#fill())) return null;
    }
  }

  /** Writes a byte string fully. */
  async write(data: string): Promise<void> {
    const bytes = bytesOf(data);
    for (let offset = 0; offset < bytes.length;) {
      offset += await this.conn.write(bytes.subarray(offset));
    }
  }

  /** Resolves when the client closed the connection. */
  async eof(): Promise<void> {
    while (await this.#fill());
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.conn.close();
  }
}

export type Script = (peer: Peer, index: number) => Promise<void>;

/**
 * A raw TCP server on loopback that runs `script` for each connection it accepts; the connection
 * closes when the script returns.
 */
export class RawServer {
  readonly listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  /** Every request received, in order. */
  readonly requests: string[] = [];
  /** Connections accepted so far (the script's `index` counts them from 0). */
  accepted = 0;
  readonly #peers: Peer[] = [];
  readonly #scripts: Promise<void>[] = [];
  readonly #loop: Promise<void>;

  constructor(script: Script) {
    this.#loop = (async () => {
      try {
        for await (const conn of this.listener) {
          conn.setNoDelay(true);
          const peer = new Peer(conn, this.requests);
          this.#peers.push(peer);
          // A script may fail writing to a socket the client closed; the test checks the client.
          const run = script(peer, this.accepted++).catch(() => {});
          this.#scripts.push(run.finally(() => peer.close()));
        }
      } catch {
        // The listener was closed.
      }
    })();
  }

  get url(): string {
    return `http://127.0.0.1:${this.listener.addr.port}`;
  }

  async close(): Promise<void> {
    this.listener.close();
    await this.#loop;
    for (const peer of this.#peers) peer.close();
    await Promise.all(this.#scripts);
  }
}

/** A script answering each request on its connection with `answer(request, connection index)`. */
export function answering(answer: (request: string, index: number) => string): Script {
  return async (peer, index) => {
    for (let request = await peer.request(); request; request = await peer.request()) {
      await peer.write(answer(request, index));
    }
  };
}

/** Answers `ok`, naming the connection's index in `x-conn`. */
export function ok(_request: string, index: number): string {
  return `HTTP/1.1 200 OK\r\nx-conn: ${index}\r\ncontent-length: 2\r\n\r\nok`;
}

export async function withServer(
  script: Script,
  test: (pool: Http1Pool, server: RawServer) => Promise<void>,
  path = "",
): Promise<void> {
  const server = new RawServer(script);
  const pool = new Http1Pool(server.url + path);
  try {
    await test(pool, server);
  } finally {
    pool.close();
    for (const step of pending) step.resolve();
    await server.close();
  }
}

export function post(
  pool: Http1Pool,
  headers: [string, string][] = [],
  body?: string,
): UpstreamCall {
  return pool.send(
    { method: "POST", path: "/v1/x", headers, body: body === undefined ? null : bytesOf(body) },
    { connectTimeoutMs: 5_000 },
  );
}

/** The answer's `x-conn` header and body. */
export async function answer(call: UpstreamCall): Promise<[string | undefined, string]> {
  const response = await call.response;
  const body = response.body ? latin1(await response.body.bytes()) : "";
  return [response.headers.find(([name]) => name === "x-conn")?.[1], body];
}

/** Deferreds not yet resolved; {@link withServer} resolves them so no script waits forever. */
const pending = new Set<PromiseWithResolvers<void>>();

export function deferred(): PromiseWithResolvers<void> {
  const step = Promise.withResolvers<void>();
  pending.add(step);
  step.promise.then(() => pending.delete(step));
  return step;
}
