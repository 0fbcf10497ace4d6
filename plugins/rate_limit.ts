/**
 * Rate limits per caller key and model: requests per minute, tokens per minute and requests in
 * flight. Over a limit, a request gets 429 `rate_limit_error` in OpenAI's shape with
 * `Retry-After`; every limited answer carries OpenAI's `x-ratelimit-*` headers.
 *
 * - The key is the auth plugin's key name (`state.get("auth.key_name")`), so list `auth` before
 *   `rate_limit`. Without auth it is the first 12 hex digits of the SHA-256 of the `key_header`
 *   header when that option is set and the header is present, else `anonymous` (one shared
 *   budget). Unauthenticated header values are the client's choice, so such limits are advisory.
 * - Counters are per key and model (the request's `model`); requests for unknown models are not
 *   limited (the gateway answers 404).
 * - Tokens: a request is admitted while at least one token of the minute's budget is left, and
 *   its `usage.total_tokens` is charged when it ends (streams report usage only when the client
 *   asks for it or the spec sets `usage.add_stream_usage: true`). A minute may so overshoot by
 *   what the requests in flight use; answers without usage (errors, aborted streams) cost nothing.
 * - Refused requests are not counted.
 *
 * Options (see docs/plugins.md, "Rate limits"): `store` (`memory` or `redis`), `redis_url`,
 * `redis_prefix`, `redis_timeout` (seconds), `on_store_error` (`open` or `closed`), `key_header`,
 * `default`, `keys` (by key name, each with optional `models`) and `models`, each holding
 * `requests_per_minute`, `tokens_per_minute` and `concurrent`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { hexPrefix, sha256 } from "../common/digest.ts";
import { errorResponse, HttpError } from "../common/errors.ts";
import type { Plugin, PluginOptions, PluginRequest } from "./types.ts";
import { MemoryStore, SHARED_STORE_BYTES, SharedMemoryStore } from "./_rate_limit_memory.ts";
import { hasLimits, limitsFor, parseRateLimitOptions, setsLimit } from "./_rate_limit_options.ts";
import {
  type Admission,
  formatDuration,
  type LimitName,
  type Limits,
  msUntil,
  type RateLimitStore,
  remaining,
} from "./_rate_limit_window.ts";

const logger = getLogger(["llmstream", "rate_limit"]);

/** The state entry of an admitted request: what to release and charge when it ends. */
const HELD = "rate_limit.held";

interface Held {
  bucket: string;
  /** The concurrency slot's id: unique, unlike request ids, which clients may repeat. */
  slot: string;
  concurrent: boolean;
  tokens: boolean;
}

/**
 * Creates the rate limit plugin.
 *
 * @param options The spec's options (see the module docs).
 * @returns The plugin.
 * @throws Error naming each invalid option.
 */
export default async function createRateLimit(options: PluginOptions): Promise<Plugin> {
  const settings = parseRateLimitOptions(options.options);
  const store: RateLimitStore = settings.store === "redis"
    // Imported only when used: most gateways never load the Redis client.
    ? await (await import("./_redis_store.ts")).connectRedisStore(settings.redis_url!, {
      prefix: settings.redis_prefix,
      timeoutMs: settings.redis_timeout * 1000,
      onError: settings.on_store_error,
    })
    : sharedStore(options) ?? new MemoryStore();
  const usesTokens = setsLimit(settings, "tokens_per_minute");
  if (usesTokens && !options.context.addsStreamUsage()) {
    logger.info(
      "Rate limits count a stream's tokens only when its client asks for usage; set " +
        "usage.add_stream_usage: true to count every stream",
    );
  }
  const keyHeader = settings.key_header?.toLowerCase();

  return {
    wantsUsage: usesTokens,
    async onRequest(request) {
      if (!request.known) return undefined;
      const key = keyOf(request, keyHeader);
      const limits = limitsFor(settings, { key, model: request.model });
      if (!hasLimits(limits)) return undefined;
      const bucket = `${encodeURIComponent(key)}|${encodeURIComponent(request.model)}`;
      const slot = crypto.randomUUID();
      let admission: Admission;
      try {
        admission = await store.admit(bucket, { limits, requestId: slot });
      } catch {
        if (settings.on_store_error === "open") return undefined;
        return errorResponse(
          new HttpError(
            503,
            "service_unavailable_error",
            "The gateway cannot check rate limits now: its rate limit store is unreachable",
            { code: "rate_limit_unavailable", headers: { "retry-after": "1" } },
          ),
          answerHeaders(request),
        );
      }
      setHeaders(request, limits, admission);
      const refused = admission.refused;
      if (refused !== undefined) {
        return tooMany(request, { key, limits, admission, refused });
      }
      const held: Held = {
        bucket,
        slot,
        concurrent: limits.concurrent !== undefined,
        tokens: limits.tokens_per_minute !== undefined,
      };
      request.state.set(HELD, held);
      return undefined;
    },
    onResponse(request, outcome) {
      const held = request.state.get(HELD) as Held | undefined;
      if (!held) return;
      request.state.delete(HELD);
      // Store failures are logged by the store, once per change.
      if (held.concurrent) store.release(held.bucket, held.slot).catch(() => {});
      const tokens = outcome.usage?.total_tokens ?? 0;
      if (held.tokens && tokens > 0) store.charge(held.bucket, tokens).catch(() => {});
    },
    close() {
      return store.close();
    },
  };
}

/** With several workers, the memory store every worker shares. */
function sharedStore(options: PluginOptions): SharedMemoryStore | undefined {
  const memory = options.context.workers?.sharedMemory("rate_limit");
  if (memory === undefined || memory.byteLength < SHARED_STORE_BYTES) return undefined;
  return new SharedMemoryStore(memory, {
    onFull: () =>
      logger.warn(
        "The shared rate limit table is full of live keys: new keys are not limited until " +
          "some go quiet (use store: redis for this many keys)",
      ),
  });
}

/** The caller's key: auth's key name (or hash), a hashed header, or `anonymous`. */
function keyOf(request: PluginRequest, header: string | undefined): string {
  const name = request.state.get("auth.key_name") ?? request.state.get("auth.key_hash");
  if (typeof name === "string") return name;
  const value = header === undefined ? null : request.request.headers.get(header);
  if (value === null || value === "") return "anonymous";
  return hexPrefix(sha256(value), 6);
}

/** Sets OpenAI's `x-ratelimit-*` headers for the per-minute limits in force. */
function setHeaders(request: PluginRequest, limits: Limits, admission: Admission): void {
  const windows = [
    ["requests", limits.requests_per_minute, admission.requests],
    ["tokens", limits.tokens_per_minute, admission.tokens],
  ] as const;
  for (const [kind, limit, counts] of windows) {
    if (limit === undefined) continue;
    request.setResponseHeader(`x-ratelimit-limit-${kind}`, String(limit));
    request.setResponseHeader(`x-ratelimit-remaining-${kind}`, String(remaining(limit, counts)));
    request.setResponseHeader(`x-ratelimit-reset-${kind}`, formatDuration(msUntil(counts, 0)));
  }
}

/** The 429 answer naming the limit that refused the request. */
function tooMany(
  request: PluginRequest,
  refusal: { key: string; limits: Limits; admission: Admission; refused: LimitName },
): Response {
  const { key, limits, admission, refused } = refusal;
  const limit = limits[refused]!;
  const waitMs = refused === "concurrent" ? 1000 : Math.max(
    1,
    msUntil(refused === "requests_per_minute" ? admission.requests : admission.tokens, limit - 1),
  );
  const what = refused === "concurrent"
    ? `${limit} concurrent requests; retry when one of them ends`
    : `${limit} ${refused === "requests_per_minute" ? "requests" : "tokens"} per minute ` +
      `("${refused}"); retry in ${formatDuration(waitMs)}`;
  return errorResponse(
    new HttpError(
      429,
      "rate_limit_error",
      `Key "${key}" reached its rate limit on model "${request.model}": ${what}`,
      {
        code: "rate_limit_exceeded",
        headers: {
          "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))),
          "retry-after-ms": String(Math.ceil(waitMs)),
        },
      },
    ),
    answerHeaders(request),
  );
}

/** Headers of the plugin's own answers: the plugins' response headers and the request id. */
function answerHeaders(request: PluginRequest): Headers {
  const headers = new Headers(request.responseHeaders);
  headers.set("x-request-id", request.requestId);
  return headers;
}
