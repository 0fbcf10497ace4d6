/**
 * Test helper: the gateway in front of one raw-socket server (see `raw_server.ts`), for upstream
 * misbehaviour that must be exact, and the checks that nothing leaked once a request ended.
 *
 * @module
 */
import assert from "node:assert/strict";
import { watchdog } from "../../gateway/watchdog.ts";
import { RawServer, type Script } from "./raw_server.ts";
import { type Stack, startStack } from "./stack.ts";

/** A gateway whose one model `m` is served by a raw server. */
export interface RawGateway {
  /** The gateway stack. */
  stack: Stack;
  /** The raw server. */
  server: RawServer;
  /** The gateway's chat completions URL. */
  chat: string;
}

/**
 * Runs a test against the gateway in front of a raw server running `script` for each
 * connection, with `max_concurrent: 1`, one attempt and short timeouts, then checks that nothing
 * leaked (see {@link assertSettled}).
 *
 * @param script The raw server's script.
 * @param test The test.
 * @param spec Spec keys to set or replace (or a function of the raw server's URL giving them).
 */
export async function withRawGateway(
  script: Script,
  test: (context: RawGateway) => Promise<void>,
  spec: Record<string, unknown> | ((url: string) => Record<string, unknown>) = {},
): Promise<void> {
  const server = new RawServer(script);
  const stack = await startStack({
    spec: () => ({
      models: { m: { servers: [{ url: server.url, max_concurrent: 1 }] } },
      retries: { max_attempts: 1 },
      timeouts: { first_byte: 2, idle: 1 },
      plugins: [],
      ...(typeof spec === "function" ? spec(server.url) : spec),
    }),
  });
  try {
    await test({ stack, server, chat: `${stack.url}/v1/chat/completions` });
    await assertSettled(stack);
  } finally {
    await stack.close();
    await server.close();
  }
}

/**
 * Waits (up to 3 s) until every server's in-flight count, slot queue and the watchdog are back
 * to zero, and fails if they are not.
 *
 * @param stack The gateway stack.
 */
export async function assertSettled(stack: Stack): Promise<void> {
  const deadline = performance.now() + 3_000;
  for (;;) {
    const busy = [...stack.gateway.pool.all()].filter((server) =>
      server.inFlight !== 0 || server.slots.length !== 0
    );
    if (busy.length === 0 && watchdog.size === 0) return;
    if (performance.now() > deadline) {
      assert.fail(
        `Leaked: ${
          busy.map((server) => `${server.url} in flight ${server.inFlight}`).join(", ")
        } watchdog ${watchdog.size}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A chat request body.
 *
 * @param options Whether to stream, and a marker the raw server can look for.
 * @returns The JSON text.
 */
export function chatBody(options: { stream?: boolean; marker?: string } = {}): string {
  return JSON.stringify({
    model: "m",
    messages: [{ role: "user", content: options.marker ?? "hi" }],
    stream: options.stream ?? false,
  });
}

/**
 * Posts a chat request to the gateway.
 *
 * @param url The chat URL.
 * @param body The JSON text.
 * @returns The response (body unread).
 */
export function postChat(url: string, body: string): Promise<Response> {
  return fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
}

/**
 * Checks an OpenAI-shaped error body.
 *
 * @param response The response.
 * @param expected The status, code and (a pattern of) the message.
 */
export async function assertOpenAiError(
  response: Response,
  expected: { status: number; code: string; message?: string | RegExp },
): Promise<void> {
  const body = await response.json();
  assert.equal(response.status, expected.status, JSON.stringify(body));
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
  assert.equal(body.error.code, expected.code);
  if (typeof expected.message === "string") assert.equal(body.error.message, expected.message);
  else if (expected.message) assert.match(body.error.message, expected.message);
}

/** A good JSON answer. */
export const GOOD =
  "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n" +
  '{"ok":true}';
