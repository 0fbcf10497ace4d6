/**
 * The routing benchmark's oracle baseline, as a strategy file: join the shortest queue normalised
 * by speed (shortest expected delay), using the simulators' exact state at pick time (read
 * in-process: no scrape, no delay), which no real gateway can see:
 *
 *     score = (running + waiting + pending + 1) / speed
 *
 * where `pending` counts requests the gateway sent that the simulator has not received yet. The
 * lowest score wins; ties go to the faster server. The benchmark registers its fleet with
 * {@link setOracleFleet} before the gateway starts.
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "../../strategies/types.ts";
import type { FleetServer } from "./fleet.ts";

const fleet = new Map<string, FleetServer>();
const started = new Map<string, number>();

/**
 * Registers the simulators the oracle reads, by URL; replaces any earlier fleet.
 *
 * @param servers The fleet.
 */
export function setOracleFleet(servers: readonly FleetServer[]): void {
  fleet.clear();
  started.clear();
  for (const server of servers) fleet.set(server.sim.url, server);
}

/**
 * The oracle's score of a server (lower is better).
 *
 * @param view The gateway's view of the server.
 * @returns Expected delay in units of a speed-1 request.
 */
export function oracleScore(view: ServerView): number {
  const server = fleet.get(view.url);
  if (server === undefined) return Infinity;
  const state = server.sim.state();
  const pending = Math.max(0, (started.get(view.url) ?? 0) - state.received);
  return (state.running + state.waiting + pending + 1) / server.speed;
}

/**
 * Creates the oracle strategy.
 *
 * @param _options Unused.
 * @returns The strategy.
 */
export default function createOracle(_options: StrategyOptions): Strategy {
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      let best: ServerView | undefined;
      let bestScore = Infinity;
      let bestSpeed = 0;
      for (const server of servers) {
        const score = oracleScore(server);
        const speed = fleet.get(server.url)?.speed ?? 0;
        if (score < bestScore || (score === bestScore && speed > bestSpeed)) {
          best = server;
          bestScore = score;
          bestSpeed = speed;
        }
      }
      return best ?? servers[0];
    },
    onStart(server: ServerView): void {
      started.set(server.url, (started.get(server.url) ?? 0) + 1);
    },
  };
}
