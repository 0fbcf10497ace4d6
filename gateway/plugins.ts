/**
 * The chain of plugins the spec enables, run in the declared order around each request. A plugin
 * that throws is logged and skipped; it never breaks a request.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { LoadedSpec } from "../config/load.ts";
import type {
  Plugin,
  PluginOutcome,
  PluginRequest,
  RouteContext,
  RouteHandler,
} from "../plugins/types.ts";
import type { Gateway } from "./gateway.ts";
import { pluginContextOf } from "./plugin_context.ts";

const logger = getLogger(["llmstream", "plugins"]);

/** One enabled plugin. */
export interface PluginEntry {
  /** The spec's name or path. */
  readonly name: string;
  /** Name and options, to decide reuse on reload. */
  readonly key: string;
  /** The instance. */
  readonly plugin: Plugin;
}

/** Enabled plugins in order. */
export class PluginChain {
  /** The plugins, in spec order. */
  readonly entries: readonly PluginEntry[];
  #usage: Plugin[];
  /** Routes plugins serve. */
  readonly routes: readonly RouteHandler[];
  #withRequest: PluginEntry[];
  #withResponse: PluginEntry[];

  /**
   * Creates a chain.
   *
   * @param entries Plugins in order.
   */
  constructor(entries: readonly PluginEntry[] = []) {
    this.entries = entries;
    this.#usage = entries.filter((entry) => "wantsUsage" in entry.plugin).map((entry) =>
      entry.plugin
    );
    this.routes = entries.flatMap((entry) => {
      const routes = entry.plugin.routes;
      return routes ? [(context: RouteContext) => routes(context)] : [];
    });
    this.#withRequest = entries.filter((entry) => entry.plugin.onRequest);
    this.#withResponse = entries.filter((entry) => entry.plugin.onResponse);
  }

  /** Whether any plugin needs token usage read from answers (asked per request). */
  get wantsUsage(): boolean {
    for (const plugin of this.#usage) if (plugin.wantsUsage === true) return true;
    return false;
  }

  /** Whether any plugin has an `onRequest` (when none has, callers skip the call). */
  get hasOnRequest(): boolean {
    return this.#withRequest.length > 0;
  }

  /**
   * Runs every `onRequest` in order until one answers.
   *
   * @param request The request.
   * @returns The first answer, or `undefined`.
   */
  async onRequest(request: PluginRequest): Promise<Response | undefined> {
    for (const entry of this.#withRequest) {
      const answer = await entry.plugin.onRequest!(request);
      if (answer) return answer;
    }
    return undefined;
  }

  /**
   * Runs every `onResponse`; a throwing plugin is logged and the rest still run.
   *
   * @param request The request.
   * @param outcome How it ended.
   */
  onResponse(request: PluginRequest, outcome: PluginOutcome): void {
    for (const entry of this.#withResponse) {
      try {
        entry.plugin.onResponse!(request, outcome);
      } catch (error) {
        logger.error("Plugin {name} failed in onResponse: {error}", { name: entry.name, error });
      }
    }
  }

  /** Closes every plugin. */
  async close(): Promise<void> {
    await Promise.all(this.entries.map((entry) => closePlugin(entry)));
  }
}

/** Options for {@link buildPluginChain}. */
export interface BuildPluginsOptions {
  /** The chain being replaced: plugins whose name and options stay are reused. */
  previous?: PluginChain;
}

/**
 * Creates the plugin chain a loaded spec enables.
 *
 * @param loaded The spec with its resolved plugin factories.
 * @param gateway The gateway the plugins serve.
 * @param options The previous chain, for reuse.
 * @returns The chain; replaced plugins of the previous chain are closed.
 * @throws Error naming the plugin whose factory failed.
 */
export async function buildPluginChain(
  loaded: LoadedSpec,
  gateway: Gateway,
  options: BuildPluginsOptions = {},
): Promise<PluginChain> {
  const context = pluginContextOf(gateway, gateway.workers);
  const old = new Map((options.previous?.entries ?? []).map((entry) => [entry.key, entry]));
  const entries: PluginEntry[] = [];
  const created: PluginEntry[] = [];
  for (const [index, spec] of loaded.spec.plugins.entries()) {
    const key = `${spec.name}\n${JSON.stringify(spec.options)}`;
    const reused = old.get(key);
    if (reused) {
      old.delete(key);
      entries.push(reused);
      continue;
    }
    const factory = loaded.plugins[index];
    if (!factory) throw new Error(`Plugin "${spec.name}" has no resolved file`);
    try {
      const plugin = await factory({ name: spec.name, options: spec.options, context });
      const entry = { name: spec.name, key, plugin };
      entries.push(entry);
      created.push(entry);
    } catch (error) {
      await Promise.all(created.map(closePlugin));
      throw new Error(
        `plugins[${index}] "${spec.name}": ${error instanceof Error ? error.message : error}`,
      );
    }
  }
  await Promise.all([...old.values()].map(closePlugin));
  return new PluginChain(entries);
}

async function closePlugin(entry: PluginEntry): Promise<void> {
  try {
    await entry.plugin.close?.();
  } catch (error) {
    logger.error("Plugin {name} failed to close: {error}", { name: entry.name, error });
  }
}
