/**
 * Test helper for the admin API and spec watching: a gateway in front of simulated servers, loaded
 * from a spec file in a fresh temporary folder, with the control plane (store, watcher, admin
 * routes) started as `main.ts` starts it.
 *
 * @module
 */
import {
  type ControlPlane,
  type ControlPlaneOptions,
  startControlPlane,
} from "../../admin/control_plane.ts";
import type { SpecChange } from "../../config/store.ts";
import type { SimOptions } from "../../sim/server.ts";
import { type Stack, startStack, waitFor } from "./stack.ts";

/** A stack with its spec file and control plane. */
export interface AdminStack extends Stack {
  /** The control plane. */
  readonly control: ControlPlane;
  /** The spec file. */
  readonly path: string;
  /** The temporary folder holding it. */
  readonly dir: string;
  /** Every change outcome the store reported, oldest first. */
  readonly changes: SpecChange[];
  /** Sends an admin request with a JSON body (when given) and returns the response. */
  admin(method: string, path: string, body?: unknown, headers?: HeadersInit): Promise<Response>;
}

/** Options for {@link withAdminStack}. */
export interface AdminStackOptions {
  /** Simulated servers (default two fast ones). */
  sims?: SimOptions[];
  /** The spec text, given the simulators' URLs. */
  spec(urls: string[]): string;
  /** The spec file's name (default `config.yaml`). */
  file?: string;
  /** Control plane options (default: no watcher). */
  control?: Partial<ControlPlaneOptions>;
  /** Prepares the folder before the gateway starts (e.g. symlinks); returns the spec path. */
  prepare?(dir: string, text: string): Promise<string>;
}

/**
 * Runs `fn` with an admin stack, then closes everything and removes the folder.
 *
 * @param options Simulators, spec and control plane options.
 * @param fn The test body.
 */
export async function withAdminStack(
  options: AdminStackOptions,
  fn: (stack: AdminStack) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "llmstream-admin-" });
  let path = `${dir}/${options.file ?? "config.yaml"}`;
  let control: ControlPlane | undefined;
  const changes: SpecChange[] = [];
  let stack: Stack | undefined;
  try {
    stack = await startStack({
      sims: options.sims ?? [{ itlMs: 1, ttftMs: 1 }, { itlMs: 1, ttftMs: 1 }],
      spec: options.spec,
      ...(options.prepare ? {} : { specFile: path }),
      routes: async (gateway, text) => {
        if (options.prepare) path = await options.prepare(dir, text);
        control = await startControlPlane(gateway, {
          path,
          text,
          watch: false,
          ...options.control,
        });
        control.store.onChange((change) => changes.push(change));
        return [control.routes];
      },
    });
    const url = stack.url;
    await fn({
      ...stack,
      control: control!,
      path,
      dir,
      changes,
      admin: (method, route, body, headers = {}) =>
        fetch(`${url}${route}`, {
          method,
          headers: body === undefined
            ? headers
            : { "content-type": "application/json", ...headers },
          ...(body !== undefined &&
            { body: typeof body === "string" ? body : JSON.stringify(body) }),
        }),
    });
  } finally {
    await control?.close();
    await stack?.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Waits until the store reports a change matching `predicate` after the first `skip` ones.
 *
 * @param stack The admin stack.
 * @param predicate Which change to wait for.
 * @param options How many earlier changes to ignore, and what to say on timeout.
 * @returns The change.
 */
export async function waitForChange(
  stack: AdminStack,
  predicate: (change: SpecChange) => boolean,
  options: { skip?: number; what?: string } = {},
): Promise<SpecChange> {
  let found: SpecChange | undefined;
  await waitFor(() => {
    found = stack.changes.slice(options.skip ?? 0).find(predicate);
    return found !== undefined;
  }, { what: options.what ?? "a spec change" });
  return found!;
}

/**
 * Sends a chat completion and returns which simulator answered.
 *
 * @param stack The admin stack.
 * @param model The model to ask.
 * @returns The status and the index of the simulator that received it (-1 if none).
 */
export async function ask(stack: Stack, model: string): Promise<{ status: number; sim: number }> {
  const before = stack.sims.map((sim) => sim.state().received);
  const response = await fetch(`${stack.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
  });
  await response.body?.cancel();
  const sim = stack.sims.findIndex((s, i) => s.state().received > before[i]!);
  return { status: response.status, sim };
}
