/**
 * Chooses the server for one attempt and takes a slot on it: the strategy picks among the model's
 * servers that are healthy, not ejected and not yet tried for this request, preferring those with
 * a free slot; when every candidate is at its concurrency cap, the request waits in the picked
 * server's bounded queue.
 *
 * @module
 */
import type { Spec } from "../config/schema.ts";
import type { RequestFacts } from "../strategies/types.ts";
import { Endpoint } from "./pool.ts";
import { ServerLease } from "./lease.ts";
import type { ModelRoute } from "./routes.ts";
import { lockCell, unlockCell } from "../common/shared_lock.ts";

/** What {@link acquireServer} needs besides the route. */
export interface AcquireOptions {
  /** Facts about the request, for the strategy. */
  facts: RequestFacts;
  /** Servers already tried for this request. */
  tried: ReadonlySet<Endpoint>;
  /** The spec in force (queue settings). */
  spec: Spec;
  /** Returns the client's abort signal, to stop waiting for a slot (read only to wait). */
  signal(): AbortSignal;
}

/**
 * Picks a server and takes a slot on it (its in-flight count includes this request on return),
 * as a lease: the caller holds it with `using`, so it is released on every path.
 *
 * @param route The model's route.
 * @param options Request facts, servers tried, spec and abort signal.
 * @returns The lease, or `undefined` when no server can take the request; a promise of it
 *   only when the request has to wait for a slot (the usual path allocates no promise).
 * @throws HttpError 503 when the picked server's queue is full or the wait times out (the
 *   promise rejects).
 */
export function acquireServer(
  route: ModelRoute,
  options: AcquireOptions,
): ServerLease | undefined | Promise<ServerLease | undefined> {
  // With several workers, picking and taking the slot are one step across them (the route's lock).
  const shared = route.shared;
  if (shared === undefined) return pickAndTake(route, options);
  lockCell(shared.lock.cells, shared.lock.index);
  try {
    return pickAndTake(route, options);
  } finally {
    unlockCell(shared.lock.cells, shared.lock.index);
  }
}

function pickAndTake(
  route: ModelRoute,
  options: AcquireOptions,
): ServerLease | undefined | Promise<ServerLease | undefined> {
  const now = Date.now();
  const all = route.endpoints;
  let usable = 0;
  let withRoom = 0;
  for (const endpoint of all) {
    if (options.tried.has(endpoint) || !endpoint.server.available(now)) continue;
    usable++;
    if (endpoint.server.hasRoom()) withRoom++;
  }
  if (usable === 0) return undefined;
  // Most requests take this path: every server can take one, and no array is built.
  const candidates = withRoom === all.length
    ? all
    : all.filter((endpoint) =>
      !options.tried.has(endpoint) && endpoint.server.available(now) &&
      (withRoom === 0 || endpoint.server.hasRoom())
    );
  const picked = route.strategy.pick(candidates, options.facts);
  if (picked === undefined) return undefined;
  if (!(picked instanceof Endpoint) || !candidates.includes(picked)) {
    throw new Error(`Strategy "${route.strategyRef}" returned a server that is not a candidate`);
  }
  const server = picked.server;
  if (server.tryBegin()) return new ServerLease(picked, { route, facts: options.facts });
  // At its cap: wait in its queue until a finishing request hands its slot over.
  return server.waitForSlot({
    queueSize: options.spec.server_limits.queue_size,
    timeoutMs: options.spec.server_limits.queue_timeout * 1000,
    signal: options.signal(),
    url: server.url,
  }).then(() => new ServerLease(picked, { route, facts: options.facts }));
}
