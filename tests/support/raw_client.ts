/**
 * Test helper: one HTTP/1.1 keep-alive connection, held open, so a test knows which of the
 * gateway's workers (which share the port) answers each request sent on it. Bodies are read whole
 * (`Content-Length` or chunked); one request at a time.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An answer read off the connection. */
export interface RawAnswer {
  /** Status. */
  readonly status: number;
  /** Headers, names lower-cased. */
  readonly headers: Headers;
  /** The body (chunked bodies de-chunked). */
  readonly body: string;
}

/** One kept-alive connection. */
export class RawConnection {
  readonly #conn: Deno.TcpConn;
  #buffered = new Uint8Array(0);
  /** The worker that answered `/health` on this connection. */
  worker = "";

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /**
   * Connects and asks `/health` which worker holds the connection.
   *
   * @param url The gateway's base URL.
   * @returns The connection.
   */
  static async open(url: string): Promise<RawConnection> {
    const { hostname, port } = new URL(url);
    const connection = new RawConnection(await Deno.connect({ hostname, port: Number(port) }));
    const health = await connection.request("GET", "/health");
    connection.worker = health.headers.get("x-llmstream-worker") ?? "";
    return connection;
  }

  /**
   * Sends a request and reads its answer whole.
   *
   * @param method Method.
   * @param path Path.
   * @param body A JSON body, if any.
   * @param headers Extra headers.
   * @returns The answer.
   */
  async request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<RawAnswer> {
    const payload = body === undefined ? "" : JSON.stringify(body);
    const lines = [`${method} ${path} HTTP/1.1`, "host: localhost"];
    if (body !== undefined) lines.push("content-type: application/json");
    lines.push(`content-length: ${encoder.encode(payload).byteLength}`);
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    await this.#conn.write(encoder.encode(`${lines.join("\r\n")}\r\n\r\n${payload}`));
    const head = decoder.decode(await this.#until(encoder.encode("\r\n\r\n")));
    const [statusLine, ...fields] = head.split("\r\n");
    const status = Number(statusLine!.split(" ")[1]);
    const answerHeaders = new Headers();
    for (const field of fields) {
      const colon = field.indexOf(":");
      if (colon > 0) answerHeaders.append(field.slice(0, colon), field.slice(colon + 1).trim());
    }
    let text = "";
    if (answerHeaders.get("transfer-encoding")?.includes("chunked")) {
      for (;;) {
        const size = parseInt(decoder.decode(await this.#until(encoder.encode("\r\n"))), 16);
        const chunk = await this.#take(size + 2);
        if (size === 0) break;
        text += decoder.decode(chunk.subarray(0, size));
      }
    } else {
      text = decoder.decode(await this.#take(Number(answerHeaders.get("content-length") ?? 0)));
    }
    return { status, headers: answerHeaders, body: text };
  }

  /** Closes the connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(65536);
    const read = await this.#conn.read(chunk);
    if (read === null) throw new Error("The connection closed");
    const next = new Uint8Array(this.#buffered.length + read);
    next.set(this.#buffered);
    next.set(chunk.subarray(0, read), this.#buffered.length);
    this.#buffered = next;
  }

  /** Reads through `marker` and returns what came before it. */
  async #until(marker: Uint8Array): Promise<Uint8Array> {
    for (;;) {
      const at = indexOf(this.#buffered, marker);
      if (at >= 0) {
        const before = this.#buffered.slice(0, at);
        this.#buffered = this.#buffered.slice(at + marker.length);
        return before;
      }
      await this.#fill();
    }
  }

  async #take(count: number): Promise<Uint8Array> {
    while (this.#buffered.length < count) await this.#fill();
    const taken = this.#buffered.slice(0, count);
    this.#buffered = this.#buffered.slice(count);
    return taken;
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Opens connections until `perWorker` are held on each of `workers` workers (extras are closed).
 *
 * @param url The gateway's base URL.
 * @param options Workers and connections wanted on each.
 * @returns Connections grouped by worker id.
 */
export async function connectionsPerWorker(
  url: string,
  options: { workers: number; perWorker: number },
): Promise<Map<string, RawConnection[]>> {
  const groups = new Map<string, RawConnection[]>();
  const full = () =>
    groups.size === options.workers &&
    [...groups.values()].every((group) => group.length >= options.perWorker);
  for (let tries = 0; !full(); tries++) {
    if (tries > 200 * options.workers * options.perWorker) {
      throw new Error(`Connections did not reach every worker: ${[...groups.keys()]}`);
    }
    const connection = await RawConnection.open(url);
    const group = groups.get(connection.worker) ?? [];
    if (group.length >= options.perWorker) connection.close();
    else groups.set(connection.worker, [...group, connection]);
  }
  return groups;
}
