/**
 * Cheap deterministic tokenisation for the simulator: four characters make one token.
 *
 * @module
 */

/** Characters per simulated token. */
export const CHARS_PER_TOKEN = 4;

const WORDS = [
  "lorem",
  "ipsum",
  "dolor",
  "sit",
  "amet",
  "consectetur",
  "adipiscing",
  "elit",
  "sed",
  "do",
  "eiusmod",
  "tempor",
  "incididunt",
  "ut",
  "labore",
  "et",
  "dolore",
  "magna",
  "aliqua",
];

/**
 * Counts the tokens of a prompt text (at least one, like a BOS token).
 *
 * @param text The prompt text.
 * @returns The token count.
 */
export function countTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / CHARS_PER_TOKEN));
}

/**
 * Hashes the full blocks of a prompt in a chain, as vLLM's prefix cache does.
 *
 * Block `i` hashes the hash of block `i - 1` with the text of its own tokens, so equal hashes
 * mean equal prefixes. A partial last block has no hash.
 *
 * @param text The prompt text.
 * @param blockSize Tokens per block.
 * @returns One hash per full block.
 */
export function blockHashes(text: string, blockSize: number): string[] {
  const chars = blockSize * CHARS_PER_TOKEN;
  const full = Math.floor(text.length / chars);
  const hashes: string[] = [];
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let block = 0; block < full; block++) {
    const end = (block + 1) * chars;
    for (let i = block * chars; i < end; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    hashes.push(`${(h1 >>> 0).toString(36)}.${(h2 >>> 0).toString(36)}`);
  }
  return hashes;
}

/**
 * The text of output token `index` (deterministic lorem ipsum).
 *
 * @param index Zero-based token position.
 * @returns The token text; all but the first start with a space.
 */
export function tokenText(index: number): string {
  const word = WORDS[index % WORDS.length] ?? "lorem";
  return index === 0 ? word : ` ${word}`;
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
