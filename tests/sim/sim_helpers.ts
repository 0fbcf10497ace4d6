/**
 * Helpers for the simulator's tests: a fresh simulator per test, JSON posts, an SSE reader and
 * metrics scrapes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type SimOptions, type SimServer, startSimServer } from "../../sim/server.ts";

/** Fast timings for tests. */
export const FAST: SimOptions = { ttftMs: 2, itlMs: 2, prefillMsPerToken: 0 };

/** Runs `body` against a fresh simulator and always closes it. */
export async function withSim(
  options: SimOptions,
  body: (sim: SimServer) => Promise<void>,
): Promise<void> {
  const sim = await startSimServer({ ...FAST, ...options });
  try {
    await body(sim);
  } finally {
    await sim.close();
  }
}

/** Posts JSON (or a string) to the simulator. */
export function post(
  sim: SimServer,
  path: string,
  body: unknown,
  init: RequestInit = {},
): Promise<Response> {
  return fetch(`${sim.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-test": "yes" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

// deno-lint-ignore no-explicit-any -- JSON edge in tests
export async function json(response: Response): Promise<any> {
  return await response.json();
}

/** Reads SSE `data:` payloads one at a time. */
export class SseReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(response: Response) {
    assert.ok(response.body);
    this.#reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next payload, or `undefined` at the end of the stream. */
  async next(): Promise<string | undefined> {
    while (true) {
      const end = this.#buffer.indexOf("\n\n");
      if (end >= 0) {
        const event = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        assert.ok(event.startsWith("data: "), `Unexpected SSE event "${event}"`);
        return event.slice("data: ".length);
      }
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += value;
    }
  }

  /** All remaining payloads. */
  async rest(): Promise<string[]> {
    const events: string[] = [];
    for (let event = await this.next(); event !== undefined; event = await this.next()) {
      events.push(event);
    }
    return events;
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/** The simulator's `/metrics` text. */
export async function scrape(sim: SimServer): Promise<string> {
  const response = await fetch(`${sim.url}/metrics`);
  assert.equal(response.status, 200);
  return await response.text();
}

/** The value of the first sample named `name` whose labels contain `labels`. */
export function sample(text: string, name: string, labels = ""): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!line.includes(labels)) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

/** Scrapes until `predicate` holds, failing after `timeoutMs`. */
export async function scrapeUntil(
  sim: SimServer,
  predicate: (text: string) => boolean,
  timeoutMs = 5000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const text = await scrape(sim);
    if (predicate(text)) return text;
    if (Date.now() > deadline) throw new Error(`Metrics did not match in time:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
