/**
 * Process helpers for the proxy benchmark: start pinned processes with their output in a log file,
 * read CPU time and memory of a process tree from `/proc`, per-CPU busy time, free ports, readiness.
 *
 * @module
 */

/** A process started by {@link spawnPinned}. */
export interface Spawned {
  /** The process id (the command itself: `taskset` execs it). */
  readonly pid: number;
  /** The log file holding its standard output and error. */
  readonly log: string;
  /** Resolves with the exit code when it ends. */
  readonly exited: Promise<number>;
  /** Sends SIGTERM to the process and its descendants, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** What {@link spawnPinned} needs besides the command. */
export interface SpawnOptions {
  /** CPU list for `taskset -c`, e.g. `"1"`. */
  cpus: string;
  /** File for standard output and error. */
  log: string;
  /** Extra environment. */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`;
}

/**
 * Starts `argv` pinned to CPUs with `taskset`, its output going straight to a file (so a chatty
 * process does not make this one copy its logs).
 *
 * @param argv The command and its arguments.
 * @param options CPUs, log file, environment.
 * @returns The running process.
 */
export function spawnPinned(argv: readonly string[], options: SpawnOptions): Spawned {
  const line = `exec taskset -c ${options.cpus} ${argv.map(shellQuote).join(" ")} >` +
    `${shellQuote(options.log)} 2>&1 </dev/null`;
  const child = new Deno.Command("sh", {
    args: ["-c", line],
    env: options.env ?? {},
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const exited = child.status.then((status) => status.code);
  let done = false;
  void exited.then(() => (done = true));
  return {
    pid: child.pid,
    log: options.log,
    exited,
    async stop(graceMs = 5000) {
      if (done) return;
      const pids = [child.pid, ...descendants(child.pid)];
      for (const pid of pids) signal(pid, "SIGTERM");
      const timer = new Promise((resolve) => setTimeout(resolve, graceMs, "timeout"));
      if (await Promise.race([exited, timer]) === "timeout") {
        for (const pid of [child.pid, ...descendants(child.pid), ...pids]) signal(pid, "SIGKILL");
        await exited;
      }
    },
  };
}

function signal(pid: number, name: Deno.Signal): void {
  try {
    Deno.kill(pid, name);
  } catch {
    // gone already
  }
}

/**
 * Parent of every process, from `/proc/<pid>/stat`; empty without the right to read `/proc` (the
 * test suite's permissions), where only the process itself is signalled.
 */
function parents(): Map<number, number> {
  const map = new Map<number, number>();
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc")];
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return map;
    }
    throw error;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry.name)) continue;
    const fields = statFields(Number(entry.name));
    if (fields) map.set(Number(entry.name), Number(fields[1]));
  }
  return map;
}

/** Fields of `/proc/<pid>/stat` from the state on (index 0 is the state), or undefined. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/**
 * Every descendant of a process.
 *
 * @param pid The root.
 * @returns Their ids (not the root's).
 */
export function descendants(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const [child, parent] of parents()) {
    const list = byParent.get(parent);
    if (list) list.push(child);
    else byParent.set(parent, [child]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of byParent.get(queue.pop()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

const TICKS = 100; // USER_HZ on Linux

/**
 * CPU seconds (user + system) used so far by a process and its descendants.
 *
 * @param pid The root.
 * @returns Seconds.
 */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const id of [pid, ...descendants(pid)]) {
    const fields = statFields(id);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / TICKS;
}

/** CPU ticks of every process now, by process id. */
export type CpuSnapshot = Map<number, number>;

/**
 * CPU ticks of every process on the machine, for {@link foreignCpuSeconds}.
 *
 * @returns Ticks by process id.
 */
export function cpuSnapshot(): CpuSnapshot {
  const out: CpuSnapshot = new Map();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const fields = statFields(Number(entry.name));
    if (fields) out.set(Number(entry.name), Number(fields[11]) + Number(fields[12]));
  }
  return out;
}

/**
 * CPU seconds that processes outside the given trees (other users of the machine) used since a
 * snapshot; processes that ended in between are not counted.
 *
 * @param before A {@link cpuSnapshot} taken earlier.
 * @param roots Process trees to leave out.
 * @returns Seconds.
 */
export function foreignCpuSeconds(before: CpuSnapshot, roots: readonly number[]): number {
  const mine = new Set<number>();
  for (const root of roots) for (const id of [root, ...descendants(root)]) mine.add(id);
  let ticks = 0;
  for (const [pid, now] of cpuSnapshot()) {
    if (!mine.has(pid)) ticks += now - (before.get(pid) ?? 0);
  }
  return ticks / TICKS;
}

/**
 * Resident memory of a process tree, summed, from `/proc/<pid>/status`.
 *
 * @param pid The root.
 * @param field `VmRSS` (now) or `VmHWM` (peak of each process).
 * @returns Bytes.
 */
export function memoryBytes(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  let kb = 0;
  for (const id of [pid, ...descendants(pid)]) {
    try {
      const text = Deno.readTextFileSync(`/proc/${id}/status`);
      kb += Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return kb * 1024;
}

/** Samples a tree's RSS every `everyMs` until stopped; returns the peak in bytes. */
export function sampleRss(pid: number, everyMs = 100): { stop(): number } {
  let peak = memoryBytes(pid);
  const timer = setInterval(() => (peak = Math.max(peak, memoryBytes(pid))), everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, memoryBytes(pid));
    },
  };
}

/** Busy and total ticks per CPU, from `/proc/stat`. */
export function cpuTicks(): { busy: number; total: number }[] {
  const out: { busy: number; total: number }[] = [];
  for (const line of Deno.readTextFileSync("/proc/stat").split("\n")) {
    const match = /^cpu(\d+) (.*)$/.exec(line);
    if (!match) continue;
    const values = match[2]!.trim().split(/\s+/).map(Number);
    const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    out[Number(match[1])] = { busy: total - idle, total };
  }
  return out;
}

/**
 * Busy percentage of each CPU between two {@link cpuTicks} readings.
 *
 * @param before The first reading.
 * @param after The second reading.
 * @returns Percent busy per CPU.
 */
export function busyPercent(
  before: { busy: number; total: number }[],
  after: { busy: number; total: number }[],
): number[] {
  return after.map((cpu, i) => {
    const total = cpu.total - (before[i]?.total ?? 0);
    return total > 0 ? (100 * (cpu.busy - (before[i]?.busy ?? 0))) / total : 0;
  });
}

/**
 * A free TCP port on 127.0.0.1 (bound, then released).
 *
 * @returns The port.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/**
 * Polls until `probe` resolves true, the process exits, or the deadline passes.
 *
 * @param probe One attempt; exceptions count as not ready.
 * @param options Deadline in ms and the process to watch.
 * @returns Undefined when ready, else why not.
 */
export async function waitUntil(
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; process?: Spawned },
): Promise<string | undefined> {
  const deadline = performance.now() + options.timeoutMs;
  let exited: number | undefined;
  void options.process?.exited.then((code) => (exited = code));
  while (performance.now() < deadline) {
    if (exited !== undefined) return `exited with code ${exited}`;
    try {
      if (await probe()) return undefined;
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return `not ready after ${options.timeoutMs / 1000} s`;
}

/**
 * The last lines of a log file, for error reports.
 *
 * @param path The file.
 * @param lines How many.
 * @returns The text, or empty.
 */
export function logTail(path: string, lines = 5): string {
  try {
    return Deno.readTextFileSync(path).trim().split("\n").slice(-lines).join(" | ");
  } catch {
    return "";
  }
}
