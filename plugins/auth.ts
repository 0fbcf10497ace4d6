/**
 * Client API keys. A request must carry a configured key (`Authorization: Bearer KEY`, or an
 * `api-key` / `x-api-key` header); a key may be limited to listed models. Keys are compared in
 * constant time (SHA-256 digests, every key compared) and never logged: other plugins see only a
 * short hash (`state.get("auth.key_hash")`) and the key's name (`auth.key_name`).
 *
 * The client's `Authorization` header is not forwarded to servers unless `forward_authorization`
 * is true; a server may have its own key instead (`api_key` on the server entry).
 *
 * Options:
 * - `keys`: a list of `{ key, name?, models? }` (use `${VAR}` for the key).
 * - `keys_env`: the name of an environment variable holding comma-separated keys (all models).
 * - `keys_file`: a YAML or JSON file holding a list like `keys`, relative to the working directory.
 * - `forward_authorization`: forward the client's `Authorization` header (default false).
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { errorResponse, HttpError } from "../gateway/errors.ts";
import type { Plugin, PluginOptions } from "./types.ts";

const keySchema = z.strictObject({
  key: z.string().min(8, "keys must have at least 8 characters"),
  name: z.string().min(1).optional(),
  models: z.array(z.string().min(1)).optional(),
});

const optionsSchema = z.strictObject({
  keys: z.array(keySchema).default([]),
  keys_env: z.string().min(1).optional(),
  keys_file: z.string().min(1).optional(),
  forward_authorization: z.boolean().default(false),
});

interface KeyEntry {
  digest: Uint8Array;
  hash: string;
  name: string;
  models: ReadonlySet<string> | undefined;
}

/**
 * Creates the auth plugin.
 *
 * @param options The spec's options (see the module docs).
 * @returns The plugin.
 * @throws Error when the options are invalid or no key is configured.
 */
export default async function createAuth(options: PluginOptions): Promise<Plugin> {
  const parsed = optionsSchema.safeParse(options.options);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
  }
  const settings = parsed.data;
  const raw = [...settings.keys];
  if (settings.keys_env) {
    const value = Deno.env.get(settings.keys_env);
    if (value === undefined) {
      throw new Error(`environment variable "${settings.keys_env}" is not set`);
    }
    for (const key of value.split(",").map((k) => k.trim()).filter(Boolean)) raw.push({ key });
  }
  if (settings.keys_file) {
    const text = await Deno.readTextFile(settings.keys_file);
    const file = z.array(keySchema).safeParse(parseYaml(text));
    if (!file.success) throw new Error(`keys_file "${settings.keys_file}" is not a list of keys`);
    raw.push(...file.data);
  }
  if (raw.length === 0) throw new Error("no API keys configured (keys, keys_env or keys_file)");
  const keys: KeyEntry[] = await Promise.all(raw.map(async (entry, index) => {
    const digest = await sha256(entry.key);
    const hash = hex(digest).slice(0, 12);
    return {
      digest,
      hash,
      name: entry.name ?? `key-${index + 1}`,
      models: entry.models ? new Set(entry.models) : undefined,
    };
  }));

  return {
    async onRequest(request) {
      const presented = presentedKey(request.request.headers);
      if (!settings.forward_authorization) request.upstreamHeaders.delete("authorization");
      request.upstreamHeaders.delete("api-key");
      request.upstreamHeaders.delete("x-api-key");
      if (presented === undefined) {
        return errorResponse(
          new HttpError(
            401,
            "invalid_request_error",
            "The request has no API key: send " +
              '"Authorization: Bearer KEY"',
            { code: "missing_api_key" },
          ),
          request.responseHeaders,
        );
      }
      const digest = await sha256(presented);
      let found: KeyEntry | undefined;
      for (const key of keys) {
        if (constantTimeEqual(key.digest, digest) && found === undefined) found = key;
      }
      if (!found) {
        request.state.set("auth.key_hash", hex(digest).slice(0, 12));
        return errorResponse(
          new HttpError(401, "invalid_request_error", "The API key is not valid", {
            code: "invalid_api_key",
          }),
          request.responseHeaders,
        );
      }
      request.state.set("auth.key_hash", found.hash);
      request.state.set("auth.key_name", found.name);
      if (found.models && !found.models.has(request.model)) {
        return errorResponse(
          new HttpError(
            403,
            "permission_error",
            `The API key "${found.name}" may not use model "${request.model}": allowed models ` +
              `are ${[...found.models].map((m) => `"${m}"`).join(", ")}`,
            { param: "model", code: "model_not_allowed" },
          ),
          request.responseHeaders,
        );
      }
      return undefined;
    },
  };
}

/** The key a request presents, from `Authorization: Bearer`, `api-key` or `x-api-key`. */
function presentedKey(headers: Headers): string | undefined {
  const authorization = headers.get("authorization");
  if (authorization) {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    return match ? match[1]!.trim() : undefined;
  }
  return headers.get("api-key") ?? headers.get("x-api-key") ?? undefined;
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** Compares two digests in time independent of where they differ. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
