/**
 * Test helper: a client on a raw socket that reads only when told, to be exactly as slow as a
 * test needs (a `fetch` body buffers ahead).
 *
 * @module
 */
import { ChunkedDecoder } from "../../upstream/http1_chunked.ts";

/** One request over its own connection. */
export class PacedClient {
  readonly #conn: Deno.TcpConn;
  #head = "";
  #pending = new Uint8Array(0);
  readonly #decoder = new ChunkedDecoder();
  /** Body bytes read so far (de-chunked), as text. */
  body = "";
  /** Whether the response ended (last chunk, or the connection closed). */
  ended = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /**
   * Connects and sends a POST with a JSON body.
   *
   * @param url The full URL.
   * @param body The JSON text.
   * @returns The client, with the request sent.
   */
  static async post(url: string, body: string): Promise<PacedClient> {
    const target = new URL(url);
    const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
    const bytes = new TextEncoder().encode(body);
    const head = `POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\n` +
      `content-type: application/json\r\ncontent-length: ${bytes.length}\r\n\r\n`;
    await conn.write(new TextEncoder().encode(head));
    await conn.write(bytes);
    return new PacedClient(conn);
  }

  /** The response status (reads the head first if needed). */
  async status(): Promise<number> {
    while (!this.#head.includes("\r\n\r\n")) {
      if (!(await this.#read())) break;
    }
    return Number(this.#head.slice(9, 12));
  }

  /**
   * Reads until the body holds `text` or the response ends.
   *
   * @param text What to wait for.
   * @returns Whether it arrived.
   */
  async readUntil(text: string): Promise<boolean> {
    await this.status();
    while (!this.body.includes(text)) {
      if (this.ended || !(await this.#read())) return this.body.includes(text);
    }
    return true;
  }

  /** Reads to the end of the response (or until the connection closes). */
  async readAll(): Promise<string> {
    await this.status();
    while (!this.ended && await this.#read());
    return this.body;
  }

  /** Closes the connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }

  async #read(): Promise<boolean> {
    const buffer = new Uint8Array(256 * 1024);
    const n = await this.#conn.read(buffer).catch(() => null);
    if (n === null) {
      this.ended = true;
      return false;
    }
    let bytes = buffer.subarray(0, n);
    if (!this.#head.includes("\r\n\r\n")) {
      const text = String.fromCharCode(...bytes.subarray(0, Math.min(n, 4096)));
      const end = (this.#head + text).indexOf("\r\n\r\n");
      if (end < 0) {
        this.#head += text;
        return true;
      }
      const fromHead = end + 4 - this.#head.length;
      this.#head = this.#head + text.slice(0, fromHead);
      bytes = bytes.subarray(fromHead);
    }
    const input = new Uint8Array(this.#pending.length + bytes.length);
    input.set(this.#pending);
    input.set(bytes, this.#pending.length);
    const { consumed, payload } = this.#decoder.decode(input);
    for (const part of payload) this.body += new TextDecoder().decode(part);
    this.#pending = input.slice(consumed);
    if (this.#decoder.done) this.ended = true;
    return true;
  }
}
