/**
 * The gateway: the client-facing request pipeline. `server.ts` is the `Deno.serve` front and its
 * routes; `request.ts` reads and checks the body; `inference.ts` runs plugins, picks servers through
 * the fleet and retries; `proxy.ts` forwards to the chosen server and streams the answer back;
 * `plugins.ts`, `plugin_request.ts` and `plugin_context.ts` are what plugins see; `usage_tap.ts`,
 * `headers.ts` and `watchdog.ts` serve the proxy. It imports the fleet (`fleet/`), the upstream
 * client (`upstream/`), the spec (`config/`) and the contracts (`plugins/types.ts`,
 * `strategies/types.ts`); nothing below imports it.
 *
 * This file holds the gateway's running state: the spec in force, the routing table built from it, and the pool
 * of server state. A new spec is applied by swapping the table whole, so a request sees either
 * the old config or the new one, never a mix.
 *
 * @module
 */
import type { LoadedSpec } from "../config/load.ts";
import type { Spec } from "../config/schema.ts";
import { getLogger } from "@logtape/logtape";
import { buildPluginChain, PluginChain } from "./plugins.ts";
import { type FleetSource, staleAfterMs } from "../fleet/fleet.ts";
import { ServerPool } from "../fleet/server_pool.ts";
import type { SharedFleet } from "../fleet/shared_fleet.ts";
import type { WorkerPeers } from "../plugins/types.ts";
import { buildRoutes, type ModelRoute } from "../fleet/routes.ts";

const logger = getLogger(["llmstream", "config"]);

/** Options for {@link Gateway}; all absent with one worker. */
export interface GatewayOptions {
  /** Fleet state shared by the workers. */
  shared?: SharedFleet;
  /** The other workers, for plugins. */
  workers?: WorkerPeers;
  /** Start time in seconds since the epoch (the same in every worker). */
  startedAt?: number;
  /** This worker's number, when several serve. */
  workerId?: number;
  /** The control plane's gateway when workers serve: it runs no plugins (the workers do). */
  controlOnly?: boolean;
}

/** The running config and live state. */
export class Gateway implements FleetSource {
  /** Server state shared across config changes. */
  readonly pool: ServerPool;
  /** When the gateway started, in seconds since the epoch (used as `created` in `/v1/models`). */
  readonly startedAt: number;
  /** The other workers, when several serve (plugins see them). */
  readonly workers: WorkerPeers | undefined;
  /** This worker's number, when several serve. */
  readonly workerId: number | undefined;
  #loaded: LoadedSpec;
  #routes: Map<string, ModelRoute>;
  #listeners = new Set<(loaded: LoadedSpec) => void>();
  /** True once shutdown began: `/ready` answers 503 and new requests are refused. */
  draining = false;
  /** The plugins in force (empty until {@link Gateway.startPlugins}). */
  plugins: PluginChain = new PluginChain();
  #pluginUpdate: Promise<void> = Promise.resolve();
  readonly #controlOnly: boolean;

  /**
   * Creates the gateway state for a loaded spec.
   *
   * @param loaded The validated spec with its strategies.
   * @param options With several workers: the shared fleet state, the peers plugins see, and the
   *   control plane's start time.
   */
  constructor(loaded: LoadedSpec, options: GatewayOptions = {}) {
    this.pool = new ServerPool(staleAfterMs(loaded.spec), options.shared);
    this.workers = options.workers;
    this.workerId = options.workerId;
    this.#controlOnly = options.controlOnly ?? false;
    this.startedAt = options.startedAt ?? Math.floor(Date.now() / 1000);
    this.#loaded = loaded;
    this.#routes = buildRoutes(loaded, this.pool);
  }

  /** The spec in force. */
  get spec(): Spec {
    return this.#loaded.spec;
  }

  /** The loaded spec in force, with its strategy factories. */
  get loaded(): LoadedSpec {
    return this.#loaded;
  }

  /** Routes by model name. */
  get routes(): ReadonlyMap<string, ModelRoute> {
    return this.#routes;
  }

  /**
   * Creates the plugins the spec enables; call once before serving.
   *
   * @throws Error naming the plugin whose options are wrong.
   */
  async startPlugins(): Promise<void> {
    if (this.#controlOnly) return;
    this.plugins = await buildPluginChain(this.#loaded, this, { previous: this.plugins });
  }

  /** Waits for plugin changes from the last {@link Gateway.apply} to take effect. */
  pluginsSettled(): Promise<void> {
    return this.#pluginUpdate;
  }

  /** Closes every plugin (on shutdown). */
  async closePlugins(): Promise<void> {
    await this.#pluginUpdate;
    await this.plugins.close();
    this.plugins = new PluginChain();
  }

  /**
   * Puts a new spec in force. Servers that stay keep their state; strategies whose name and
   * options did not change keep theirs; requests in flight finish where they are.
   *
   * @param loaded The new validated spec.
   */
  apply(loaded: LoadedSpec): void {
    if (
      !this.#controlOnly &&
      JSON.stringify(loaded.spec.plugins) !== JSON.stringify(this.#loaded.spec.plugins)
    ) {
      this.#pluginUpdate = this.#pluginUpdate.then(async () => {
        try {
          this.plugins = await buildPluginChain(loaded, this, { previous: this.plugins });
        } catch (error) {
          logger.error("Keeping the previous plugins: {error}", { error });
        }
      });
    }
    this.pool.setStaleAfter(staleAfterMs(loaded.spec));
    this.#routes = buildRoutes(loaded, this.pool, { previous: this.#routes });
    this.#loaded = loaded;
    for (const listener of this.#listeners) listener(loaded);
  }

  /**
   * Registers a function called after each new spec is put in force.
   *
   * @param listener Receives the new spec.
   * @returns A function that unregisters it.
   */
  onApply(listener: (loaded: LoadedSpec) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Names the models with no server that can take traffic (none configured, or all unhealthy or
   * ejected); the gateway is ready when this is empty.
   *
   * @returns Model names.
   */
  modelsWithoutServers(): string[] {
    const now = Date.now();
    return [...this.#routes.values()].filter((route) =>
      !route.endpoints.some((endpoint) => endpoint.server.available(now))
    ).map((route) => route.name);
  }
}
