/**
 * The simulator's deterministic tokenizer: four characters make one token, special tokens for the
 * chat template, chained block hashes over token ids (as vLLM's prefix cache keys blocks) and the
 * generated text, whose tokens re-tokenize to themselves.
 *
 * Token ids: 0..255 are special tokens (see {@link SPECIAL}); a piece of up to four ASCII
 * characters packs into `256 + c0 + 128 c1 + 128² c2 + 128³ c3`, so it decodes back; a piece
 * holding other characters gets a hashed id at or above {@link HASHED_BASE} that decodes to U+FFFD.
 *
 * @module
 */

/** Characters per simulated token. */
export const CHARS_PER_TOKEN = 4;

/** Special token ids, with their texts in {@link SPECIAL_TEXT}. */
export const SPECIAL = {
  system: 3,
  user: 4,
  assistant: 5,
  tool: 6,
  developer: 7,
  tools: 8,
  role: 9,
} as const;

const SPECIAL_TEXT: ReadonlyMap<number, string> = new Map([
  [SPECIAL.system, "<|system|>"],
  [SPECIAL.user, "<|user|>"],
  [SPECIAL.assistant, "<|assistant|>"],
  [SPECIAL.tool, "<|tool|>"],
  [SPECIAL.developer, "<|developer|>"],
  [SPECIAL.tools, "<|tools|>"],
  [SPECIAL.role, "<|role|>"],
]);

const PACKED_BASE = 256;
/** First id of pieces that do not pack (non-ASCII or NUL characters). */
export const HASHED_BASE = PACKED_BASE + 2 ** 28;
const HASHED_SPAN = 2 ** 24;

/** The text the simulator generates, cut into four-character tokens (124 characters, 31 tokens). */
const OUTPUT_TEXT =
  "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt " +
  "ut labore et dolore magna aliqua. ";
const OUTPUT_TOKENS = OUTPUT_TEXT.length / CHARS_PER_TOKEN;

/**
 * Counts the tokens of a text without special tokens (at least one); used for embeddings.
 *
 * @param text The text.
 * @returns The token count.
 */
export function countTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / CHARS_PER_TOKEN));
}

/**
 * Tokenizes a text: one id per four characters, counted from the text's start.
 *
 * @param text The text (one segment; the chat template tokenizes each message on its own).
 * @param into Ids are appended here.
 * @returns `into`.
 */
export function encodeText(text: string, into: number[] = []): number[] {
  for (let start = 0; start < text.length; start += CHARS_PER_TOKEN) {
    into.push(pieceId(text, start, Math.min(text.length, start + CHARS_PER_TOKEN)));
  }
  return into;
}

function pieceId(text: string, start: number, end: number): number {
  let id = 0;
  let scale = 1;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0 || c > 127) return hashedId(text, start, end);
    id += c * scale;
    scale *= 128;
  }
  return PACKED_BASE + id;
}

function hashedId(text: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return HASHED_BASE + ((h >>> 0) % HASHED_SPAN);
}

/**
 * The text of one token id, as `/tokenize` returns in `token_strs`.
 *
 * @param id A token id.
 * @returns Its text; special tokens as `<|...|>`, unpackable pieces as U+FFFD.
 */
export function tokenString(id: number): string {
  const special = SPECIAL_TEXT.get(id);
  if (special !== undefined) return special;
  if (id < PACKED_BASE) return "";
  if (id >= HASHED_BASE) return "\uFFFD";
  let rest = id - PACKED_BASE;
  let text = "";
  while (rest > 0) {
    text += String.fromCharCode(rest % 128);
    rest = Math.floor(rest / 128);
  }
  return text;
}

/**
 * Decodes token ids to text, as `/detokenize` does.
 *
 * @param ids Token ids.
 * @param options Whether to drop special tokens (vLLM's default `skip_special_tokens`).
 * @returns The text.
 */
export function decodeTokens(
  ids: readonly number[],
  options: { skipSpecial?: boolean } = {},
): string {
  let text = "";
  for (const id of ids) {
    if (options.skipSpecial === true && id < PACKED_BASE) continue;
    text += tokenString(id);
  }
  return text;
}

/**
 * Hashes the full blocks of a token sequence in a chain, as vLLM's prefix cache does.
 *
 * Block `i` hashes the hash of block `i - 1` with its own token ids, so equal hashes mean equal
 * prefixes. A partial last block has no hash.
 *
 * @param ids The token ids (prompt, or prompt plus output).
 * @param blockSize Tokens per block.
 * @returns One hash per full block.
 */
export function blockHashes(ids: readonly number[], blockSize: number): string[] {
  const full = Math.floor(ids.length / blockSize);
  const hashes: string[] = [];
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let block = 0; block < full; block++) {
    const end = (block + 1) * blockSize;
    for (let i = block * blockSize; i < end; i++) {
      const id = ids[i] ?? 0;
      h1 = Math.imul(h1 ^ (id & 0xffff), 0x01000193);
      h1 = Math.imul(h1 ^ (id >>> 16), 0x01000193);
      h2 = Math.imul(h2 ^ id, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    hashes.push(`${(h1 >>> 0).toString(36)}.${(h2 >>> 0).toString(36)}`);
  }
  return hashes;
}

/**
 * The text of output token `index`: four characters of lorem ipsum, so an answer re-sent in a
 * chat message tokenizes back to the very ids generated.
 *
 * @param index Zero-based token position.
 * @returns The token text.
 */
export function tokenText(index: number): string {
  const start = (index % OUTPUT_TOKENS) * CHARS_PER_TOKEN;
  return OUTPUT_TEXT.slice(start, start + CHARS_PER_TOKEN);
}

/**
 * The whole output text of `count` tokens.
 *
 * @param count Number of tokens.
 * @returns The concatenated token texts.
 */
export function outputText(count: number): string {
  let text = "";
  for (let i = 0; i < count; i++) text += tokenText(i);
  return text;
}

/**
 * The ids of the first `count` output tokens (the ids of {@link outputText}).
 *
 * @param count Number of tokens.
 * @param into Ids are appended here.
 * @returns `into`.
 */
export function outputTokenIds(count: number, into: number[] = []): number[] {
  for (let i = 0; i < count; i++) {
    const start = (i % OUTPUT_TOKENS) * CHARS_PER_TOKEN;
    into.push(pieceId(OUTPUT_TEXT, start, start + CHARS_PER_TOKEN));
  }
  return into;
}

/**
 * A deterministic unit-length embedding of a text.
 *
 * @param text The input text.
 * @param dimensions Vector length (default 8).
 * @returns The vector.
 */
export function embed(text: string, dimensions = 8): number[] {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  const vector: number[] = [];
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) ^ i;
    const value = ((h >>> 0) / 0xffffffff) * 2 - 1;
    vector.push(value);
    norm += value * value;
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 1;
  return vector.map((v) => Math.round(v * scale * 1e6) / 1e6);
}
