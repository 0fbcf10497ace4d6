/**
 * `deno task fuzz:upstream`: a seeded, time-bounded fuzzer of upstream answers. A raw-socket
 * server sends each case's bytes (see `upstream_cases.ts`) to the gateway, which runs in this
 * process in front of it; a client asks for each case, plain or streaming, and checks what it
 * got: the upstream's valid answer, or an OpenAI-shaped 502/504. At the end every in-flight
 * count, slot and deadline must be back to zero. A crash of the gateway ends this process, so a
 * finished run is also a run without one.
 *
 * Usage: `deno task fuzz:upstream [--seed N] [--seconds S] [--concurrency C]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { watchdog } from "../../gateway/watchdog.ts";
import { RawServer } from "../../tests/support/raw_server.ts";
import { startStack } from "../../tests/support/stack.ts";
import { type FuzzCase, makeCase } from "./upstream_cases.ts";
import { checkAnswer } from "./upstream_oracle.ts";

/** Options for {@link runUpstreamFuzz}. */
export interface FuzzOptions {
  /** The seed: the same seed makes the same cases. */
  seed: number;
  /** Seconds to run cases for. */
  seconds: number;
  /** Requests in flight at once. */
  concurrency: number;
}

/** What a run did. */
export interface FuzzReport {
  /** Cases run. */
  cases: number;
  /** Seconds it took. */
  seconds: number;
  /** Cases by starting answer, plain or streaming. */
  templates: Record<string, number>;
  /** Cases by mutation (a case may have several). */
  mutations: Record<string, number>;
  /** Client outcomes: `exact`, `passed <status>`, `<status> <code>`. */
  outcomes: Record<string, number>;
  /** Cases whose answer broke the rules, described. */
  failures: string[];
  /** In-flight counts, slots or deadlines not back to zero at the end. */
  leaks: string[];
}

/**
 * Runs the fuzzer.
 *
 * @param options Seed, duration and concurrency.
 * @returns The report.
 */
export async function runUpstreamFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const cases = new Map<number, FuzzCase>();
  const server = new RawServer(async (peer) => {
    for (let request = await peer.request(); request; request = await peer.request()) {
      const index = /"content":"fuzz-(\d+)"/.exec(request)?.[1];
      const fuzz = index === undefined ? undefined : cases.get(Number(index));
      if (!fuzz) return;
      let from = 0;
      for (const cut of [...fuzz.cuts, fuzz.wire.length]) {
        if (cut > from) await peer.write(fuzz.wire.slice(from, cut));
        from = Math.max(from, cut);
      }
      // A stall keeps the connection open and silent: the gateway must time it out, or (when
      // the answer was complete) may send the next request on it.
      if (fuzz.after === "close") return;
    }
  });
  const stack = await startStack({
    spec: () => ({
      models: { m: { servers: [server.url] } },
      retries: { max_attempts: 1 },
      timeouts: { first_byte: 1, idle: 0.3, client_idle: 5 },
      outlier_detection: { enabled: false },
      plugins: [],
    }),
  });
  const report: FuzzReport = {
    cases: 0,
    seconds: 0,
    templates: {},
    mutations: {},
    outcomes: {},
    failures: [],
    leaks: [],
  };
  const started = performance.now();
  const until = started + options.seconds * 1000;
  let next = 0;
  const chat = `${stack.url}/v1/chat/completions`;
  async function worker(): Promise<void> {
    while (performance.now() < until) {
      const fuzz = makeCase(options.seed, next++);
      cases.set(fuzz.index, fuzz);
      const outcome = await askFor(chat, fuzz);
      cases.delete(fuzz.index);
      report.cases++;
      count(report.templates, `${fuzz.template}${fuzz.stream ? " (stream)" : ""}`);
      for (const mutation of fuzz.mutations.length ? fuzz.mutations : ["none"]) {
        count(report.mutations, mutation);
      }
      count(report.outcomes, outcome.label);
      if (outcome.failure) {
        report.failures.push(
          `seed ${options.seed} case ${fuzz.index} (${fuzz.template}, ${
            fuzz.stream ? "stream" : "plain"
          }, ` +
            `${fuzz.mutations.join("+") || "valid"}): ${outcome.failure}`,
        );
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    report.leaks = await leaks(stack.gateway.pool.all.bind(stack.gateway.pool));
  } finally {
    await stack.close();
    await server.close();
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

async function askFor(chat: string, fuzz: FuzzCase): Promise<{ label: string; failure?: string }> {
  const body = JSON.stringify({
    model: "m",
    messages: [{ role: "user", content: `fuzz-${fuzz.index}` }],
    stream: fuzz.stream,
  });
  let response: Response;
  try {
    response = await fetch(chat, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });
  } catch (error) {
    return { label: "no answer", failure: `the gateway gave no answer: ${error}` };
  }
  let text: string | undefined;
  try {
    text = await response.text();
  } catch {
    text = undefined;
  }
  return checkAnswer(fuzz, { status: response.status, text });
}

/** Waits up to 3 s for every counter to return to zero; lists those that did not. */
async function leaks(
  servers: () => Iterable<{ url: string; inFlight: number; slots: { length: number } }>,
) {
  const deadline = performance.now() + 3_000;
  for (;;) {
    const out: string[] = [];
    for (const server of servers()) {
      if (server.inFlight !== 0) out.push(`${server.url}: ${server.inFlight} in flight`);
      if (server.slots.length !== 0) out.push(`${server.url}: ${server.slots.length} waiting`);
    }
    if (watchdog.size !== 0) out.push(`${watchdog.size} deadlines still watched`);
    if (out.length === 0 || performance.now() > deadline) return out;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function count(record: Record<string, number>, key: string): void {
  record[key] = (record[key] ?? 0) + 1;
}

/**
 * The report as text.
 *
 * @param report The report.
 * @returns Lines to print.
 */
export function formatReport(report: FuzzReport): string {
  const table = (record: Record<string, number>) =>
    Object.entries(record).sort((a, b) => b[1] - a[1]).map(([key, n]) => `  ${key}: ${n}`).join(
      "\n",
    );
  return [
    `${report.cases} cases in ${
      report.seconds.toFixed(1)
    } s; ${report.failures.length} failures; ` +
    `${report.leaks.length} leaks`,
    `Starting answers:\n${table(report.templates)}`,
    `Mutations:\n${table(report.mutations)}`,
    `Client outcomes:\n${table(report.outcomes)}`,
    ...report.failures.slice(0, 20),
    ...report.leaks,
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seed: { type: "string", default: "1" },
      seconds: { type: "string", default: "30" },
      concurrency: { type: "string", default: "16" },
    },
  });
  const report = await runUpstreamFuzz({
    seed: Number(values.seed),
    seconds: Number(values.seconds),
    concurrency: Number(values.concurrency),
  });
  console.log(formatReport(report));
  if (report.failures.length > 0 || report.leaks.length > 0) Deno.exit(1);
}
