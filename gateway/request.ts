/**
 * Reads an inference request once: the raw body bytes (kept for byte-for-byte forwarding), the
 * parsed JSON and the model name, with OpenAI-shaped errors for bad input.
 *
 * @module
 */
import type { RequestFacts } from "../strategies/types.ts";
import { concatBytes } from "../common/bytes.ts";
import { HttpError } from "../common/errors.ts";
import { watchdog } from "./watchdog.ts";

/** An inference request's body, read and parsed once. */
export interface ParsedBody {
  /** The bytes as the client sent them. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** The parsed JSON object. */
  readonly json: Record<string, unknown>;
  /** The `model` field. */
  readonly model: string;
}

/** Options for {@link readInferenceBody}. */
export interface ReadBodyOptions {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Milliseconds the client has to send the whole body (408 after). */
  timeoutMs: number;
}

/**
 * Reads and parses an inference request body.
 *
 * @param request The client's request.
 * @param options The body size limit.
 * @returns The bytes, the JSON and the model name.
 * @throws HttpError 413 when too large, 400 when not a JSON object or `model` is missing.
 */
export async function readInferenceBody(
  request: Request,
  options: ReadBodyOptions,
): Promise<ParsedBody> {
  const bytes = await readLimited(request, options);
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new HttpError(
      400,
      "invalid_request_error",
      `The request body is not valid JSON: ${error instanceof Error ? error.message : error}`,
      { code: "invalid_json" },
    );
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new HttpError(400, "invalid_request_error", "The request body must be a JSON object", {
      code: "invalid_json",
    });
  }
  const body = json as Record<string, unknown>;
  const model = body["model"];
  if (model === undefined) {
    throw new HttpError(400, "invalid_request_error", 'The request body has no "model" field', {
      param: "model",
      code: "missing_model",
    });
  }
  if (typeof model !== "string" || model === "") {
    throw new HttpError(
      400,
      "invalid_request_error",
      `The "model" field must be a non-empty string, not ${JSON.stringify(model)}`,
      { param: "model", code: "invalid_model" },
    );
  }
  return { bytes, json: body, model };
}

const decoder = new TextDecoder();

/** Reads a body, refusing it with 413 as soon as it passes the limit, or 408 when too slow. */
async function readLimited(
  request: Request,
  options: ReadBodyOptions,
): Promise<Uint8Array<ArrayBuffer>> {
  const { maxBytes } = options;
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw tooLarge(declared, maxBytes);
  const started = performance.now();
  if (declared <= maxBytes) {
    // The client said how much it sends: Deno reads it natively, bounded by the limit. The body
    // deadline is checked by the shared watchdog rather than a timer per request.
    const pending = request.bytes();
    let fail: ((error: HttpError) => void) | undefined;
    const watched = {
      check(now: number): void {
        if (now - started > options.timeoutMs) fail?.(tooSlow(options.timeoutMs));
      },
    };
    watchdog.add(watched);
    try {
      return await new Promise<Uint8Array<ArrayBuffer>>((resolve, reject) => {
        fail = reject;
        pending.then(resolve, reject);
      });
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new HttpError(400, "invalid_request_error", "The request body could not be read", {
        code: "invalid_body",
        cause: error,
      });
    } finally {
      watchdog.delete(watched);
    }
  }
  // No length given (a chunked body, or none): read it as a stream, counting against the limit.
  // (`request.body` is touched only here: once it exists, `bytes()` loses its native fast path.)
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  let timedOut = false;
  const watched = {
    check(now: number): void {
      if (timedOut || now - started <= options.timeoutMs) return;
      timedOut = true;
      reader.cancel().catch(() => {});
    },
  };
  watchdog.add(watched);
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let size = 0;
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      size += chunk.value.byteLength;
      if (size > maxBytes) {
        reader.cancel().catch(() => {});
        throw tooLarge(size, maxBytes);
      }
      chunks.push(chunk.value as Uint8Array<ArrayBuffer>);
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    if (timedOut) throw tooSlow(options.timeoutMs);
    throw new HttpError(400, "invalid_request_error", "The request body could not be read", {
      code: "invalid_body",
      cause: error,
    });
  } finally {
    watchdog.delete(watched);
  }
  if (timedOut) throw tooSlow(options.timeoutMs);
  return chunks.length === 1 ? chunks[0]! : concatBytes(chunks);
}

function tooSlow(timeoutMs: number): HttpError {
  return new HttpError(
    408,
    "invalid_request_error",
    `The client did not send the request body within ${timeoutMs / 1000} s`,
    { code: "request_timeout" },
  );
}

function tooLarge(size: number, maxBytes: number): HttpError {
  return new HttpError(
    413,
    "invalid_request_error",
    `The request body is larger than the limit of ${maxBytes} bytes` +
      (Number.isFinite(size) ? ` (at least ${size} bytes)` : ""),
    { code: "request_too_large" },
  );
}

/** Options for {@link requestFacts}. */
export interface FactsOptions {
  /** The endpoint path. */
  path: string;
  /** The client's request headers. */
  headers: Headers;
}

/**
 * Builds the request facts a strategy sees; the prompt text is computed on first use.
 *
 * @param parsed The parsed body.
 * @param options The endpoint path and the client's headers.
 * @returns The facts.
 */
export function requestFacts(parsed: ParsedBody, options: FactsOptions): RequestFacts {
  let prompt: string | undefined;
  return {
    model: parsed.model,
    path: options.path,
    headers: options.headers,
    body: parsed.json,
    prompt(): string {
      prompt ??= promptText(parsed.json);
      return prompt;
    },
  };
}

/**
 * The prompt text of a chat, completion or embedding body: message contents joined by newlines,
 * or `prompt`/`input` as text.
 *
 * @param body The parsed body.
 * @returns The text, empty when there is none.
 */
export function promptText(body: Readonly<Record<string, unknown>>): string {
  const messages = body["messages"];
  if (Array.isArray(messages)) {
    return messages.map((message) => contentText((message as { content?: unknown })?.content))
      .join("\n");
  }
  return contentText(body["prompt"] ?? body["input"]);
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) =>
      typeof part === "string" ? part : typeof part?.text === "string" ? part.text : ""
    ).join("\n");
  }
  return "";
}
