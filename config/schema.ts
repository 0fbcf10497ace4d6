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

/** A server entry: a URL string, or an object with `url` and optional `weight`. */
export const serverSchema = z.union([
  serverUrl.transform((url) => ({ url, weight: 1 })),
  z.strictObject({
    url: serverUrl,
    weight: z.number().positive().finite().default(1),
  }),
]);

/** One model: its servers and the strategy that chooses between them. */
export const modelSchema = z.strictObject({
  servers: z.array(serverSchema),
  strategy: z.string().min(1).default("round_robin"),
  strategy_options: z.record(z.string(), z.unknown()).default({}),
  upstream_model: z.string().min(1).optional(),
});

/** Gateway limits and timeouts. */
export const limitsSchema = z.strictObject({
  max_body_bytes: z.number().int().positive().default(10 * 1024 * 1024),
  first_byte_timeout: z.number().positive().default(300),
}).default({ max_body_bytes: 10 * 1024 * 1024, first_byte_timeout: 300 });

/** The whole spec. */
export const specSchema = z.strictObject({
  models: z.record(z.string().min(1), modelSchema),
  metrics_update_interval: z.number().positive().max(3600).default(10),
  limits: limitsSchema,
});

/** A server entry after validation. */
export type ServerSpec = z.output<typeof serverSchema>;
/** A model after validation. */
export type ModelSpec = z.output<typeof modelSchema>;
/** A whole spec after validation. */
export type Spec = z.output<typeof specSchema>;
