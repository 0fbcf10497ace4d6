/**
 * Test helper: a gateway on a free loopback port in front of simulated vLLM servers.
 *
 * @module
 */
import { loadSpecText } from "../../config/load.ts";
import { Gateway } from "../../gateway/gateway.ts";
import { HealthChecker } from "../../fleet/health.ts";
import { MetricsFeed } from "../../fleet/metrics_feed.ts";
import { type RouteHandler, type RunningGateway, startGateway } from "../../gateway/server.ts";
import { type SimOptions, type SimServer, startSimServer } from "../../sim/server.ts";

/** A running gateway with its simulated servers. */
export interface Stack {
  /** The gateway's base URL. */
  readonly url: string;
  /** The gateway state. */
  readonly gateway: Gateway;
  /** The HTTP server. */
  readonly running: RunningGateway;
  /** Simulated servers, in the order asked for. */
  readonly sims: SimServer[];
  /** The metrics feed, when asked for. */
  readonly feed: MetricsFeed | undefined;
  /** Stops everything. */
  close(): Promise<void>;
}

/** Options for {@link startStack}. */
export interface StackOptions {
  /** One entry per simulated server. */
  sims?: SimOptions[];
  /** Spec builder, given the simulators' URLs: an object, or YAML text. */
  spec(urls: string[]): Record<string, unknown> | string;
  /** Write the spec to this file first and load it as from there (`.json`: JSON, else YAML). */
  specFile?: string;
  /** Extra routes (e.g. the admin API), made once the gateway exists; given the spec's text. */
  routes?(gateway: Gateway, text: string): Promise<RouteHandler[]>;
  /** Scrape the servers' `/metrics` as `main.ts` does (default false). */
  scrape?: boolean;
  /** Run active health checks as `main.ts` does (default false). */
  health?: boolean;
}

/**
 * Starts simulators and a gateway whose spec names them.
 *
 * @param options Simulator options and the spec.
 * @returns The stack; call `close()` when done.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const sims: SimServer[] = [];
  for (const simOptions of options.sims ?? []) {
    sims.push(await startSimServer({ port: 0, ...simOptions }));
  }
  const spec = options.spec(sims.map((sim) => sim.url));
  const text = typeof spec === "string" ? spec : JSON.stringify(spec, null, 2);
  if (options.specFile) await Deno.writeTextFile(options.specFile, text);
  const loaded = await loadSpecText(text, {
    format: typeof spec === "string" && !/\.json$/i.test(options.specFile ?? "") ? "yaml" : "json",
    ...(options.specFile && { source: options.specFile }),
  });
  const gateway = new Gateway(loaded);
  await gateway.startPlugins();
  const feed = options.scrape ? new MetricsFeed(gateway) : undefined;
  const health = options.health ? new HealthChecker(gateway) : undefined;
  const routes = await options.routes?.(gateway, text) ?? [];
  const running = startGateway(gateway, { hostname: "127.0.0.1", port: 0, routes });
  return {
    url: running.url,
    gateway,
    running,
    sims,
    feed,
    async close() {
      // Simulators first: that ends any stream still open, so the gateway can shut down.
      await feed?.stop();
      health?.stop();
      await Promise.all(sims.map((sim) => sim.close()));
      await running.close();
      await gateway.closePlugins();
    },
  };
}

/**
 * Posts JSON and returns the response (body unread).
 *
 * @param url Full URL.
 * @param body A value to send as JSON, or a string sent as is.
 * @returns The response.
 */
export function postJson(url: string, body: unknown, headers: HeadersInit = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/**
 * Polls a condition until it holds or the deadline passes.
 *
 * @param condition Returns true when done.
 * @param options Deadline in milliseconds and a description for the failure message.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${options.what ?? "condition"}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Sum of in-flight counts across the gateway's servers.
 *
 * @param gateway The gateway.
 * @returns The total.
 */
export function totalInFlight(gateway: Gateway): number {
  let total = 0;
  for (const server of gateway.pool.all()) total += server.inFlight;
  return total;
}
