/**
 * The routing table: for each model, its servers and its strategy instance, built from a loaded
 * spec. Rebuilding on a config change keeps strategy instances whose name and options did not
 * change (so round-robin positions survive) and reuses server state through the pool.
 *
 * @module
 */
import type { LoadedSpec } from "../config/load.ts";
import type { Strategy } from "../strategies/types.ts";
import type { Spec } from "../config/schema.ts";
import { Endpoint } from "./pool.ts";
import type { ServerPool } from "./server_pool.ts";
import type { SharedRoute } from "./shared_fleet.ts";

/** Timeouts of one forwarded request, in milliseconds. */
export interface ForwardTimeouts {
  /** To open a new connection to the server. */
  connectMs: number;
  /** Until the server's response headers arrive. */
  firstByteMs: number;
  /** Longest silence of the server while the gateway waits for more of the body. */
  idleMs: number;
  /** Longest time the client may stop reading the answer. */
  clientIdleMs: number;
  /** The whole request, body included. */
  totalMs: number;
}

/** One model's route. */
export interface ModelRoute {
  /** The model name clients use. */
  readonly name: string;
  /** The name to send upstream when it differs, else `undefined`. */
  readonly upstreamModel: string | undefined;
  /** The strategy's spec reference (name or path). */
  readonly strategyRef: string;
  /** The running strategy instance. */
  readonly strategy: Strategy;
  /** The model's servers in spec order. */
  readonly endpoints: readonly Endpoint[];
  /** Key identifying the strategy and its options, to decide reuse on reload. */
  readonly strategyKey: string;
  /** Models to try when no server of this one can take a request. */
  readonly fallbacks: readonly string[];
  /** The model's timeouts in milliseconds (its own, else the spec's). */
  readonly timeouts: ForwardTimeouts;
  /** The lock and strategy cells shared with other workers, when there are several. */
  readonly shared: SharedRoute | undefined;
}

/** Options for {@link buildRoutes}. */
export interface BuildRoutesOptions {
  /** The table being replaced, whose strategy instances may be reused. */
  previous?: ReadonlyMap<string, ModelRoute>;
}

/**
 * Builds the routing table for a loaded spec.
 *
 * @param loaded The validated spec with resolved strategy factories.
 * @param pool Server state shared across reloads.
 * @param options The previous table, for reuse.
 * @returns Routes by model name.
 */
export function buildRoutes(
  loaded: LoadedSpec,
  pool: ServerPool,
  options: BuildRoutesOptions = {},
): Map<string, ModelRoute> {
  const routes = new Map<string, ModelRoute>();
  const inUse = new Set<string>();
  for (const [name, model] of Object.entries(loaded.spec.models)) {
    const factory = loaded.factories.get(name);
    if (!factory) throw new Error(`Model "${name}" has no resolved strategy`);
    const servedModel = model.upstream_model ?? name;
    const endpoints = model.servers.map((server, index) => {
      inUse.add(server.url);
      const state = pool.acquire(server.url);
      state.maxConcurrent = ("max_concurrent" in server ? server.max_concurrent : undefined) ??
        loaded.spec.server_limits.max_concurrent;
      state.breaker.settings = loaded.spec.outlier_detection;
      state.apiKey = "api_key" in server ? server.api_key : undefined;
      return new Endpoint(state, {
        weight: server.weight,
        index,
        servedModel,
      });
    });
    const strategyKey = `${model.strategy}\n${JSON.stringify(model.strategy_options)}`;
    const old = options.previous?.get(name);
    const shared = old && old.strategyKey === strategyKey
      ? old.shared
      : pool.shared?.route(`${name}\n${strategyKey}`);
    const strategy = old && old.strategyKey === strategyKey ? old.strategy : factory({
      model: name,
      options: model.strategy_options,
      metricsInterval: loaded.spec.metrics_update_interval,
      ...(shared && { shared: shared.cells }),
    });
    strategy.onServers?.(endpoints);
    routes.set(name, {
      name,
      upstreamModel: model.upstream_model,
      strategyRef: model.strategy,
      strategy,
      endpoints,
      strategyKey,
      fallbacks: model.fallbacks,
      timeouts: timeoutsOf(loaded.spec, name),
      shared,
    });
  }
  pool.retain(inUse);
  return routes;
}

/** A model's timeouts: its own where set, else the spec's, in milliseconds. */
function timeoutsOf(spec: Spec, model: string): ForwardTimeouts {
  const own = spec.models[model]?.timeouts ?? {};
  return {
    connectMs: (own.connect ?? spec.timeouts.connect) * 1000,
    firstByteMs: (own.first_byte ?? spec.timeouts.first_byte) * 1000,
    idleMs: (own.idle ?? spec.timeouts.idle) * 1000,
    clientIdleMs: (own.client_idle ?? spec.timeouts.client_idle) * 1000,
    totalMs: (own.total ?? spec.timeouts.total) * 1000,
  };
}
