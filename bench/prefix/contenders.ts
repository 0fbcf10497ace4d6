/**
 * The contenders of the prefix-cache benchmark, each its own process in front of a fleet:
 * LLMStream with one strategy (`deno run main.ts`, one process or two replicas), or the vLLM
 * router (`vllm-router` from PyPI, installed by `bench/peers/install.sh` into `.cache/bench`) with
 * one of its policies at their default settings. The `oracle` is no router: the client picks the
 * server whose engine forecasts the earliest first token (`bench/prefix/run.ts`) and sends the
 * request straight there, a reference for what full information and no proxy hop would give, or
 * (strategy `earliest_first_token via plain proxy`) through `plain_proxy.ts`, the plainest proxy
 * Deno makes, to show what one hop on this runtime costs the same choices.
 *
 * @module
 */
import { llmstreamArgs } from "../common/peer_launch.ts";
import { freePort, logTail, type Spawned, spawnPinned, waitUntil } from "../common/proc.ts";

/** A contender as the tables name it. */
export interface Contender {
  /** `llmstream`, `vllm-router`, or the client-side `oracle`. */
  kind: "llmstream" | "vllm-router" | "oracle";
  /** The strategy or policy. */
  strategy: string;
  /** Gateway replicas (LLMStream only), requests alternating between them. */
  replicas: number;
  /** `strategy_options` (LLMStream only; a tuning variant), when not the defaults. */
  options?: Record<string, unknown>;
}

/** A contender running in front of a fleet. */
export interface RunningContender {
  /** Base URLs to send requests to, alternating. */
  urls: string[];
  /** Stops its processes. */
  stop(): Promise<void>;
}

/** Where contenders run. */
export interface ContenderContext {
  /** The repository folder. */
  repoDir: string;
  /** A folder for specs and logs. */
  runDir: string;
  /** `metrics_update_interval` for LLMStream, seconds. */
  interval: number;
}

/**
 * A contender's label in tables, e.g. `llmstream cache_aware x2`.
 *
 * @param contender The contender.
 * @returns The label.
 */
export function labelOf(contender: Contender): string {
  const replicas = contender.replicas > 1 ? ` x${contender.replicas}` : "";
  const options = contender.options === undefined ? "" : ` ${JSON.stringify(contender.options)}`;
  return `${contender.kind} ${contender.strategy}${options}${replicas}`;
}

/** The oracle's strategy name: the server forecasting the earliest first token. */
export const ORACLE_STRATEGY = "earliest_first_token";

/** The oracle's strategy name when its requests go through `plain_proxy.ts`. */
export const PROXIED_ORACLE = `${ORACLE_STRATEGY} via plain proxy`;

/**
 * How an oracle contender sends: straight to the server it picks, or through the plain proxy.
 *
 * @param contender The contender.
 * @returns `"direct"` or `"proxied"` for the oracle, `undefined` for a router.
 */
export function oracleMode(contender: Contender): "direct" | "proxied" | undefined {
  if (contender.kind !== "oracle") return undefined;
  return contender.strategy === PROXIED_ORACLE ? "proxied" : "direct";
}

/**
 * The vLLM router's launcher in the benchmark's cache folder.
 *
 * @param repoDir The repository folder.
 * @returns Its path.
 */
export function vllmRouterPath(repoDir: string): string {
  return `${repoDir}/.cache/bench/vllm-router/bin/vllm-router`;
}

/**
 * Starts a contender in front of servers and waits until it is ready.
 *
 * @param contender What to start.
 * @param options The servers' URLs and where to run.
 * @returns The running contender.
 * @throws Error with the end of its log when it does not become ready.
 */
export async function startContender(
  contender: Contender,
  options: { servers: string[]; context: ContenderContext; tag: string },
): Promise<RunningContender> {
  const { context, servers } = options;
  if (oracleMode(contender) === "direct") {
    return { urls: servers, stop: () => Promise.resolve() };
  }
  const processes: Spawned[] = [];
  const urls: string[] = [];
  try {
    for (let replica = 0; replica < contender.replicas; replica++) {
      const port = freePort();
      const name = `${options.tag}-${replica}`;
      const log = `${context.runDir}/${name}.log`;
      let argv: string[];
      let ready: string;
      if (contender.kind === "oracle") {
        const script = `${import.meta.dirname}/plain_proxy.ts`;
        argv = [Deno.execPath(), "run", "--allow-net", script, String(port)];
        ready = `http://127.0.0.1:${port}/ready`;
      } else if (contender.kind === "llmstream") {
        const spec = `${context.runDir}/${name}.json`;
        await Deno.writeTextFile(
          spec,
          JSON.stringify({
            models: {
              m: { servers, strategy: contender.strategy, strategy_options: contender.options },
            },
            metrics_update_interval: context.interval,
          }),
        );
        argv = llmstreamArgs(context.repoDir, { spec, port });
        ready = `http://127.0.0.1:${port}/ready`;
      } else {
        argv = [
          vllmRouterPath(context.repoDir),
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
          "--worker-urls",
          ...servers,
          "--policy",
          contender.strategy,
          "--prometheus-port",
          String(freePort()),
          "--log-level",
          "warning",
        ];
        ready = `http://127.0.0.1:${port}/readiness`;
      }
      const process = spawnPinned(argv, { cpus: "0-1", log, cwd: context.runDir });
      processes.push(process);
      const why = await waitUntil(async () => {
        const response = await fetch(ready, { signal: AbortSignal.timeout(2000) });
        await response.body?.cancel();
        return response.status === 200;
      }, { timeoutMs: 60_000, process });
      if (why !== undefined) throw new Error(`${labelOf(contender)}: ${why}; log: ${logTail(log)}`);
      urls.push(`http://127.0.0.1:${port}`);
    }
  } catch (error) {
    await Promise.all(processes.map((process) => process.stop()));
    throw error;
  }
  return {
    urls,
    stop: async () => {
      await Promise.all(processes.map((process) => process.stop()));
    },
  };
}
