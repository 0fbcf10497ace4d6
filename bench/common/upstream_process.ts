/**
 * Starts the bench upstream (`bench/common/upstream.ts`) as a pinned process and waits until it answers,
 * for every benchmark that needs one.
 *
 * @module
 */
import { freePort, type Spawned, spawnPinned, waitUntil } from "./proc.ts";

const UPSTREAM = new URL("./upstream.ts", import.meta.url).pathname;

/** Options for {@link startUpstreamProcess}. */
export interface UpstreamProcessOptions {
  /** CPU list for `taskset -c`. */
  cpus: string;
  /** File for its output. */
  log: string;
  /** SSE chunks per streamed answer (the upstream's default when unset). */
  chunks?: number;
  /** Milliseconds between SSE chunks (the upstream's default when unset). */
  intervalMs?: number;
}

/** A running bench upstream. */
export interface UpstreamProcess {
  /** Base URL, e.g. `http://127.0.0.1:9100`. */
  readonly url: string;
  /** The process. */
  readonly process: Spawned;
}

/**
 * Starts the bench upstream on a free port and waits for its `/health`.
 *
 * @param options CPUs, log file and SSE shape.
 * @returns The running upstream.
 * @throws Error when it does not answer within 20 s (it is stopped first).
 */
export async function startUpstreamProcess(
  options: UpstreamProcessOptions,
): Promise<UpstreamProcess> {
  const port = freePort();
  const process = spawnPinned([
    Deno.execPath(),
    "run",
    "--allow-net",
    UPSTREAM,
    "--port",
    String(port),
    ...(options.chunks === undefined ? [] : ["--chunks", String(options.chunks)]),
    ...(options.intervalMs === undefined ? [] : ["--interval-ms", String(options.intervalMs)]),
  ], { cpus: options.cpus, log: options.log });
  const url = `http://127.0.0.1:${port}`;
  const notReady = await waitUntil(async () => {
    const response = await fetch(`${url}/health`);
    await response.body?.cancel();
    return response.ok;
  }, { timeoutMs: 20_000, process });
  if (notReady !== undefined) {
    await process.stop();
    throw new Error(`The bench upstream did not start: ${notReady}`);
  }
  return { url, process };
}
