/**
 * `deno task bench:clients`: which HTTP client the gateway should use upstream. Each client sends
 * the same small chat requests at 64 concurrent requests to the bench upstream; the client runs
 * pinned to CPU 1 and the upstream to CPU 0, one client at a time, so the client's own cost per
 * request decides its rate. Writes `bench/results/client-compare.md`.
 *
 * Run: `deno task bench:clients [--requests 50000] [--concurrency 64] [--runs 3]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CLIENTS } from "./worker.ts";
import { startUpstreamProcess } from "../common/upstream_process.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "50000" },
    concurrency: { type: "string", default: "64" },
    runs: { type: "string", default: "3" },
    out: { type: "string", default: `${REPO}/bench/results/client-compare.md` },
  },
});
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const runs = Number(values.runs);
const runDir = `${REPO}/.cache/bench/run/${Deno.pid}`;
await Deno.mkdir(runDir, { recursive: true });

const { url, process: upstream } = await startUpstreamProcess({
  cpus: "0",
  log: `${runDir}/upstream.log`,
});

interface Row {
  client: string;
  rps: number[];
  cpuUsPerRequest: number[];
}
const rows: Row[] = CLIENTS.map((client) => ({ client, rps: [], cpuUsPerRequest: [] }));
try {
  // Rounds interleave the clients, so drift on the machine spreads over all of them.
  for (let run = 0; run < runs; run++) {
    for (const row of rows) {
      const out = await new Deno.Command("taskset", {
        args: [
          "-c",
          "1",
          Deno.execPath(),
          "run",
          "-A",
          `${REPO}/bench/client_worker.ts`,
          url,
          row.client,
          String(requests),
          String(concurrency),
        ],
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error(`Client "${row.client}" failed`);
      const result = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
      row.rps.push(result.rps);
      row.cpuUsPerRequest.push(result.cpuS / requests * 1e6);
      console.log(`${row.client}: ${Math.round(result.rps)} req/s`);
    }
  }
} finally {
  await upstream.stop();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
const best = Math.max(...rows.map((row) => median(row.rps)));
const lines = [
  "# Upstream HTTP clients compared",
  "",
  `Command: \`deno task bench:clients --requests ${requests} --concurrency ${concurrency} --runs ${runs}\`` +
  ` — ${new Date().toISOString()}, Deno ${Deno.version.deno}.`,
  "",
  "Each client sends small chat requests (64 B body, ~370 B answer) to `bench/common/upstream.ts`, " +
  `${concurrency} at a time, pinned to CPU 1 (upstream on CPU 0). Median of ${runs} rounds; ` +
  "CPU µs per request is the client process's user + system time over the measured requests.",
  "",
  "| client | req/s (median) | runs | CPU µs / request | ÷ fastest |",
  "| --- | --: | --- | --: | --: |",
  ...rows.map((row) =>
    `| ${row.client} | ${Math.round(median(row.rps)).toLocaleString("en-US")} | ${
      row.rps.map((rps) => Math.round(rps)).join(", ")
    } | ${median(row.cpuUsPerRequest).toFixed(1)} | ${(median(row.rps) / best).toFixed(2)} |`
  ),
  "",
  "The CPU per request is the figure to go by: it is what the client costs the gateway's own " +
  "core, while the rate also depends on the upstream's core and on what else the machine does.",
  "",
  "Clients: `fetch` (Deno's, default pool); `fetch-client` (`fetch` with one " +
  "`Deno.createHttpClient`); `node-http` (`node:http` with a keep-alive `Agent`); `undici` " +
  "(npm, a `Pool`); `llmstream-http1` (`upstream/http1_pool.ts`, the gateway's own pool of " +
  "`Deno.connect` sockets speaking HTTP/1.1).",
  "",
];
await Deno.writeTextFile(values.out, lines.join("\n"));
console.log(lines.join("\n"));
console.log(`Wrote ${values.out}`);
