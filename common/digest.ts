/**
 * SHA-256 digests of keys and tokens, and their comparison in constant time.
 *
 * Hashing is synchronous through `node:crypto`: about 2 µs for a key, where
 * `crypto.subtle.digest` takes about 115 µs in Deno (it runs on a worker thread and resolves a
 * promise), which made the auth plugin halve the gateway's throughput.
 *
 * @module
 */
import { createHash } from "node:crypto";

/**
 * The SHA-256 digest of a text (UTF-8).
 *
 * @param text The text.
 * @returns 32 bytes.
 * @example
 * ```ts
 * digestsEqual(sha256(presented), configuredDigest);
 * ```
 */
export function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/**
 * Compares two digests touching every byte, with no early exit.
 *
 * @param a A digest.
 * @param b Another digest.
 * @returns Whether they are equal (digests of different lengths never are).
 */
export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ (b[i] ?? 0);
  return difference === 0;
}

/**
 * The first bytes of a digest in hex, for logs and limit keys (never the key itself).
 *
 * @param digest The digest.
 * @param bytes How many bytes to show.
 * @returns Lower-case hex, two characters a byte.
 */
export function hexPrefix(digest: Uint8Array, bytes: number): string {
  let out = "";
  for (const byte of digest.subarray(0, bytes)) out += byte.toString(16).padStart(2, "0");
  return out;
}
