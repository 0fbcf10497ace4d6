/**
 * Starts the control plane of a running gateway: the spec store (single writer of the spec file),
 * the watcher that hot-reloads edits of the file, and the admin API's routes, and says at start-up
 * how changes are kept and who may make them.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { LoadSpecOptions } from "../config/load.ts";
import type { SpecFormat } from "../config/spec_file.ts";
import { SpecStore, type SpecTarget } from "../config/store.ts";
import { SpecWatcher } from "../config/watch.ts";
import type { Gateway } from "../gateway/gateway.ts";
import type { RouteHandler } from "../gateway/server.ts";
import { ADMIN_TOKEN_ENV, AdminAuth } from "./auth.ts";
import { createAdminRoutes } from "./routes.ts";

const logger = getLogger(["llmstream", "admin"]);

/** Options for {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** The spec file; without one (demo mode) admin changes live in memory. */
  path?: string;
  /** The raw text the gateway's spec was loaded from. */
  text: string;
  /** Its format (default: from `path`, else YAML). */
  format?: SpecFormat;
  /** Write admin changes back to the file (default true). */
  writeBack?: boolean;
  /** Reload the file when it changes (default true when there is a file). */
  watch?: boolean;
  /** Debounce of the watcher in milliseconds (default 150). */
  debounceMs?: number;
  /** Environment and strategy catalog for validating new specs (as the first load used). */
  load?: LoadSpecOptions;
  /** Reads `LLMSTREAM_ADMIN_TOKEN` (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
  /**
   * What changes are put in force on (default the gateway); with several workers, the cluster,
   * which applies them in every worker before the admin call returns.
   */
  target?: SpecTarget;
}

/** A running control plane. */
export interface ControlPlane {
  /** The spec store. */
  readonly store: SpecStore;
  /** The file watcher, when watching. */
  readonly watcher: SpecWatcher | undefined;
  /** The admin API, for `startGateway(gateway, { routes: [routes] })`. */
  readonly routes: RouteHandler;
  /** Stops watching and waits for changes in progress. */
  close(): Promise<void>;
}

/**
 * Starts the spec store, the watcher and the admin API for a gateway.
 *
 * @param gateway The gateway, built from `options.text`.
 * @param options The spec file, its text, write-back and watching.
 * @returns The control plane; call `close()` on shutdown.
 * @example
 * ```ts
 * const source = await readSpecFile("config.yaml");
 * const gateway = new Gateway(source.loaded);
 * const control = await startControlPlane(gateway, { path: "config.yaml", text: source.text });
 * const running = startGateway(gateway, { port: 8000, routes: [control.routes] });
 * ```
 */
export async function startControlPlane(
  gateway: Gateway,
  options: ControlPlaneOptions,
): Promise<ControlPlane> {
  const store = await SpecStore.open(options.target ?? gateway, {
    text: options.text,
    ...(options.path !== undefined && { path: options.path }),
    ...(options.format && { format: options.format }),
    ...(options.writeBack !== undefined && { writeBack: options.writeBack }),
    ...(options.load && { load: options.load }),
  });
  const watcher = options.path !== undefined && options.watch !== false
    ? new SpecWatcher(
      store,
      options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs },
    )
    : undefined;
  const auth = new AdminAuth(gateway, options.env ? { env: options.env } : {});
  const routes = createAdminRoutes(gateway, { store, auth });

  if (store.memoryReason === undefined) {
    logger.info("Admin API changes are written back to {path}", { path: options.path });
  } else {
    logger.info("Admin API changes stay in memory: {reason}", { reason: store.memoryReason });
  }
  if (watcher) {
    logger.info("Watching {path} for edits; valid ones apply at once", { path: options.path });
  }
  if (auth.source === "none") {
    logger.warn(
      "The admin API has no token (set admin.token in the spec or {env}): it answers only " +
        "clients on loopback",
      { env: ADMIN_TOKEN_ENV },
    );
  } else {
    logger.info("The admin API needs the bearer token from {source}", {
      source: auth.source === "spec" ? "the spec's admin.token" : ADMIN_TOKEN_ENV,
    });
  }
  return {
    store,
    watcher,
    routes,
    async close() {
      await watcher?.close();
      await store.idle();
    },
  };
}
