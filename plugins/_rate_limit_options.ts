/**
 * The rate limit plugin's options: their schema and how the limits of one key and model are found.
 *
 * @module
 */
import { z } from "zod";
import type { LimitName, Limits } from "./_rate_limit_window.ts";

/** A limit: a positive whole number, `null` to lift an inherited limit, absent to inherit. */
const limitError = {
  error: (issue: { input: unknown }) =>
    `must be a positive whole number, or null for no limit, not ${JSON.stringify(issue.input)}`,
};
const limit = z.number(limitError).int(limitError).positive(limitError).nullable().optional();

const limitsSchema = z.strictObject({
  requests_per_minute: limit,
  tokens_per_minute: limit,
  concurrent: limit,
});

const keyLimitsSchema = limitsSchema.extend({
  models: z.record(z.string().min(1), limitsSchema).default({}),
});

/** The plugin's options in the spec. */
export const rateLimitOptionsSchema = z.strictObject({
  store: z.enum(["memory", "redis"]).default("memory"),
  redis_url: z.string().regex(/^rediss?:\/\/\S+$/, {
    error: (issue) => `must be a redis:// or rediss:// URL, not ${JSON.stringify(issue.input)}`,
  }).optional(),
  redis_prefix: z.string().min(1).default("llmstream:rate_limit:"),
  redis_timeout: z.number().positive().max(60).default(1),
  on_store_error: z.enum(["open", "closed"]).default("open"),
  key_header: z.string().regex(/^[A-Za-z0-9-]+$/, "must be a header name").optional(),
  default: limitsSchema.default({}),
  keys: z.record(z.string().min(1), keyLimitsSchema).default({}),
  models: z.record(z.string().min(1), limitsSchema).default({}),
}).superRefine((options, context) => {
  if (options.store === "redis" && options.redis_url === undefined) {
    context.addIssue({
      code: "custom",
      path: ["redis_url"],
      message: 'store "redis" needs a URL, e.g. "redis://127.0.0.1:6379"',
    });
  }
  if (options.store === "memory" && options.redis_url !== undefined) {
    context.addIssue({
      code: "custom",
      path: ["redis_url"],
      message: 'is set but store is "memory": set store: redis',
    });
  }
});

/** Validated options. */
export type RateLimitOptions = z.infer<typeof rateLimitOptionsSchema>;

/** The limit fields, in the order they are checked. */
export const LIMIT_NAMES: readonly LimitName[] = [
  "requests_per_minute",
  "tokens_per_minute",
  "concurrent",
];

/**
 * Validates the plugin's options.
 *
 * @param raw The spec's `options`.
 * @returns The options with defaults filled in.
 * @throws Error listing every problem, each with its option path.
 */
export function parseRateLimitOptions(raw: unknown): RateLimitOptions {
  const parsed = rateLimitOptionsSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new Error(
    parsed.error.issues.map((issue) => `${issue.path.join(".") || "options"}: ${issue.message}`)
      .join("; "),
  );
}

/**
 * Finds the limits of one key and model. Each limit comes from the most specific place that sets
 * it: `keys.<key>.models.<model>`, then `keys.<key>`, then `models.<model>`, then `default`.
 *
 * @param options The validated options.
 * @param who The key's name and the model.
 * @returns The limits; `undefined` fields are not limited.
 */
export function limitsFor(
  options: RateLimitOptions,
  who: { key: string; model: string },
): Limits {
  const key = Object.hasOwn(options.keys, who.key) ? options.keys[who.key] : undefined;
  const layers = [
    key && Object.hasOwn(key.models, who.model) ? key.models[who.model] : undefined,
    key,
    Object.hasOwn(options.models, who.model) ? options.models[who.model] : undefined,
    options.default,
  ];
  const pick = (name: LimitName): number | undefined => {
    for (const layer of layers) {
      const value = layer?.[name];
      if (value !== undefined) return value ?? undefined;
    }
    return undefined;
  };
  return {
    requests_per_minute: pick("requests_per_minute"),
    tokens_per_minute: pick("tokens_per_minute"),
    concurrent: pick("concurrent"),
  };
}

/**
 * Whether any limit is set.
 *
 * @param limits Limits.
 * @returns True when at least one is a number.
 */
export function hasLimits(limits: Limits): boolean {
  return LIMIT_NAMES.some((name) => limits[name] !== undefined);
}

/**
 * Whether a limit is set anywhere in the options.
 *
 * @param options The validated options.
 * @param name The limit.
 * @returns True when some level sets it to a number.
 */
export function setsLimit(options: RateLimitOptions, name: LimitName): boolean {
  const keys = Object.values(options.keys);
  return [
    options.default,
    ...Object.values(options.models),
    ...keys,
    ...keys.flatMap((key) => Object.values(key.models)),
  ].some((limits) => typeof limits[name] === "number");
}
