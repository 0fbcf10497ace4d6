/**
 * vLLM's tokenizer endpoints over the simulator's tokenizer and chat template:
 *
 * - `POST /tokenize`: `{prompt}` or `{messages}` (with `add_generation_prompt`,
 *   `continue_final_message`, `tools`, `return_token_strs`; the simulated tokenizer has no BOS, so
 *   `add_special_tokens` changes nothing) to
 *   `{count, max_model_len, tokens, token_strs}`.
 * - `POST /detokenize`: `{tokens}` to `{prompt}`.
 * - `POST /v1/chat/completions/render`: a chat completion body to one `GenerateRequest`
 *   `{request_id, token_ids, features, sampling_params, model, stream, ...}`.
 * - `POST /v1/completions/render`: a completion body to a list of them, one per prompt.
 *
 * The vLLM router's `cache_aware` policy calls the render endpoint (falling back to `/tokenize`)
 * on every request and routes on `token_ids`: these are the very ids the engine hashes into
 * prefix-cache blocks (see prompts.ts).
 *
 * @module
 */

import { SimHttpError } from "./http_error.ts";
import { errorResponse } from "./openai.ts";
import type { ResolvedSimOptions } from "./options.ts";
import {
  chatTemplateOptions,
  completionPrompts,
  isTokenId,
  renderChat,
  textPrompt,
} from "./prompts.ts";
import { decodeTokens, tokenString } from "./tokens.ts";

/** The tokenizer endpoints, by path. */
export const TOKENIZER_PATHS: ReadonlySet<string> = new Set([
  "/tokenize",
  "/detokenize",
  "/v1/chat/completions/render",
  "/v1/completions/render",
]);

/** What the endpoints need from the server. */
export interface TokenizerContext {
  /** Current options (served models, default output length). */
  options: ResolvedSimOptions;
  /** The context length reported by `/tokenize`. */
  maxModelLen: number;
  /** A number unique to this request, for render `request_id`s. */
  serial: number;
}

type Body = Record<string, unknown>;

/**
 * Answers one tokenizer endpoint with a response, errors in OpenAI's shape.
 *
 * @param path One of {@link TOKENIZER_PATHS}.
 * @param bodyText The raw JSON body.
 * @param context Options, context length and a unique number.
 * @returns 200 with the JSON body; 400 for malformed bodies, 404 for unknown models.
 */
export function tokenizerResponse(
  path: string,
  bodyText: string,
  context: TokenizerContext,
): Response {
  try {
    return Response.json(answerTokenizer(path, bodyText, context));
  } catch (error) {
    if (error instanceof SimHttpError) {
      return errorResponse(error.status, error.message, { param: error.param });
    }
    throw error;
  }
}

/**
 * Answers one tokenizer endpoint.
 *
 * @param path One of {@link TOKENIZER_PATHS}.
 * @param bodyText The raw JSON body.
 * @param context Options, context length and a unique number.
 * @returns The JSON body to send with status 200.
 * @throws {SimHttpError} 400 for malformed bodies, 404 for unknown models.
 */
export function answerTokenizer(
  path: string,
  bodyText: string,
  context: TokenizerContext,
): unknown {
  const body = parseBody(bodyText);
  const model = checkModel(body.model, context.options);
  switch (path) {
    case "/tokenize":
      return tokenize(body, context.maxModelLen);
    case "/detokenize":
      return detokenize(body);
    case "/v1/chat/completions/render": {
      const ids = renderChat(body.messages, chatTemplateOptions(body));
      return generateRequest(body, ids, { context, model, id: `chatcmpl-sim${context.serial}` });
    }
    default:
      return completionPrompts(body.prompt).map((ids, i) =>
        generateRequest(body, ids, { context, model, id: `cmpl-sim${context.serial}-${i}` })
      );
  }
}

function parseBody(text: string): Body {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new SimHttpError(400, `Request body is not valid JSON: "${(error as Error).message}"`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new SimHttpError(400, "Request body must be a JSON object");
  }
  return body as Body;
}

function checkModel(model: unknown, options: ResolvedSimOptions): string {
  if (model !== undefined && model !== null && typeof model !== "string") {
    throw new SimHttpError(
      400,
      `Field model must be a string, not "${JSON.stringify(model)}"`,
      "model",
    );
  }
  const name = model ?? options.models[0] ?? "";
  if (!options.acceptAnyModel && !options.models.includes(name)) {
    throw new SimHttpError(404, `The model \`${name}\` does not exist.`, "model");
  }
  return name;
}

function tokenize(body: Body, maxModelLen: number): unknown {
  let tokens: number[];
  if (body.messages !== undefined) {
    tokens = renderChat(body.messages, chatTemplateOptions(body));
  } else if (typeof body.prompt === "string") {
    tokens = textPrompt(body.prompt);
  } else {
    throw new SimHttpError(
      400,
      `Field prompt must be a string, not "${JSON.stringify(body.prompt)?.slice(0, 80)}"`,
      "prompt",
    );
  }
  return {
    count: tokens.length,
    max_model_len: maxModelLen,
    tokens,
    token_strs: body.return_token_strs === true ? tokens.map(tokenString) : null,
  };
}

function detokenize(body: Body): unknown {
  const tokens = body.tokens;
  if (!Array.isArray(tokens) || !tokens.every(isTokenId)) {
    throw new SimHttpError(
      400,
      `Field tokens must be a list of non-negative integers, not "${
        JSON.stringify(tokens)?.slice(0, 80)
      }"`,
      "tokens",
    );
  }
  return { prompt: decodeTokens(tokens) };
}

/** vLLM's `GenerateRequest`: what the render endpoints return per prompt. */
function generateRequest(
  body: Body,
  ids: number[],
  meta: { context: TokenizerContext; model: string; id: string },
): unknown {
  return {
    request_id: meta.id,
    token_ids: ids,
    features: null,
    sampling_params: samplingParams(body, meta.context.options),
    model: meta.model,
    stream: body.stream === true,
    stream_options: body.stream_options ?? null,
    cache_salt: typeof body.cache_salt === "string" ? body.cache_salt : null,
    priority: typeof body.priority === "number" ? body.priority : 0,
    kv_transfer_params: body.kv_transfer_params ?? null,
  };
}

/** The request's sampling fields with vLLM's defaults (a subset of `SamplingParams`). */
function samplingParams(body: Body, options: ResolvedSimOptions): Record<string, unknown> {
  const pick = (key: string, fallback: unknown): unknown => body[key] ?? fallback;
  return {
    n: pick("n", 1),
    presence_penalty: pick("presence_penalty", 0),
    frequency_penalty: pick("frequency_penalty", 0),
    repetition_penalty: pick("repetition_penalty", 1),
    temperature: pick("temperature", 1),
    top_p: pick("top_p", 1),
    top_k: pick("top_k", 0),
    min_p: pick("min_p", 0),
    seed: pick("seed", null),
    stop: pick("stop", []),
    stop_token_ids: pick("stop_token_ids", []),
    ignore_eos: pick("ignore_eos", false),
    max_tokens: body.max_tokens ?? body.max_completion_tokens ?? options.defaultMaxTokens,
    min_tokens: pick("min_tokens", 0),
    logprobs: pick("logprobs", null),
    prompt_logprobs: pick("prompt_logprobs", null),
    skip_special_tokens: pick("skip_special_tokens", true),
    spaces_between_special_tokens: pick("spaces_between_special_tokens", true),
  };
}
