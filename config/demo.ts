/**
 * The embedded demo spec used when `main.ts` runs without `--config`: the original README's models,
 * served by a small simulated fleet the program starts on free loopback ports. `gpt-4` routes with
 * `cache_aware` (the original README had `real_time_metrics`, which it matches on unique prompts
 * and beats where prompts share prefixes: docs/routing.md).
 *
 * @module
 */

/** The demo spec; `${DEMO_SERVER_N}` are filled with the simulated servers' URLs. */
export const DEMO_SPEC = `# LLMStream demo spec: a simulated vLLM fleet on loopback.
models:
  gpt-3.5-turbo:
    servers: ["\${DEMO_SERVER_1}", "\${DEMO_SERVER_2}"]
    strategy: round_robin
  gpt-4:
    servers: ["\${DEMO_SERVER_3}", "\${DEMO_SERVER_4}"]
    strategy: cache_aware
metrics_update_interval: 1
`;

/** The model each simulated demo server serves, in `DEMO_SERVER_N` order. */
export const DEMO_FLEET: readonly string[] = ["gpt-3.5-turbo", "gpt-3.5-turbo", "gpt-4", "gpt-4"];
