/**
 * The fuzzer's judge: what a client may receive for a case. A valid (unmutated) answer must
 * arrive exactly. Otherwise the client gets either an OpenAI-shaped 502/504 with an upstream
 * code, or an answer whose status is one the server sent; a stream's events are then whole
 * (the server's own events, then at most one error event), unless a mutation changed the
 * payload's bytes themselves (which the gateway passes on as they are).
 *
 * @module
 */
import type { FuzzCase } from "./upstream_cases.ts";

const UPSTREAM_CODES = new Set([
  "upstream_bad_response",
  "upstream_unreachable",
  "upstream_body_error",
  "upstream_timeout",
  "upstream_idle_timeout",
]);
/** Mutations after which the payload's bytes may differ from the valid answer's. */
const PAYLOAD_CHANGES = new Set(["flip", "truncate", "extra", "byte", "chunk_crlf"]);

/** What the client got. */
export interface ClientAnswer {
  /** The status. */
  status: number;
  /** The body, or `undefined` when reading it failed (the answer was cut). */
  text: string | undefined;
}

/**
 * Judges one answer.
 *
 * @param fuzz The case.
 * @param answer What the client got.
 * @returns A label for the tally, and a failure description if the answer broke the rules.
 */
export function checkAnswer(
  fuzz: FuzzCase,
  answer: ClientAnswer,
): { label: string; failure?: string } {
  const { status, text } = answer;
  const error = errorCode(text);
  if (fuzz.mutations.length === 0) {
    if (status === fuzz.status && text === fuzz.payload) return { label: "exact" };
    return { label: "wrong", failure: `valid answer changed: ${status} ${clip(text)}` };
  }
  if ((status === 502 || status === 504) && error !== undefined) {
    if (!UPSTREAM_CODES.has(error)) {
      return { label: `${status} ${error}`, failure: `code ${error}` };
    }
    return { label: `${status} ${error}` };
  }
  const label = status === fuzz.status ? `passed ${status}` : "passed a mutated status";
  if (!sentStatuses(fuzz.wire).includes(status)) {
    return { label, failure: `status ${status} was never sent: ${clip(text)}` };
  }
  if (text === undefined || fuzz.mutations.some((m) => PAYLOAD_CHANGES.has(m))) return { label };
  if (!fuzz.stream) {
    return fuzz.payload.startsWith(text) || text === ""
      ? { label }
      : { label, failure: `body changed: ${clip(text)}` };
  }
  return { label, ...sseFailure(fuzz, text) };
}

/** Whole events only: the server's own, in order, then at most one error event. */
function sseFailure(fuzz: FuzzCase, text: string): { failure?: string } {
  if (text !== "" && !text.endsWith("\n\n")) return { failure: `partial event: ${clip(text)}` };
  const events = text.split("\n\n").slice(0, -1);
  const expected = fuzz.payload.split("\n\n").slice(0, -1);
  for (const [i, event] of events.entries()) {
    if (event === expected[i]) continue;
    const isLast = i === events.length - 1;
    const code = event.startsWith("data: ") ? errorCode(event.slice(6)) : undefined;
    if (isLast && code !== undefined && UPSTREAM_CODES.has(code.replace("_total_", "_"))) continue;
    if (isLast && code === "upstream_stream_error") continue;
    return { failure: `event ${i} is not the server's nor an error event: ${clip(event)}` };
  }
  return {};
}

function errorCode(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const body = JSON.parse(text);
    const error = body?.error;
    const keys = error && typeof error === "object" ? Object.keys(error).sort().join() : "";
    return keys === "code,message,param,type" && typeof error.code === "string"
      ? error.code
      : undefined;
  } catch {
    return undefined;
  }
}

function sentStatuses(wire: string): number[] {
  return [...wire.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((match) => Number(match[1]));
}

function clip(text: string | undefined): string {
  if (text === undefined) return "(cut)";
  return JSON.stringify(text.length > 160 ? `${text.slice(0, 160)}...` : text);
}
