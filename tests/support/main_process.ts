/**
 * Test helper: `main.ts` as its own process (as an operator runs it), on a free loopback port,
 * with the flags given ({@link spawnMain}) or a spec written to a temporary file ({@link startMain}).
 *
 * @module
 */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** A running `main.ts`. */
export interface MainProcess {
  /** Its base URL. */
  readonly url: string;
  /** Everything it logged so far (standard output and error). */
  log(): string;
  /** Sends SIGTERM without waiting. */
  terminate(): void;
  /** Sends SIGTERM (unless sent) and waits for the exit. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Starts `main.ts` with a spec and resolves once it logs that it listens.
 *
 * @param spec The spec (written as JSON).
 * @param args Extra flags, e.g. `["--workers", "2"]`.
 * @returns The process.
 */
export async function startMain(
  spec: unknown,
  args: string[] = [],
): Promise<MainProcess & { readonly specPath: string }> {
  const dir = await Deno.makeTempDir();
  const specPath = `${dir}/spec.json`;
  await Deno.writeTextFile(specPath, JSON.stringify(spec, null, 2));
  const main = await spawnMain(["--config", specPath, ...args]).catch(async (error) => {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  });
  return {
    ...main,
    specPath,
    async stop() {
      const status = await main.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return status;
    },
  };
}

/**
 * Starts `main.ts` on a free loopback port with the flags given and resolves once it logs that
 * it listens.
 *
 * @param args Flags, e.g. `["--config", path]`; none starts the demo fleet.
 * @returns The process.
 */
export async function spawnMain(args: string[]): Promise<MainProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, "-A", MAIN, "--host", "127.0.0.1", "--port", "0", ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { LLMSTREAM_ADMIN_TOKEN: "" },
  }).spawn();
  let log = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const chunk = await reader.read().catch(() => ({ done: true, value: "" }));
      if (chunk.done) break;
      log += chunk.value;
    }
  };
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const deadline = Date.now() + 30_000;
  let match: RegExpExecArray | null = null;
  let exited = false;
  child.status.then(() => exited = true);
  while (!(match = /listening on "?(http:\/\/[^\s"]+)/.exec(log))) {
    if (Date.now() > deadline || exited) {
      if (!exited) child.kill("SIGKILL");
      await drained;
      throw new Error(`main.ts did not start:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  let signalled = false;
  const terminate = () => {
    if (signalled) return;
    signalled = true;
    child.kill("SIGTERM");
  };
  return {
    url: match[1]!,
    log: () => log,
    terminate,
    async stop() {
      terminate();
      const status = await child.status;
      await drained;
      return status;
    },
  };
}
