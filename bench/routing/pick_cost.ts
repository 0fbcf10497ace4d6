/**
 * What one `cache_aware` pick costs: render, hash, match against every server's index, choose, and
 * record, for chat prompts of 1 KB to 100 KB, over 4 and 16 servers, with the prompt's prefix
 * cached on one server (the match walks it whole) and with nothing cached. Writes
 * `bench/results/cache-aware-pick.md`.
 *
 * Run: `deno task bench:pick`
 *
 * @module
 */
import createCacheAware from "../../strategies/cache_aware.ts";
import type { RequestFacts, ServerView } from "../../strategies/types.ts";

const SIZES = [1_000, 10_000, 100_000];
const FLEETS = [4, 16];

function facts(body: Record<string, unknown>): RequestFacts {
  return {
    model: "m",
    path: "/v1/chat/completions",
    headers: new Headers(),
    body,
    prompt: () => "",
  };
}

function text(bytes: number, seed: number): string {
  let out = "";
  for (let i = 0; out.length < bytes; i++) out += `w${(seed * 7919 + i * 104729) % 9973} `;
  return out.slice(0, bytes);
}

function servers(count: number): ServerView[] {
  return Array.from({ length: count }, (_, index) => ({
    url: `http://10.0.0.${index + 1}:8000`,
    weight: 1,
    index,
    inFlight: index % 3,
    sentSinceScrape: 0,
    metrics: undefined,
  }));
}

/** Microseconds per pick + onStart + onEnd, median of five rounds. */
function measure(size: number, fleet: number, cached: boolean): number {
  const strategy = createCacheAware({ model: "m", options: {}, metricsInterval: 1 });
  const views = servers(fleet);
  strategy.onServers!(views);
  const system = text(size - 200, 1);
  const make = (i: number) =>
    facts({
      messages: [{ role: "system", content: cached ? system : text(size - 200, i + 2) }, {
        role: "user",
        content: text(200, i),
      }],
    });
  if (cached) {
    const first = make(0);
    strategy.onStart!(views[0]!, first);
    strategy.onEnd!(views[0]!, first, "success");
  }
  const requests = Array.from({ length: 200 }, (_, i) => make(i));
  const rounds: number[] = [];
  for (let round = 0; round < 6; round++) {
    const started = performance.now();
    for (const request of requests) {
      const chosen = strategy.pick(views, request)!;
      strategy.onStart!(chosen, request);
      strategy.onEnd!(chosen, request, "success");
    }
    if (round > 0) rounds.push((performance.now() - started) * 1000 / requests.length);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(rounds.length / 2)]!;
}

if (import.meta.main) {
  const rows: string[] = [];
  for (const size of SIZES) {
    for (const fleet of FLEETS) {
      const hit = measure(size, fleet, true);
      const miss = measure(size, fleet, false);
      rows.push(
        `| ${size / 1000} KB | ${fleet} | ${hit.toFixed(1)} | ${miss.toFixed(1)} |`,
      );
      console.log(rows.at(-1));
    }
  }
  const report = [
    "# cache_aware: cost of one pick",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} with \`deno task bench:pick\` ` +
    `(Deno ${Deno.version.deno}, one core, nothing else running): render the chat prompt, hash ` +
    "its 256-byte blocks, match every server's index, choose, record the choice, and end the " +
    "request. Median of " +
    "five rounds of 200 picks, in microseconds per pick.",
    "",
    "| prompt | servers | µs, prefix cached on one server | µs, nothing cached |",
    "| --- | --: | --: | --: |",
    ...rows,
    "",
  ].join("\n");
  const out = new URL("../results/cache-aware-pick.md", import.meta.url);
  await Deno.writeTextFile(out, report);
  console.log(`Wrote ${out.pathname}`);
}
