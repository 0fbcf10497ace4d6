/**
 * Turns an inference request body into what the engine runs and the answer echoes: model check,
 * token counts, output length and the context-length check, as vLLM's API server does them.
 * The job's block hashes chain over the prompt's token ids followed by the ids of the output it
 * will generate, so the engine caches full blocks of prompt and output (as vLLM does) and a chat's
 * next turn, which re-sends the answer, hits them.
 *
 * @module
 */

import type { AnswerSpec } from "./answer.ts";
import { type Endpoint, parseInferenceRequest, SimHttpError } from "./openai.ts";
import type { ResolvedSimOptions } from "./options.ts";
import { blockHashes, countTokens, outputTokenIds } from "./tokens.ts";

const ID_PREFIXES: Readonly<Record<Endpoint, string>> = {
  chat: "chatcmpl",
  completion: "cmpl",
  embedding: "embd",
};

/** An inference request ready to run. */
export interface PlannedInference {
  /** What to run and answer. */
  spec: AnswerSpec;
  /** Whether to answer with SSE. */
  stream: boolean;
}

/**
 * Checks an inference request and plans its answer.
 *
 * @param endpoint The endpoint the body came to.
 * @param bodyText The raw body.
 * @param context Options, the engine's context length and prefix caching, and a unique number.
 * @returns The answer spec and whether to stream it.
 * @throws {SimHttpError} 400 for bad bodies or prompts too long, 404 for unknown models.
 */
export function planInference(
  endpoint: Endpoint,
  bodyText: string,
  context: {
    options: ResolvedSimOptions;
    maxModelLen: number;
    prefixCaching: boolean;
    serial: number;
  },
): PlannedInference {
  const { options, maxModelLen } = context;
  const parsed = parseInferenceRequest(endpoint, bodyText);
  const model = parsed.model ?? options.models[0] ?? "";
  if (!options.acceptAnyModel && !options.models.includes(model)) {
    throw new SimHttpError(404, `The model \`${model}\` does not exist.`, "model");
  }
  const embedding = endpoint === "embedding";
  const promptTokens = embedding
    ? parsed.inputs.reduce((sum, input) => sum + countTokens(input), 0)
    : parsed.promptIds.length;
  const maxTokens = embedding ? 0 : parsed.maxTokens ?? options.defaultMaxTokens;
  const fixed = options.outputTokens;
  const outputTokens = fixed !== undefined && fixed < maxTokens ? fixed : maxTokens;
  if (promptTokens + maxTokens > maxModelLen) {
    throw new SimHttpError(
      400,
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
        `${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in ` +
        "the completion). Please reduce the length of the messages or completion.",
    );
  }
  const hashes = context.prefixCaching && !embedding
    ? blockHashes(outputTokenIds(outputTokens, [...parsed.promptIds]), options.blockSize)
    : [];
  return {
    stream: parsed.stream,
    spec: {
      endpoint,
      id: {
        id: `${ID_PREFIXES[endpoint]}-sim${context.serial}`,
        created: Math.floor(Date.now() / 1000),
        model,
      },
      job: {
        promptTokens,
        blockHashes: hashes,
        outputTokens,
        finishReason: outputTokens < maxTokens ? "stop" : "length",
        gated: parsed.stream,
      },
      inputs: parsed.inputs,
      includeUsage: parsed.includeUsage,
      promptTokensDetails: options.enablePromptTokensDetails,
      dropAfterTokens: options.dropAfterTokens,
    },
  };
}
