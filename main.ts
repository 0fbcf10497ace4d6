/**
 * LLMStream's command line: load the spec, start the gateway, and with no `--config` start a
 * simulated demo fleet behind it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getLogger } from "@logtape/logtape";
import { DEMO_FLEET, DEMO_SPEC } from "./config/demo.ts";
import { type LoadedSpec, type LoadSpecOptions, loadSpecText, SpecError } from "./config/load.ts";
import type { Spec } from "./config/schema.ts";
import { readSpecFile, type SpecFormat } from "./config/spec_file.ts";
import { SharedFleet } from "./fleet/shared_fleet.ts";
import { Cluster } from "./workers/cluster.ts";
import { startControlPlane } from "./admin/control_plane.ts";
import { Gateway } from "./gateway/gateway.ts";
import { HealthChecker } from "./fleet/health.ts";
import { closeLogging, setupLogging } from "./common/log.ts";
import { MetricsFeed } from "./fleet/metrics_feed.ts";
import { startGateway } from "./gateway/server.ts";
import { type SimServer, startSimServer } from "./sim/server.ts";

const HELP = `LLMStream: an OpenAI-compatible gateway for fleets of LLM servers.

Usage: deno task start [options]

Options:
  --config PATH       Spec file (.yaml, .yml or .json). Without it, an embedded demo spec
                      starts a simulated vLLM fleet on loopback.
  --host HOST         Address to listen on (default 0.0.0.0).
  --port N            Port to listen on (default 8000).
  --log-format FMT    text (default) or json.
  --log-level LEVEL   debug, info (default), warning or error.
  --no-write-back     Keep admin API changes in memory instead of writing them to the spec.
  --workers N|auto    Data-plane workers sharing the port (default: the spec's workers, else
                      auto, one per CPU). 1 serves from the main process alone.
  --help              Show this help.
`;

/** The command line's flags, as `node:util`'s `parseArgs` takes them (deploy tests read them). */
export const CLI_OPTIONS = {
  config: { type: "string" },
  host: { type: "string", default: "0.0.0.0" },
  port: { type: "string", default: "8000" },
  "log-format": { type: "string", default: "text" },
  "log-level": { type: "string", default: "info" },
  "no-write-back": { type: "boolean", default: false },
  workers: { type: "string" },
  help: { type: "boolean", default: false },
} as const;

const logger = getLogger(["llmstream", "main"]);

async function main(args: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args,
      options: CLI_OPTIONS,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${HELP}`);
    return 2;
  }
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`Invalid --port "${flags.port}": expected a whole number from 0 to 65535`);
    return 2;
  }
  const format = flags["log-format"];
  const level = flags["log-level"];
  if (format !== "text" && format !== "json") {
    console.error(`Invalid --log-format "${format}": expected text or json`);
    return 2;
  }
  if (level !== "debug" && level !== "info" && level !== "warning" && level !== "error") {
    console.error(`Invalid --log-level "${level}": expected debug, info, warning or error`);
    return 2;
  }
  const workersFlag = flags.workers === undefined ? undefined : parseWorkers(flags.workers);
  if (workersFlag === null) {
    console.error(
      `Invalid --workers "${flags.workers}": expected auto or a whole number from 1 to 256`,
    );
    return 2;
  }
  await setupLogging({ format, level });

  const fleet: SimServer[] = [];
  let loaded: LoadedSpec;
  let text = DEMO_SPEC;
  let specFormat: SpecFormat = "yaml";
  let demoEnv: (readonly [string, string])[] = [];
  let load: LoadSpecOptions = {};
  try {
    if (flags.config !== undefined) {
      ({ loaded, text, format: specFormat } = await readSpecFile(flags.config));
    } else {
      for (const model of DEMO_FLEET) {
        fleet.push(await startSimServer({ port: 0, models: [model] }));
      }
      demoEnv = fleet.map((sim, i) => [`DEMO_SERVER_${i + 1}`, sim.url] as const);
      const urls = new Map(demoEnv);
      load = { env: (name) => urls.get(name) };
      loaded = await loadSpecText(DEMO_SPEC, { ...load, format: "yaml" });
    }
  } catch (error) {
    await Promise.all(fleet.map((sim) => sim.close()));
    if (error instanceof SpecError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }

  const workers = workerCount(workersFlag ?? loaded.spec.workers);
  const shared = workers > 1 ? new SharedFleet() : undefined;
  const gateway = new Gateway(loaded, shared && { shared, controlOnly: true });
  let cluster: Cluster | undefined;
  try {
    await gateway.startPlugins();
    if (shared) {
      cluster = await Cluster.start(gateway, {
        count: workers,
        host: flags.host,
        port,
        log: { format, level },
        spec: {
          text,
          format: specFormat,
          source: flags.config,
          env: demoEnv.length === 0 ? undefined : demoEnv,
        },
      });
    }
  } catch (error) {
    await Promise.all(fleet.map((sim) => sim.close()));
    console.error(`Cannot start: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  const feed = new MetricsFeed(gateway, { onRecord: () => cluster?.pushFleet() });
  const health = new HealthChecker(gateway);
  const control = await startControlPlane(gateway, {
    text,
    load,
    writeBack: !flags["no-write-back"],
    ...(flags.config !== undefined && { path: flags.config }),
    ...(cluster && { target: cluster }),
  });
  cluster?.serveAdmin(control.routes);
  const running = cluster
    ? undefined
    : startGateway(gateway, { hostname: flags.host, port, routes: [control.routes] });
  if (fleet.length > 0) {
    logger.info(
      "Demo mode: {count} simulated vLLM servers on {urls} serve the models below. " +
        "To use real servers, write a spec and run: deno task start --config config.yaml",
      { count: fleet.length, urls: fleet.map((sim) => sim.url).join(", ") },
    );
  } else {
    logger.info("Loaded spec {path}", { path: flags.config });
  }
  for (const route of gateway.routes.values()) {
    logger.info("Model {model}: {strategy} over {servers}", {
      model: route.name,
      strategy: route.strategyRef,
      servers: route.endpoints.map((endpoint) => endpoint.url).join(", ") || "(no servers)",
    });
  }
  const url = running?.url ?? `http://${hostText(flags.host)}:${cluster!.port}`;
  if (cluster) {
    logger.info("LLMStream listening on {url} with {count} workers", {
      url,
      count: cluster.count,
    });
  } else logger.info("LLMStream listening on {url}", { url });

  const stopped = Promise.withResolvers<string>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stopped.resolve(signal));
  }
  const signal = await stopped.promise;
  const drainSeconds = gateway.spec.shutdown.drain_timeout;
  gateway.draining = true;
  logger.info(
    "Received {signal}: refusing new connections, finishing requests in flight (up to {seconds} s)",
    { signal, seconds: drainSeconds },
  );
  const drained = cluster ? await cluster.drain(drainSeconds * 1000) : await Promise.race([
    running!.close().then(() => true),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), drainSeconds * 1000)),
  ]);
  cluster?.terminate();
  if (!drained) {
    logger.warn("Requests still in flight after {seconds} s are cut off", {
      seconds: drainSeconds,
    });
  }
  await control.close();
  health.stop();
  await feed.stop();
  await gateway.closePlugins();
  await Promise.all(fleet.map((sim) => sim.close()));
  logger.info("LLMStream stopped");
  return 0;
}

/** `auto` or a count from 1 to 256; `null` when invalid. */
function parseWorkers(value: string): Spec["workers"] | null {
  if (value === "auto") return "auto";
  const count = Number(value);
  return Number.isInteger(count) && count >= 1 && count <= 256 ? count : null;
}

/** The number of workers to run: `auto` is one per CPU, as nginx's `worker_processes auto`. */
function workerCount(workers: Spec["workers"]): number {
  return workers === "auto" ? Math.max(1, navigator.hardwareConcurrency || 1) : workers;
}

function hostText(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  await closeLogging();
  Deno.exit(code);
}
