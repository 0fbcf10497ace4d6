/**
 * OpenAI request parsing and response shapes as vLLM's API server writes them. Prompts become
 * token ids through prompts.ts (the chat template), the same ids `/tokenize` returns.
 *
 * @module
 */

import { SimHttpError } from "./http_error.ts";
import { chatTemplateOptions, completionPrompts, renderChat } from "./prompts.ts";
import { countTokens, embed, outputText } from "./tokens.ts";

export { SimHttpError } from "./http_error.ts";

/** Which inference endpoint a request came to. */
export type Endpoint = "chat" | "completion" | "embedding";

/** What the simulator needs from an inference request body. */
export interface InferenceRequest {
  /** Requested model, or `undefined` when the body names none. */
  model: string | undefined;
  /** Prompt token ids (chat: rendered by the chat template); empty for embeddings. */
  promptIds: number[];
  /** Inputs to embed (embeddings only). */
  inputs: string[];
  /** Requested output tokens (`max_tokens`, else `max_completion_tokens`). */
  maxTokens: number | undefined;
  /** Whether to answer with SSE. */
  stream: boolean;
  /** Whether a streamed answer ends with a usage chunk. */
  includeUsage: boolean;
}

/** Token counts of an answer. */
export interface Usage {
  /** Prompt tokens. */
  prompt: number;
  /** Generated tokens. */
  completion: number;
  /** Prompt tokens found in the prefix cache, when reported (else `prompt_tokens_details` is null). */
  cached?: number;
}

/**
 * Builds an OpenAI-shaped error response, like vLLM's `ErrorResponse`.
 *
 * @param status HTTP status.
 * @param message Sentence-case message.
 * @param options The parameter at fault.
 * @returns The JSON response.
 */
export function errorResponse(
  status: number,
  message: string,
  options: { param?: string | null } = {},
): Response {
  const body = {
    error: { message, type: errorType(status), param: options.param ?? null, code: status },
  };
  return Response.json(body, { status });
}

function errorType(status: number): string {
  switch (status) {
    case 400:
      return "BadRequestError";
    case 404:
      return "NotFoundError";
    case 429:
      return "RateLimitError";
    case 503:
      return "ServiceUnavailableError";
    default:
      return status < 500 ? "BadRequestError" : "InternalServerError";
  }
}

/**
 * Parses and checks an inference request body.
 *
 * @param endpoint The endpoint the body came to.
 * @param text The raw body.
 * @returns The facts the simulator needs.
 * @throws {SimHttpError} 400 for malformed JSON or invalid fields.
 */
export function parseInferenceRequest(endpoint: Endpoint, text: string): InferenceRequest {
  // deno-lint-ignore no-explicit-any -- JSON edge, checked field by field below
  let body: any;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new SimHttpError(400, `Request body is not valid JSON: "${(error as Error).message}"`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new SimHttpError(400, "Request body must be a JSON object");
  }
  const model = body.model;
  if (model !== undefined && model !== null && typeof model !== "string") {
    throw new SimHttpError(
      400,
      `Field model must be a string, not "${JSON.stringify(model)}"`,
      "model",
    );
  }
  const maxTokens = body.max_tokens ?? body.max_completion_tokens ?? undefined;
  if (maxTokens !== undefined && (!Number.isInteger(maxTokens) || maxTokens < 1)) {
    throw new SimHttpError(400, `max_tokens must be at least 1, got "${maxTokens}"`, "max_tokens");
  }
  let promptIds: number[] = [];
  let inputs: string[] = [];
  if (endpoint === "chat") promptIds = renderChat(body.messages, chatTemplateOptions(body));
  else if (endpoint === "completion") promptIds = onePrompt(body.prompt);
  else inputs = embeddingInputs(body.input);
  return {
    model: model ?? undefined,
    promptIds,
    inputs,
    maxTokens,
    stream: endpoint !== "embedding" && body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
  };
}

function onePrompt(prompt: unknown): number[] {
  const prompts = completionPrompts(prompt);
  if (prompts.length !== 1 || prompts[0] === undefined) {
    throw new SimHttpError(
      400,
      `The simulator serves one prompt per request, not "${prompts.length}"`,
      "prompt",
    );
  }
  return prompts[0];
}

function embeddingInputs(input: unknown): string[] {
  if (typeof input === "string") return [input];
  if (Array.isArray(input) && input.length > 0) {
    if (input.every((item) => typeof item === "string")) return input as string[];
    if (input.every(Number.isInteger)) return [tokenIdsText(input as number[])];
    if (input.every((item) => Array.isArray(item) && item.every(Number.isInteger))) {
      return (input as number[][]).map(tokenIdsText);
    }
  }
  throw new SimHttpError(
    400,
    `Field input must be a string, strings or token ids, not "${
      JSON.stringify(input)?.slice(0, 80)
    }"`,
    "input",
  );
}

/** Four characters per token id, so token ids count as themselves. */
function tokenIdsText(ids: readonly number[]): string {
  return ids.map((id) => String(Math.abs(id) % 10000).padStart(4, "0")).join("");
}

/**
 * The `usage` object of an answer.
 *
 * @param usage Token counts.
 * @returns vLLM's usage shape.
 */
export function usageBody(usage: Usage): Record<string, unknown> {
  return {
    prompt_tokens: usage.prompt,
    total_tokens: usage.prompt + usage.completion,
    completion_tokens: usage.completion,
    prompt_tokens_details: usage.cached === undefined ? null : { cached_tokens: usage.cached },
  };
}

/** Identity of one answer: the same in every chunk. */
export interface AnswerId {
  /** `chatcmpl-...` or `cmpl-...`. */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The model name echoed back. */
  model: string;
}

/**
 * A whole non-streamed chat or text completion.
 *
 * @param endpoint `"chat"` or `"completion"`.
 * @param answer Identity of the answer.
 * @param options Output length, finish reason and usage.
 * @returns The JSON body.
 */
export function completionBody(
  endpoint: Endpoint,
  answer: AnswerId,
  options: { tokens: number; finishReason: string; usage: Usage },
): Record<string, unknown> {
  const text = outputText(options.tokens);
  const choice = endpoint === "chat"
    ? {
      index: 0,
      message: { role: "assistant", content: text, refusal: null, tool_calls: [] },
      logprobs: null,
      finish_reason: options.finishReason,
      stop_reason: null,
    }
    : { index: 0, text, logprobs: null, finish_reason: options.finishReason, stop_reason: null };
  return {
    id: answer.id,
    object: endpoint === "chat" ? "chat.completion" : "text_completion",
    created: answer.created,
    model: answer.model,
    choices: [choice],
    usage: usageBody(options.usage),
  };
}

/**
 * An embeddings answer with one deterministic vector per input.
 *
 * @param answer Identity of the answer.
 * @param inputs The texts embedded.
 * @returns The JSON body.
 */
export function embeddingBody(
  answer: AnswerId,
  inputs: readonly string[],
): Record<string, unknown> {
  let tokens = 0;
  for (const input of inputs) tokens += countTokens(input);
  return {
    id: answer.id,
    object: "list",
    created: answer.created,
    model: answer.model,
    data: inputs.map((input, index) => ({ index, object: "embedding", embedding: embed(input) })),
    usage: usageBody({ prompt: tokens, completion: 0 }),
  };
}

/**
 * The `/v1/models` list.
 *
 * @param models Served model names.
 * @param maxModelLen Context length to report.
 * @returns The JSON body.
 */
export function modelsBody(
  models: readonly string[],
  maxModelLen: number,
): Record<string, unknown> {
  const created = Math.floor(Date.now() / 1000);
  return {
    object: "list",
    data: models.map((id) => ({
      id,
      object: "model",
      created,
      owned_by: "vllm",
      root: id,
      parent: null,
      max_model_len: maxModelLen,
    })),
  };
}
