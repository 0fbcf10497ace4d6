/**
 * Test helper: `main.ts` as its own process (as an operator runs it), on a free loopback port,
 * with a spec written to a temporary file.
 *
 * @module
 */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** A running `main.ts`. */
export interface MainProcess {
  /** Its base URL. */
  readonly url: string;
  /** Its spec file. */
  readonly specPath: string;
  /** Everything it logged so far. */
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
export async function startMain(spec: unknown, args: string[] = []): Promise<MainProcess> {
  const dir = await Deno.makeTempDir();
  const specPath = `${dir}/spec.json`;
  await Deno.writeTextFile(specPath, JSON.stringify(spec, null, 2));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, "-A", MAIN, "--config", specPath, "--host", "127.0.0.1"]
      .concat(["--port", "0", ...args]),
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
    specPath,
    log: () => log,
    terminate,
    async stop() {
      terminate();
      const status = await child.status;
      await drained;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return status;
    },
  };
}
