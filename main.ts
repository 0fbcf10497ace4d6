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
import { readSpecFile } from "./config/spec_file.ts";
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
  --help              Show this help.
`;

const logger = getLogger(["llmstream", "main"]);

async function main(args: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args,
      options: {
        config: { type: "string" },
        host: { type: "string", default: "0.0.0.0" },
        port: { type: "string", default: "8000" },
        "log-format": { type: "string", default: "text" },
        "log-level": { type: "string", default: "info" },
        "no-write-back": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
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
  await setupLogging({ format, level });

  const fleet: SimServer[] = [];
  let loaded: LoadedSpec;
  let text = DEMO_SPEC;
  let load: LoadSpecOptions = {};
  try {
    if (flags.config !== undefined) {
      ({ loaded, text } = await readSpecFile(flags.config));
    } else {
      for (const model of DEMO_FLEET) {
        fleet.push(await startSimServer({ port: 0, models: [model] }));
      }
      const urls = new Map(fleet.map((sim, i) => [`DEMO_SERVER_${i + 1}`, sim.url]));
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

  const gateway = new Gateway(loaded);
  try {
    await gateway.startPlugins();
  } catch (error) {
    await Promise.all(fleet.map((sim) => sim.close()));
    console.error(`Invalid spec: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  const feed = new MetricsFeed(gateway);
  const health = new HealthChecker(gateway);
  const control = await startControlPlane(gateway, {
    text,
    load,
    writeBack: !flags["no-write-back"],
    ...(flags.config !== undefined && { path: flags.config }),
  });
  const running = startGateway(gateway, { hostname: flags.host, port, routes: [control.routes] });
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
  logger.info("LLMStream listening on {url}", { url: running.url });

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
  const drained = await Promise.race([
    running.close().then(() => true),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), drainSeconds * 1000)),
  ]);
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

if (import.meta.main) {
  const code = await main(Deno.args);
  await closeLogging();
  Deno.exit(code);
}
