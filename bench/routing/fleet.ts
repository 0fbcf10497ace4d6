/**
 * The routing benchmark's simulated fleet: four vLLM simulators of speeds 1.0, 1.0, 0.6 and 0.3
 * with a small batch (8 running slots), so queues form well before the KV cache fills, as they do
 * on a vLLM server with `--max-num-seqs` set. Also the capacity of that fleet: computed from the
 * simulator's step-time model and measured by a closed-loop saturation probe.
 *
 * @module
 */
import { type SimOptions, type SimServer, startSimServer } from "../../sim/server.ts";
import { REQUEST_MIX, seeded } from "./traces.ts";

/** The model name the fleet serves. */
export const MODEL = "m";

/** Relative speeds of the four servers. */
export const SPEEDS: readonly number[] = [1, 1, 0.6, 0.3];

/** Simulator options shared by every server (speed aside). */
export const SIM_OPTIONS: Readonly<SimOptions> = {
  models: [MODEL],
  itlMs: 10,
  ttftMs: 5,
  prefillMsPerToken: 0.05,
  batchFactor: 0.02,
  maxNumSeqs: 8,
};

/** A running simulator with its speed. */
export interface FleetServer {
  /** The simulator. */
  sim: SimServer;
  /** Its speed multiplier. */
  speed: number;
}

/**
 * Starts a fresh fleet.
 *
 * @returns One simulator per entry of {@link SPEEDS}, in that order.
 */
export async function startFleet(): Promise<FleetServer[]> {
  return await Promise.all(
    SPEEDS.map(async (speed) => ({
      sim: await startSimServer({ ...SIM_OPTIONS, port: 0, speed }),
      speed,
    })),
  );
}

/**
 * Fleet capacity in requests per second from the simulator's step-time model, for the mean request
 * of {@link REQUEST_MIX}: a full batch decodes `maxNumSeqs` tokens per step of
 * `itlMs * (1 + batchFactor * (maxNumSeqs - 1))`, and each request adds one prefill of
 * `ttftMs + promptTokens * prefillMsPerToken` (its first token comes out of that step).
 *
 * @returns Requests per second, summed over the servers.
 */
export function computedCapacity(): number {
  const o = SIM_OPTIONS;
  const slots = o.maxNumSeqs ?? 1;
  const prompt = (REQUEST_MIX.promptTokens[0] + REQUEST_MIX.promptTokens[1]) / 2;
  const output = (REQUEST_MIX.outputTokens[0] + REQUEST_MIX.outputTokens[1]) / 2;
  const stepMs = (o.itlMs ?? 0) * (1 + (o.batchFactor ?? 0) * (slots - 1));
  const perRequestMs = (output - 1) * stepMs / slots + (o.ttftMs ?? 0) +
    prompt * (o.prefillMsPerToken ?? 0);
  return SPEEDS.reduce((sum, speed) => sum + speed * 1000 / perRequestMs, 0);
}

/** What the saturation probe found. */
export interface ProbeResult {
  /** Requests per second per server, in {@link SPEEDS} order. */
  perServer: number[];
  /** Their sum: the fleet's capacity. */
  total: number;
}

/**
 * Measures capacity: each server directly (no gateway) gets a closed loop of `2 * maxNumSeqs`
 * streaming clients sending the benchmark's request mix, so it always has a full batch and a queue.
 * Output tokens received after a warm-up, divided by the mean output length, give requests per
 * second (tokens count partial requests too, so short windows stay accurate).
 *
 * @param seconds Measuring window, after a warm-up of 1 s.
 * @returns Requests per second, per server and in total.
 */
export async function probeCapacity(seconds: number): Promise<ProbeResult> {
  const fleet = await startFleet();
  const clients = 2 * (SIM_OPTIONS.maxNumSeqs ?? 1);
  const warmupMs = 1000;
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const measureTo = measureFrom + seconds * 1000;
  const tokens = fleet.map(() => 0);
  const random = seeded(7);
  const loops = fleet.flatMap((server, index) =>
    Array.from({ length: clients }, async () => {
      while (performance.now() < measureTo) {
        const prompt = REQUEST_MIX.promptTokens;
        const size = prompt[0] + Math.floor(random() * (prompt[1] - prompt[0]));
        const output = REQUEST_MIX.outputTokens;
        const maxTokens = output[0] + Math.floor(random() * (output[1] - output[0] + 1));
        const response = await fetch(`${server.sim.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: MODEL,
            prompt: `probe ${random()} ${"x".repeat(size * 4)}`,
            max_tokens: maxTokens,
            stream: true,
          }),
        });
        const reader = response.body?.getReader();
        if (!reader) continue;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const now = performance.now();
          if (now < measureFrom || now > measureTo) continue;
          tokens[index]! += countEvents(value);
        }
      }
    })
  );
  await Promise.all(loops);
  await Promise.all(fleet.map((server) => server.sim.close()));
  const output = (REQUEST_MIX.outputTokens[0] + REQUEST_MIX.outputTokens[1]) / 2;
  const perServer = tokens.map((count) => count / seconds / output);
  return { perServer, total: perServer.reduce((sum, value) => sum + value, 0) };
}

/** Token events in a chunk of SSE bytes: `data: {` lines with a `"text"` field. */
function countEvents(bytes: Uint8Array): number {
  const text = new TextDecoder().decode(bytes);
  let count = 0;
  for (let at = text.indexOf('"text":'); at >= 0; at = text.indexOf('"text":', at + 7)) count++;
  return count;
}
