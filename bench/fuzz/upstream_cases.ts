/**
 * The fuzzer's cases: a valid upstream answer (plain JSON, chunked JSON, SSE chunked or ended by
 * close, HTTP/1.0), then seeded mutations of its head, framing and body, and the ways it is
 * delivered (split into pieces, stalled, cut short).
 *
 * @module
 */
import { seededRandom } from "../../strategies/_seeded_random.ts";

/** The valid answer a case starts from. */
export type Template = "json_length" | "json_chunked" | "sse_chunked" | "sse_close" | "http10";

/** One generated upstream answer. */
export interface FuzzCase {
  /** Case number. */
  index: number;
  /** Whether the client asks for a stream. */
  stream: boolean;
  /** The answer it started from. */
  template: Template;
  /** Mutations applied, by name (empty: the answer is valid and must arrive exactly). */
  mutations: string[];
  /** The bytes the server sends, as a byte string. */
  wire: string;
  /** Where the wire is cut into separate writes. */
  cuts: number[];
  /** After the wire: close the connection, or keep it open and silent (a stall). */
  after: "close" | "stall";
  /** The status the valid answer had. */
  status: number;
  /** The body the valid answer carried. */
  payload: string;
}

const TEMPLATES: Template[] = ["json_length", "json_chunked", "sse_chunked", "sse_close", "http10"];
const STATUSES = [200, 200, 200, 201, 400, 404, 429, 500, 503];
const HEAD_MUTATIONS = [
  "byte",
  "control_in_value",
  "status",
  "status_text",
  "bare_lf",
  "obs_fold",
  "no_colon",
  "bad_name",
  "many_headers",
  "huge_head",
  "interim",
  "switching",
  "version",
  "length_conflict",
  "length_huge",
  "length_bad",
  "te_and_length",
  "nbsp",
] as const;
const BODY_MUTATIONS = [
  "chunk_zeros",
  "chunk_overflow",
  "chunk_hex",
  "chunk_crlf",
  "truncate",
  "extra",
  "flip",
] as const;

/**
 * Makes case `index` of a seeded run.
 *
 * @param seed The run's seed.
 * @param index The case number.
 * @returns The case.
 */
export function makeCase(seed: number, index: number): FuzzCase {
  const random = seededRandom(`${seed}:${index}`);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const template = pick(TEMPLATES);
  const sse = template.startsWith("sse");
  const status = pick(STATUSES);
  const payload = sse
    ? ssePayload(random)
    : JSON.stringify({ id: index, text: "x".repeat(pick([2, 40, 5000])) });
  const mutations: string[] = [];
  const valid = random() < 0.25;
  let headLines = [
    `${template === "http10" ? "HTTP/1.0" : "HTTP/1.1"} ${status} Reason`,
    `content-type: ${
      sse ? pick(["text/event-stream", "Text/Event-Stream; charset=utf-8"]) : "application/json"
    }`,
    "x-request-id: abc",
  ];
  let body: string;
  const chunked = template === "json_chunked" || template === "sse_chunked";
  if (chunked) {
    headLines.push("transfer-encoding: chunked");
    body = chunk(payload, random);
  } else if (template === "sse_close") {
    headLines.push("connection: close");
    body = payload;
  } else {
    headLines.push(`content-length: ${payload.length}`);
    body = payload;
  }
  let eol = "\r\n";
  const rounds = valid ? 0 : 1 + Math.floor(random() * 3);
  for (let round = 0; round < rounds; round++) {
    if (random() < 0.6) {
      const mutation = pick(HEAD_MUTATIONS);
      mutations.push(mutation);
      headLines = mutateHead(headLines, mutation, random);
      if (mutation === "bare_lf") eol = "\n";
    } else {
      const picked = pick(BODY_MUTATIONS);
      // Chunk-size faults in a body that is not chunked are just changed payload bytes.
      const mutation = !chunked && picked.startsWith("chunk") ? "flip" : picked;
      mutations.push(mutation);
      body = mutateBody(body, mutation, random, chunked);
    }
  }
  const wire = headLines.join(eol) + eol + eol + body;
  // Cuts fall before any extra bytes after the body, which come with the body's end.
  const cutEnd = mutations.includes("extra")
    ? wire.lastIndexOf("HTTP/1.1 200 OK\r\n\r\nextra")
    : wire.length;
  const cuts = Array.from(
    { length: Math.floor(random() * 4) },
    () => Math.floor(random() * cutEnd),
  )
    .sort((a, b) => a - b);
  const after = random() < 0.15 ? "stall" : "close";
  if (after === "stall") mutations.push("stall");
  return { index, stream: sse, template, mutations, wire, cuts, after, status, payload };
}

function ssePayload(random: () => number): string {
  let out = "";
  const events = 1 + Math.floor(random() * 6);
  for (let i = 0; i < events; i++) {
    out += `data: {"i":${i},"t":"${"y".repeat(Math.floor(random() * 300))}"}\n\n`;
  }
  return out + "data: [DONE]\n\n";
}

function chunk(payload: string, random: () => number): string {
  let out = "";
  for (let at = 0; at < payload.length;) {
    const size = Math.min(payload.length - at, 1 + Math.floor(random() * 200));
    out += `${size.toString(16)}\r\n${payload.slice(at, at + size)}\r\n`;
    at += size;
  }
  return out + "0\r\n\r\n";
}

function mutateHead(lines: string[], mutation: string, random: () => number): string[] {
  const out = [...lines];
  const at = 1 + Math.floor(random() * (out.length - 1));
  const byte = () => String.fromCharCode(Math.floor(random() * 256));
  switch (mutation) {
    case "byte": {
      const line = out[at]!;
      const i = Math.floor(random() * line.length);
      out[at] = line.slice(0, i) + byte() + line.slice(i + 1);
      break;
    }
    case "control_in_value":
      out.splice(
        at,
        0,
        `x-c: a${String.fromCharCode(pickOf(random, [0, 1, 8, 11, 13, 27, 31, 127]))}b`,
      );
      break;
    case "status": {
      // The final status line (interim ones come before it).
      const final = out.findIndex((line) => / Reason$/.test(line));
      if (final < 0) break;
      out[final] = out[final]!.replace(
        / \d{3} /,
        ` ${String(Math.floor(random() * 1000)).padStart(3, "0")} `,
      );
      break;
    }
    case "status_text":
      out[0] = out[0]!.replace("Reason", `Re${byte()}son`);
      break;
    case "obs_fold":
      out.splice(at, 0, " folded");
      break;
    case "no_colon":
      out.splice(at, 0, "nocolon");
      break;
    case "bad_name":
      out.splice(at, 0, `x${byte()}y: z`);
      break;
    case "many_headers":
      for (let i = 0; i < 50 + random() * 100; i++) out.splice(1, 0, `x-h${i}: v`);
      break;
    case "huge_head":
      out.splice(1, 0, `x-big: ${"b".repeat(60_000 + Math.floor(random() * 10_000))}`);
      break;
    case "interim":
      out.unshift("HTTP/1.1 100 Continue", "", `HTTP/1.1 103 Early Hints`, "link: </x>", "");
      break;
    case "switching":
      out.unshift("HTTP/1.1 101 Switching Protocols", "upgrade: h2c", "");
      break;
    case "version":
      out[0] = out[0]!.replace(
        /HTTP\/1\.[01]/,
        pickOf(random, ["HTTP/2", "HTTP/1.2", "http/1.1", "HTTP/1.1 "]),
      );
      break;
    case "length_conflict":
      out.push("content-length: 7");
      break;
    case "length_huge":
      out.push("content-length: 999999999999999");
      break;
    case "length_bad":
      out.push(
        pickOf(random, ["content-length: -1", "content-length: 0x10", "content-length: 1 2"]),
      );
      break;
    case "te_and_length":
      out.push("transfer-encoding: chunked", "content-length: 5");
      break;
    case "nbsp":
      out.splice(at, 0, "x-n: \xa0v\xa0");
      break;
  }
  return out;
}

function mutateBody(
  body: string,
  mutation: string,
  random: () => number,
  chunked: boolean,
): string {
  const at = Math.floor(random() * body.length);
  switch (mutation) {
    case "chunk_zeros":
      return chunked ? body.replace(/(^|\r\n)([0-9a-f]+)\r\n/g, "$1000$2\r\n") : body;
    case "chunk_overflow":
      return `${"f".repeat(13 + Math.floor(random() * 10))}\r\n${body}`;
    case "chunk_hex":
      return `z${body}`;
    case "chunk_crlf":
      return body.replace("\r\n", "\n\r");
    case "truncate":
      return body.slice(0, at);
    case "extra":
      return body + "HTTP/1.1 200 OK\r\n\r\nextra";
    default:
      return body.slice(0, at) + String.fromCharCode(Math.floor(random() * 256)) +
        body.slice(at + 1);
  }
}

function pickOf<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}
