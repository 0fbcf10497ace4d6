/**
 * The plugins that ship with LLMStream, imported statically so `deno compile` embeds them. Files
 * dropped into `plugins/` are found on disk by the loader and need no entry here.
 *
 * @module
 */
import type { PluginFactory } from "./types.ts";
import createAuth from "./auth.ts";
import createLogging from "./logging.ts";
import createRateLimit from "./rate_limit.ts";
import createMetrics from "./metrics.ts";

/** Built-in plugins by the name a spec uses. */
export const BUILTIN_PLUGINS: ReadonlyMap<string, PluginFactory> = new Map<string, PluginFactory>([
  ["auth", createAuth],
  ["logging", createLogging],
  ["rate_limit", createRateLimit],
  ["metrics", createMetrics],
]);
