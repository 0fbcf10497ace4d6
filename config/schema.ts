/**
 * The spec's schema: what a YAML or JSON spec may contain, validated with zod.
 *
 * The original `config.json` shape (`models` -> `servers` + `strategy`, `metrics_update_interval`)
 * is a valid spec as it stands.
 *
 * @module
 */
import { z } from "zod";

/** An upstream server URL: http or https, no query or fragment; a trailing slash is dropped. */
const serverUrl = z
  .string()
  .trim()
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === "http:" || url.protocol === "https:") && !url.search && !url.hash;
    } catch {
      return false;
    }
  }, { message: "expected an http:// or https:// URL without query or fragment" })
  .transform((value) => value.replace(/\/+$/, ""));

/** A server entry: a URL string, or an object with `url`, optional `weight` and concurrency cap. */
export const serverSchema = z.union([
  serverUrl.transform((url) => ({ url, weight: 1 })),
  z.strictObject({
    url: serverUrl,
    weight: z.number().positive().finite().default(1),
    max_concurrent: z.number().int().positive().optional(),
    api_key: z.string().min(1).optional(),
  }),
]);

const seconds = z.number().positive().finite();

/**
 * Timeouts in seconds; the top level sets defaults, a model may override any of them. `idle` is
 * the server's silence while the gateway waits for bytes; `client_idle` is how long a client may
 * stop reading an answer before it is cut (outcome `client_slow`, never held against the server).
 */
export const timeoutsSchema = z.strictObject({
  connect: seconds.default(5),
  first_byte: seconds.default(300),
  idle: seconds.default(120),
  client_idle: seconds.default(60),
  total: seconds.default(1800),
});

/** One model: its servers, the strategy that chooses between them, and its overrides. */
export const modelSchema = z.strictObject({
  servers: z.array(serverSchema),
  strategy: z.string().min(1).default("round_robin"),
  strategy_options: z.record(z.string(), z.unknown()).default({}),
  upstream_model: z.string().min(1).optional(),
  fallbacks: z.array(z.string().min(1)).default([]),
  timeouts: timeoutsSchema.partial().optional(),
});

/** Request size limits. */
export const limitsSchema = z.strictObject({
  max_body_bytes: z.number().int().positive().default(10 * 1024 * 1024),
  max_header_bytes: z.number().int().positive().default(64 * 1024),
  body_timeout: seconds.default(30),
});

/** Active health checks of every server. */
export const healthChecksSchema = z.strictObject({
  enabled: z.boolean().default(true),
  path: z.string().startsWith("/").default("/health"),
  interval: seconds.default(5),
  timeout: seconds.default(2),
  unhealthy_threshold: z.number().int().positive().default(2),
  healthy_threshold: z.number().int().positive().default(1),
});

/** Passive outlier ejection (circuit breaker) from real traffic. */
export const outlierSchema = z.strictObject({
  enabled: z.boolean().default(true),
  consecutive_failures: z.number().int().positive().default(5),
  error_rate: z.number().gt(0).max(1).default(0.5),
  min_requests: z.number().int().positive().default(20),
  window: seconds.default(30),
  cooldown: seconds.default(10),
  max_cooldown: seconds.default(300),
});

/** Retries on another server before the first byte reaches the client. */
export const retriesSchema = z.strictObject({
  max_attempts: z.number().int().min(1).max(10).default(3),
  deadline: seconds.default(30),
  backoff: z.number().min(0).default(0.025),
  on_status: z.array(z.number().int().min(400).max(599)).default([429, 502, 503]),
});

/** Per-server concurrency cap and the bounded queue in front of it. */
export const serverLimitsSchema = z.strictObject({
  max_concurrent: z.number().int().positive().optional(),
  queue_size: z.number().int().min(0).default(100),
  queue_timeout: seconds.default(10),
});

/** Token usage read from answers. */
export const usageSchema = z.strictObject({
  add_stream_usage: z.boolean().default(false),
});

/** Graceful shutdown. */
export const shutdownSchema = z.strictObject({
  drain_timeout: seconds.default(30),
});

/** The admin API: its bearer token (`${VAR}` keeps it out of the file). */
export const adminSchema = z.strictObject({
  token: z.string().min(1).optional(),
});

/** One enabled plugin: a name (or path) and its options; a bare string is a name. */
export const pluginSchema = z.union([
  z.string().min(1).transform((name) => ({ name, options: {} as Record<string, unknown> })),
  z.strictObject({
    name: z.string().min(1),
    options: z.record(z.string(), z.unknown()).default({}),
  }),
]);

/**
 * Data-plane workers: `auto` (one per CPU, as nginx's `worker_processes auto`) or a count; 1 serves
 * from the main isolate as before. Read at start (`--workers` overrides it); a reload keeps the
 * running count.
 */
export const workersSchema = z.union([
  z.literal("auto"),
  z.number().int().min(1).max(256),
]);

/** The whole spec. */
export const specSchema = z.strictObject({
  models: z.record(z.string().min(1), modelSchema),
  metrics_update_interval: z.number().positive().max(3600).default(10),
  limits: limitsSchema.prefault({}),
  timeouts: timeoutsSchema.prefault({}),
  health_checks: healthChecksSchema.prefault({}),
  outlier_detection: outlierSchema.prefault({}),
  retries: retriesSchema.prefault({}),
  server_limits: serverLimitsSchema.prefault({}),
  shutdown: shutdownSchema.prefault({}),
  admin: adminSchema.optional(),
  usage: usageSchema.prefault({}),
  plugins: z.array(pluginSchema).default([{ name: "logging", options: {} }]),
  workers: workersSchema.default("auto"),
}).superRefine((spec, context) => {
  for (const [name, model] of Object.entries(spec.models)) {
    model.fallbacks.forEach((fallback, index) => {
      if (fallback === name || !(fallback in spec.models)) {
        context.addIssue({
          code: "custom",
          path: ["models", name, "fallbacks", index],
          message: fallback === name
            ? `model "${name}" cannot fall back to itself`
            : `unknown model "${fallback}"; available: ${Object.keys(spec.models).join(", ")}`,
        });
      }
    });
  }
});

/** Timeouts after validation. */
export type Timeouts = z.output<typeof timeoutsSchema>;
/** A server entry after validation. */
export type ServerSpec = z.output<typeof serverSchema>;
/** A model after validation. */
export type ModelSpec = z.output<typeof modelSchema>;
/** A whole spec after validation. */
export type Spec = z.output<typeof specSchema>;
