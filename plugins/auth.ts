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
import { digestsEqual, hexPrefix, sha256 } from "../common/digest.ts";
import { errorResponse, HttpError } from "../common/errors.ts";
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

/** Headers that carry a client's key besides `authorization`; never sent upstream. */
const KEY_HEADERS = ["api-key", "x-api-key"];
const ALL_KEY_HEADERS = ["authorization", ...KEY_HEADERS];

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
  const keys: KeyEntry[] = raw.map((entry, index) => {
    const digest = sha256(entry.key);
    return {
      digest,
      hash: hexPrefix(digest, 6),
      name: entry.name ?? `key-${index + 1}`,
      models: entry.models ? new Set(entry.models) : undefined,
    };
  });

  return {
    onRequest(request) {
      const presented = presentedKey(request.request.headers);
      for (const name of settings.forward_authorization ? KEY_HEADERS : ALL_KEY_HEADERS) {
        request.deleteUpstreamHeader(name);
      }
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
      const digest = sha256(presented);
      let found: KeyEntry | undefined;
      for (const key of keys) {
        if (digestsEqual(key.digest, digest) && found === undefined) found = key;
      }
      if (!found) {
        request.state.set("auth.key_hash", hexPrefix(digest, 6));
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
