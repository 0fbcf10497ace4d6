/**
 * The fleet: the live state of every upstream server and the routing table over them. This folder
 * holds per-server state (`pool.ts`: in-flight counts, slots, scraped metrics, health, breaker),
 * the routing table built from the spec (`routes.ts`), server selection (`selection.ts`), the
 * background loops that keep the state fresh (`health.ts`, `metrics_feed.ts`) and the small
 * pieces they use (`breaker.ts`, `slot_queue.ts`). Nothing here speaks to clients: the gateway
 * reads and updates this state; strategies see read-only views of it.
 *
 * @module
 */
import type { Spec } from "../config/schema.ts";
import type { ServerPool } from "./server_pool.ts";
import type { ModelRoute } from "./routes.ts";

/** Metrics older than this many scrape intervals no longer count. */
export const STALE_INTERVALS = 3;

/**
 * What the fleet's background loops read: the spec in force, its routing table and the server
 * pool, and a way to hear of config changes. The gateway implements it.
 */
export interface FleetSource {
  /** The spec in force. */
  readonly spec: Spec;
  /** Routes by model name. */
  readonly routes: ReadonlyMap<string, ModelRoute>;
  /** Server state shared across config changes. */
  readonly pool: ServerPool;
  /**
   * Registers a function called after each new spec is put in force.
   *
   * @param listener Called with no argument the loops need.
   * @returns A function that unregisters it.
   */
  onApply(listener: () => void): () => void;
}

/**
 * How long scraped metrics stay fresh for a spec.
 *
 * @param spec The spec in force.
 * @returns Milliseconds.
 */
export function staleAfterMs(spec: Spec): number {
  return spec.metrics_update_interval * 1000 * STALE_INTERVALS;
}
