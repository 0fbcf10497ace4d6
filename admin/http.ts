/**
 * The admin API's HTTP edges: reading JSON bodies (400 when malformed, 422 when the content is
 * wrong, with the zod path), answering JSON, and turning the spec store's failures into
 * {@link HttpError}s.
 *
 * @module
 */
import type { z } from "zod";
import { SpecError } from "../config/load.ts";
import { SpecWriteError } from "../config/spec_file.ts";
import { SpecConflictError } from "../config/store.ts";
import { HttpError } from "../common/errors.ts";
import { SpecEditError } from "./spec_document.ts";

/** Admin bodies larger than this are refused (413). */
const MAX_ADMIN_BODY = 1024 * 1024;

/** The header that says whether a change reached the spec file. */
export const PERSISTED_HEADER = "x-llmstream-persisted";

/**
 * Reads a JSON body and validates it.
 *
 * @param request The client's request.
 * @param schema What the body must look like.
 * @returns The validated body.
 * @throws HttpError 400 (not JSON, not an object), 413 (too large), 422 (wrong content).
 */
export async function readBody<T extends z.ZodType>(
  request: Request,
  schema: T,
): Promise<z.output<T>> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  const text = declared > MAX_ADMIN_BODY ? "" : await request.text();
  if (declared > MAX_ADMIN_BODY || text.length > MAX_ADMIN_BODY) {
    throw new HttpError(413, "invalid_request_error", "The admin request body is over 1 MiB", {
      code: "request_too_large",
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new HttpError(
      400,
      "invalid_request_error",
      `The body is not valid JSON: ${error instanceof Error ? error.message : error}`,
      { code: "invalid_json" },
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpError(400, "invalid_request_error", "The body must be a JSON object", {
      code: "invalid_json",
    });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) =>
      `${issue.path.map(String).join(".") || "body"}: ${issue.message}`
    );
    throw new HttpError(422, "invalid_request_error", `Invalid body: ${problems.join("; ")}`, {
      code: "invalid_body",
      param: parsed.error.issues[0]?.path.map(String).join(".") || "body",
    });
  }
  return parsed.data;
}

/**
 * Answers with JSON.
 *
 * @param body The value to send.
 * @param status HTTP status.
 * @param headers Extra headers.
 * @returns The response.
 */
export function jsonResponse(
  body: unknown,
  status: number,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * Turns a failure of the spec store into what the client is told; other errors pass through.
 *
 * @param error What the store threw.
 * @returns An {@link HttpError}, or `error` itself.
 */
export function storeFailure(error: unknown): unknown {
  if (error instanceof SpecError) {
    return new HttpError(
      422,
      "invalid_request_error",
      `The change was refused: ${error.problems.join("; ")}`,
      { code: "invalid_spec", param: /^(.*?): /.exec(error.problems[0] ?? "")?.[1] ?? "spec" },
    );
  }
  if (error instanceof SpecWriteError) {
    return new HttpError(
      503,
      "service_unavailable_error",
      `The change was not applied: ${error.message}; the spec file and the running config ` +
        "are unchanged",
      { code: "spec_write_failed", cause: error },
    );
  }
  if (error instanceof SpecConflictError) {
    return new HttpError(409, "invalid_request_error", error.message, { code: "spec_conflict" });
  }
  if (error instanceof SpecEditError) {
    return new HttpError(409, "invalid_request_error", error.message, {
      code: "spec_not_editable",
    });
  }
  return error;
}
