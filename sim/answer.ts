/**
 * Answers to inference requests: engine sinks that write SSE chunks as tokens are sampled, or one
 * JSON body at the end.
 *
 * @module
 */

import type { Engine, EngineJob, EngineRequest, EngineSink } from "./engine/engine.ts";
import {
  type AnswerId,
  completionBody,
  embeddingBody,
  type Endpoint,
  errorResponse,
  type Usage,
  usageBody,
} from "./openai.ts";
import type { FinishReason } from "./engine/stats.ts";
import { tokenText } from "./tokens.ts";

/** How the server sees and steers its open answers. */
export interface AnswerHooks {
  /** A stream wrote one SSE event. */
  wrote(): void;
  /** The answer ended on any path; the server forgets it. */
  ended(answer: Answer): void;
}

/** What one answer produces. */
export interface AnswerSpec {
  /** The endpoint answered. */
  endpoint: Endpoint;
  /** Identity echoed in every chunk. */
  id: AnswerId;
  /** The engine job. */
  job: EngineJob;
  /** Texts to embed (embeddings only). */
  inputs: readonly string[];
  /** Streamed answers end with a usage chunk. */
  includeUsage: boolean;
  /** Usage reports the prompt tokens found in the prefix cache. */
  promptTokensDetails: boolean;
  /** Close the stream abruptly after this many token chunks. */
  dropAfterTokens: number | undefined;
}

/** An answer in progress that the server can kill. */
export interface Answer {
  /** Drops the answer like a killed process would. */
  kill(): void;
}

const encoder = new TextEncoder();

/**
 * Starts a streamed answer: submits the job and returns the SSE response at once.
 *
 * @param engine The engine to run the job on.
 * @param spec What to produce.
 * @param options Server hooks and the client's disconnect signal.
 * @returns The answer (to kill it) and its response.
 */
export function streamAnswer(
  engine: Engine,
  spec: AnswerSpec,
  options: { hooks: AnswerHooks; signal: AbortSignal },
): { answer: Answer; response: Response } {
  const answer = new SseAnswer(spec, options.hooks);
  const response = new Response(answer.stream, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
  answer.start(engine, options.signal);
  return { answer, response };
}

class SseAnswer implements EngineSink, Answer {
  readonly stream: ReadableStream<Uint8Array>;
  readonly #spec: AnswerSpec;
  readonly #hooks: AnswerHooks;
  readonly #head: string;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #request: EngineRequest | undefined;
  #ended = false;
  #written = 0;

  constructor(spec: AnswerSpec, hooks: AnswerHooks) {
    this.#spec = spec;
    this.#hooks = hooks;
    const object = spec.endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
    this.#head = `data: {"id":"${spec.id.id}","object":"${object}","created":${spec.id.created},` +
      `"model":${JSON.stringify(spec.id.model)},"choices":[`;
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => this.#abort(),
    });
  }

  start(engine: Engine, signal: AbortSignal): void {
    this.#request = engine.submit(this.#spec.job, this);
    signal.addEventListener("abort", () => this.#abort(), { once: true });
  }

  token(index: number): void {
    if (this.#ended) return;
    const spec = this.#spec;
    if (spec.dropAfterTokens !== undefined && this.#written >= spec.dropAfterTokens) {
      this.kill();
      this.#request?.abort();
      return;
    }
    const chat = spec.endpoint === "chat";
    if (index === 0 && chat) {
      this.#write(
        `${this.#head}{"index":0,"delta":{"role":"assistant","content":""},` +
          `"logprobs":null,"finish_reason":null}]}\n\n`,
      );
    }
    const last = index === spec.job.outputTokens - 1;
    const reason = last ? `"${spec.job.finishReason}"` : "null";
    const text = JSON.stringify(tokenText(index));
    const chunk = chat
      ? `${this.#head}{"index":0,"delta":{"content":${text}},"logprobs":null,"finish_reason":${reason}}]}\n\n`
      : `${this.#head}{"index":0,"text":${text},"logprobs":null,"finish_reason":${reason},"stop_reason":null}]}\n\n`;
    this.#written++;
    if (!last) {
      this.#write(chunk);
      return;
    }
    let tail = "";
    if (spec.includeUsage) {
      const usage = usageOf(spec, this.#request);
      tail = `${this.#head}],"usage":${JSON.stringify(usageBody(usage))}}\n\n`;
    }
    tail += "data: [DONE]\n\n";
    this.#finishStream(chunk, tail);
  }

  finish(reason: FinishReason): void {
    if (reason === "abort") this.kill();
  }

  kill(): void {
    if (this.#ended) return;
    this.#ended = true;
    try {
      this.#controller?.error(new Error("Simulator dropped the connection"));
    } catch {
      // The stream is closed already.
    }
    this.#hooks.ended(this);
  }

  #finishStream(chunk: string, tail: string): void {
    if (this.#ended) return;
    this.#write(chunk);
    this.#write(tail);
    this.#ended = true;
    try {
      this.#controller?.close();
    } catch {
      // The client cancelled meanwhile.
    }
    this.#hooks.ended(this);
  }

  #abort(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#request?.abort();
    this.#hooks.ended(this);
  }

  #write(text: string): void {
    try {
      this.#controller?.enqueue(encoder.encode(text));
    } catch {
      return;
    }
    this.#hooks.wrote();
  }
}

/**
 * Runs a job to the end and answers with one JSON body.
 *
 * @param engine The engine to run the job on.
 * @param spec What to produce.
 * @param options Server hooks and the client's disconnect signal.
 * @returns The answer (to kill it) and a promise of its response.
 */
export function jsonAnswer(
  engine: Engine,
  spec: AnswerSpec,
  options: { hooks: AnswerHooks; signal: AbortSignal },
): { answer: Answer; response: Promise<Response> } {
  const { promise, resolve } = Promise.withResolvers<Response>();
  let ended = false;
  const answer: Answer = {
    // A killed server never answers: the handler stays pending while the listener drops the
    // connection.
    kill: () => end(undefined),
  };
  function end(response: Response | undefined): void {
    if (ended) return;
    ended = true;
    options.hooks.ended(answer);
    if (response !== undefined) resolve(response);
  }
  const request = engine.submit(spec.job, {
    token() {},
    finish(reason) {
      if (reason === "abort") {
        answer.kill();
        return;
      }
      const usage = usageOf(spec, request);
      const body = spec.endpoint === "embedding"
        ? embeddingBody(spec.id, spec.inputs)
        : completionBody(spec.endpoint, spec.id, {
          tokens: spec.job.outputTokens,
          finishReason: reason,
          usage,
        });
      end(Response.json(body));
    },
  });
  options.signal.addEventListener("abort", () => {
    request.abort();
    end(errorResponse(400, "Client disconnected before the answer was ready"));
  }, { once: true });
  return { answer, response: promise };
}

/** An answer's token counts, with the cached prompt tokens when the server reports them. */
function usageOf(spec: AnswerSpec, request: EngineRequest | undefined): Usage {
  const usage: Usage = { prompt: spec.job.promptTokens, completion: spec.job.outputTokens };
  if (spec.promptTokensDetails) usage.cached = request?.cachedTokens ?? 0;
  return usage;
}
