/**
 * One error type for everything a client may be told, turned into OpenAI's JSON shape in one place.
 *
 * `common/` holds the helpers every other folder may use and that import nothing of the project:
 * this error type, byte helpers (`bytes.ts`), key digests (`digest.ts`), file lookup for
 * dropped-in strategies and plugins (`file_catalog.ts`) and logging (`log.ts`, `log_sink.ts`).
 *
 * @module
 */

/** OpenAI error `type` values the gateway uses. */
export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error"
  | "service_unavailable_error"
  | "timeout_error";

/** Optional parts of an {@link HttpError}. */
export interface HttpErrorOptions {
  /** The request parameter at fault, e.g. `"model"`. */
  param?: string;
  /** A machine-readable code, e.g. `"model_not_found"`. */
  code?: string;
  /** Extra response headers, e.g. `Retry-After`. */
  headers?: Record<string, string>;
  /** The underlying error, kept for logs and never shown to clients. */
  cause?: unknown;
}

/**
 * An error with an HTTP status and an OpenAI error type.
 *
 * @example
 * ```ts
 * throw new HttpError(404, "not_found_error", 'Unknown model "gpt-5"', { param: "model" });
 * ```
 */
export class HttpError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /** OpenAI error type. */
  readonly type: ErrorType;
  /** The parameter at fault, or `null`. */
  readonly param: string | null;
  /** Machine-readable code, or `null`. */
  readonly code: string | null;
  /** Extra response headers. */
  readonly headers: Record<string, string>;

  /**
   * Creates an error a client will see.
   *
   * @param status HTTP status code.
   * @param type OpenAI error type.
   * @param message Sentence-case message naming the offending value.
   * @param options Parameter, code, headers and cause.
   */
  constructor(status: number, type: ErrorType, message: string, options: HttpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HttpError";
    this.status = status;
    this.type = type;
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }
}

/** The JSON body of an OpenAI-shaped error. */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/**
 * Renders any thrown value as an OpenAI-shaped error body; unknown errors become a generic 500
 * with no stack trace or internal message.
 *
 * @param error What was thrown.
 * @returns The status, body and extra headers to answer with.
 */
export function errorPayload(
  error: unknown,
): { status: number; body: ErrorBody; headers: Record<string, string> } {
  if (error instanceof HttpError) {
    return {
      status: error.status,
      body: {
        error: { message: error.message, type: error.type, param: error.param, code: error.code },
      },
      headers: error.headers,
    };
  }
  return {
    status: 500,
    body: {
      error: {
        message: "The gateway failed to handle the request",
        type: "server_error",
        param: null,
        code: "internal_error",
      },
    },
    headers: {},
  };
}

/**
 * Turns any thrown value into an OpenAI-shaped JSON response.
 *
 * @param error What was thrown.
 * @param headers Headers to add (e.g. `x-request-id`).
 * @returns The response to send.
 */
export function errorResponse(error: unknown, headers?: HeadersInit): Response {
  const { status, body, headers: extra } = errorPayload(error);
  const out = new Headers(headers);
  out.set("content-type", "application/json");
  for (const [name, value] of Object.entries(extra)) out.set(name, value);
  return new Response(JSON.stringify(body), { status, headers: out });
}

/**
 * The first line of an error's message, for log lines and error messages.
 *
 * @param error Anything thrown.
 * @returns The text.
 */
export function errorLine(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0]! : String(error);
}
