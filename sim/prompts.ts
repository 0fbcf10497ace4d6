/**
 * Prompts to token ids: the simulator's chat template and completion prompts. The inference
 * endpoints, `/tokenize` and the render endpoints all go through here, so the ids a router gets
 * from `/tokenize` or `/v1/chat/completions/render` are the ids the engine hashes into prefix-cache
 * blocks.
 *
 * The chat template works on token ids, each segment tokenized on its own, with one special token
 * per message (its role) and none at the start (no BOS: text prompts tokenize to
 * `ceil(length / 4)` tokens):
 *
 * ```
 * [<|tools|> tools-json] (<|role|> content tool-calls-json)* [<|assistant|>]
 * ```
 *
 * Like a real template, the rendering of a conversation plus the generation prompt plus the
 * generated answer is a prefix of the rendering of the next turn (which re-sends the answer as an
 * assistant message), so turn N+1 hits the blocks of turn N's prompt and output.
 *
 * @module
 */

import { SimHttpError } from "./http_error.ts";
import { encodeText, SPECIAL } from "./tokens.ts";

/** How a chat is rendered (vLLM's chat-template flags). */
export interface ChatTemplateOptions {
  /** End with the assistant's role token (default true). */
  addGenerationPrompt: boolean;
  /** Leave the last message open for the model to continue: no generation prompt. */
  continueFinalMessage: boolean;
  /** The request's `tools`, rendered as JSON first when it is a non-empty array. */
  tools: unknown;
}

const ROLE_TOKENS: Readonly<Record<string, number>> = {
  system: SPECIAL.system,
  user: SPECIAL.user,
  assistant: SPECIAL.assistant,
  tool: SPECIAL.tool,
  developer: SPECIAL.developer,
};

/**
 * Reads the chat-template flags of a chat body, as vLLM does.
 *
 * @param body The parsed request body.
 * @returns The flags.
 * @throws {SimHttpError} 400 when both `add_generation_prompt` and `continue_final_message` are set.
 */
export function chatTemplateOptions(body: Record<string, unknown>): ChatTemplateOptions {
  const continueFinalMessage = body.continue_final_message === true;
  const addGenerationPrompt = body.add_generation_prompt !== false && !continueFinalMessage;
  if (continueFinalMessage && body.add_generation_prompt === true) {
    throw new SimHttpError(
      400,
      "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
    );
  }
  return { addGenerationPrompt, continueFinalMessage, tools: body.tools };
}

/**
 * Renders chat messages to token ids with the simulator's chat template.
 *
 * @param messages The request's `messages`.
 * @param options Template flags.
 * @returns The prompt's token ids.
 * @throws {SimHttpError} 400 when `messages` is not a non-empty array of objects.
 */
export function renderChat(messages: unknown, options: ChatTemplateOptions): number[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new SimHttpError(400, "Field messages must be a non-empty array", "messages");
  }
  const ids: number[] = [];
  if (Array.isArray(options.tools) && options.tools.length > 0) {
    ids.push(SPECIAL.tools);
    encodeText(JSON.stringify(options.tools), ids);
  }
  messages.forEach((message: unknown, index) => {
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      throw new SimHttpError(
        400,
        `Message ${index} must be an object, not "${JSON.stringify(message)?.slice(0, 80)}"`,
        "messages",
      );
    }
    const { role, content, tool_calls: toolCalls } = message as Record<string, unknown>;
    const name = typeof role === "string" ? role : "user";
    const roleToken = ROLE_TOKENS[name];
    if (roleToken !== undefined) ids.push(roleToken);
    else {
      ids.push(SPECIAL.role);
      encodeText(`${name}:`, ids);
    }
    if (typeof content === "string") encodeText(content, ids);
    else if (Array.isArray(content)) {
      for (const part of content) {
        const text = (part as { text?: unknown } | null)?.text;
        if (typeof text === "string") encodeText(text, ids);
      }
    }
    if (Array.isArray(toolCalls) && toolCalls.length > 0) {
      encodeText(JSON.stringify(toolCalls), ids);
    }
  });
  if (options.addGenerationPrompt) ids.push(SPECIAL.assistant);
  return ids;
}

/**
 * Tokenizes a text prompt (completions, `/tokenize` with `prompt`); the simulated tokenizer adds
 * no special token, whatever `add_special_tokens` says.
 *
 * @param text The prompt.
 * @returns The token ids.
 */
export function textPrompt(text: string): number[] {
  return encodeText(text);
}

/**
 * Reads a completion `prompt`: a string, strings, token ids or lists of token ids.
 *
 * @param prompt The request's `prompt`.
 * @returns One id list per prompt (token ids are taken as they are).
 * @throws {SimHttpError} 400 for anything else.
 */
export function completionPrompts(prompt: unknown): number[][] {
  if (typeof prompt === "string") return [textPrompt(prompt)];
  if (Array.isArray(prompt) && prompt.length > 0) {
    if (prompt.every((item) => typeof item === "string")) {
      return (prompt as string[]).map((text) => textPrompt(text));
    }
    if (prompt.every(isTokenId)) return [[...prompt as number[]]];
    if (prompt.every((item) => Array.isArray(item) && item.length > 0 && item.every(isTokenId))) {
      return (prompt as number[][]).map((ids) => [...ids]);
    }
  }
  throw new SimHttpError(
    400,
    `Field prompt must be a string or token ids, not "${JSON.stringify(prompt)?.slice(0, 80)}"`,
    "prompt",
  );
}

/**
 * Whether a JSON value is a valid token id (a non-negative safe integer).
 *
 * @param value Any value.
 * @returns Whether it is one.
 */
export function isTokenId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
