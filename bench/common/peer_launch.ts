/**
 * What every contender of the proxy benchmark shares: where it runs, what a started one offers,
 * and how a process is launched and waited for.
 *
 * @module
 */
import { logTail, type Spawned, spawnPinned, waitUntil } from "./proc.ts";

/** Where a contender runs. */
export interface PeerContext {
  /** Base URL of the upstream, e.g. `http://127.0.0.1:9100`. */
  upstreamUrl: string;
  /** The peers' install folder (`.cache/bench`). */
  cacheDir: string;
  /** Folder for generated configs and logs of this run. */
  runDir: string;
  /** The repository root. */
  repoDir: string;
  /** CPU list for the contender. */
  cpus: string;
}

/** A started contender. */
export interface RunningPeer {
  /** URL of its chat completions endpoint. */
  url: string;
  /** Headers every request needs. */
  headers: Record<string, string>;
  /** The process tree to measure; undefined for direct. */
  process?: Spawned;
  /** Version text. */
  version: string;
  /** How it was run, for the report. */
  how: string;
  /** Stops it. */
  stop(): Promise<void>;
}

/** A contender. */
export interface Peer {
  /** Short name used in flags and tables. */
  name: string;
  /** Starts it; throws with the reason when it cannot run. */
  start(context: PeerContext): Promise<RunningPeer>;
}

/** The chat completions path every contender serves. */
export const CHAT = "/v1/chat/completions";

/** Options for {@link llmstreamArgs}. */
export interface LlmstreamArgs {
  /** The spec file. */
  spec: string;
  /** The port to listen on. */
  port: number;
  /** The log level (default `warning`). */
  level?: string;
  /** Extra `deno run` flags before the permissions (e.g. `--inspect=...`). */
  flags?: readonly string[];
  /** Data-plane workers (default 1: one isolate, as every benchmark ran before workers). */
  workers?: number;
}

/**
 * The `deno run ... main.ts` command line every benchmark uses for LLMStream.
 *
 * @param repoDir The repository folder.
 * @param options Spec, port, log level and extra flags.
 * @returns argv, starting with the deno binary.
 */
export function llmstreamArgs(repoDir: string, options: LlmstreamArgs): string[] {
  return [
    Deno.execPath(),
    "run",
    ...(options.flags ?? []),
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    `${repoDir}/main.ts`,
    "--config",
    options.spec,
    "--host",
    "127.0.0.1",
    "--port",
    String(options.port),
    "--log-level",
    options.level ?? "warning",
    "--workers",
    String(options.workers ?? 1),
  ];
}

async function probe(url: string, headers: Record<string, string>): Promise<boolean> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: '{"model":"bench","messages":[{"role":"user","content":"ready?"}],"max_tokens":4}',
    signal: AbortSignal.timeout(3000),
  });
  await response.arrayBuffer();
  return response.status === 200;
}

/**
 * Starts a contender's process and waits until it proxies a chat request.
 *
 * @param context Where it runs.
 * @param spec Its name, command line, environment and port.
 * @param extra Headers it needs, its version and the start-up deadline.
 * @returns The running contender.
 */
export async function launch(
  context: PeerContext,
  spec: { name: string; argv: string[]; env?: Record<string, string>; port: number },
  extra: { headers?: Record<string, string>; version: string; timeoutMs?: number },
): Promise<RunningPeer> {
  const process = spawnPinned(spec.argv, {
    cpus: context.cpus,
    log: `${context.runDir}/${spec.name}.log`,
    cwd: context.runDir,
    ...(spec.env ? { env: spec.env } : {}),
  });
  const url = `http://127.0.0.1:${spec.port}${CHAT}`;
  const headers = extra.headers ?? {};
  const why = await waitUntil(() => probe(url, headers), {
    timeoutMs: extra.timeoutMs ?? 60_000,
    process,
  });
  if (why !== undefined) {
    await process.stop();
    throw new Error(`${why}; log: ${logTail(process.log)}`);
  }
  return {
    url,
    headers,
    process,
    version: extra.version,
    how: spec.argv.map((word) => word.replace(context.repoDir + "/", "")).join(" "),
    stop: () => process.stop(),
  };
}

/**
 * Whether a path exists.
 *
 * @param path The path.
 * @returns True when it does.
 */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Version of a pip package installed in a venv, from its dist-info folder name.
 *
 * @param venv The venv folder.
 * @param dist The distribution name as in the folder name, e.g. `vllm_router`.
 * @returns The version, or `?`.
 */
export function pipVersion(venv: string, dist: string): string {
  for (const lib of Deno.readDirSync(`${venv}/lib`)) {
    for (const entry of Deno.readDirSync(`${venv}/lib/${lib.name}/site-packages`)) {
      const match = new RegExp(`^${dist}-(.+)\\.dist-info$`).exec(entry.name);
      if (match) return match[1]!;
    }
  }
  return "?";
}

/**
 * What a command prints (standard output and error), trimmed.
 *
 * @param argv The command.
 * @returns The text.
 */
export async function commandText(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0]!, { args: argv.slice(1) }).output();
  const decoder = new TextDecoder();
  return (decoder.decode(out.stdout) + decoder.decode(out.stderr)).trim();
}
