/**
 * The options of the `cache_aware` strategy (`strategy_options`): their defaults, validated with
 * zod; the meaning of each is in `../cache_aware.ts` and docs/strategies.md.
 *
 * @module
 */
import { z } from "zod";

const positive = z.number().positive();
const nonNegative = z.number().nonnegative();

const schema = z.strictObject({
  block_bytes: z.number().int().min(16).multipleOf(16).default(256),
  root_bytes: z.number().int().positive().default(1024),
  bytes_per_token: positive.default(4),
  step_tokens: nonNegative.default(256),
  load_tokens: nonNegative.default(16),
  queue_weight: nonNegative.default(16),
  affinity_tokens: nonNegative.default(256),
  cache_tokens: positive.default(262_144),
  max_blocks: z.number().int().positive().default(262_144),
  saturated_kv: nonNegative.default(0.98),
  saturated_queue: nonNegative.default(64),
  speed_window: nonNegative.default(10),
  prefill_rate: nonNegative.default(10_000),
  session_header: z.string().min(1).optional(),
  session_user: z.boolean().default(false),
});

/** The options, in camel case. */
export interface CacheAwareSettings {
  /** Bytes of rendered prompt per index block. */
  readonly blockBytes: number;
  /** Bytes forming the affinity root of a prompt that is not a chat. */
  readonly rootBytes: number;
  /** Bytes per token, to turn bytes into prefill work. */
  readonly bytesPerToken: number;
  /** Prefill tokens the wait for a step on an idle server is worth. */
  readonly stepTokens: number;
  /** Prefill tokens one unit of load is worth. */
  readonly loadTokens: number;
  /** Running requests one waiting request counts as. */
  readonly queueWeight: number;
  /** Tokens above the lowest cost within which the affinity key's home server still wins. */
  readonly affinityTokens: number;
  /** A server's cache size in tokens when its engine does not report one. */
  readonly cacheTokens: number;
  /** The index's bound in blocks, over all servers of the model. */
  readonly maxBlocks: number;
  /** KV usage at which a server counts as saturated. */
  readonly saturatedKv: number;
  /** Waiting requests at which a server counts as saturated. */
  readonly saturatedQueue: number;
  /** Seconds over which speeds are learned; 0 turns learning off. */
  readonly speedWindow: number;
  /** Prompt tokens a server of speed 1 prefills per second; 0 ignores prefill backlogs. */
  readonly prefillRate: number;
  /** A header whose value is the affinity key, when present. */
  readonly sessionHeader: string | undefined;
  /** Whether the body's `user` is the affinity key, when present. */
  readonly sessionUser: boolean;
}

/**
 * Reads `cache_aware`'s options over the defaults.
 *
 * @param raw The model's `strategy_options`.
 * @returns The settings.
 * @throws Error naming each wrong option.
 */
export function readCacheAwareOptions(raw: Readonly<Record<string, unknown>>): CacheAwareSettings {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      parsed.error.issues.map((issue) =>
        issue.path.length === 0
          ? issue.message
          : `strategy option "${issue.path.join(".")}": ${issue.message}`
      ).join("; "),
    );
  }
  const o = parsed.data;
  return {
    blockBytes: o.block_bytes,
    rootBytes: o.root_bytes,
    bytesPerToken: o.bytes_per_token,
    stepTokens: o.step_tokens,
    loadTokens: o.load_tokens,
    queueWeight: o.queue_weight,
    affinityTokens: o.affinity_tokens,
    cacheTokens: o.cache_tokens,
    maxBlocks: o.max_blocks,
    saturatedKv: o.saturated_kv,
    saturatedQueue: o.saturated_queue,
    speedWindow: o.speed_window,
    prefillRate: o.prefill_rate,
    sessionHeader: o.session_header?.toLowerCase(),
    sessionUser: o.session_user,
  };
}
