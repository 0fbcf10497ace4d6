// The prefix benchmark's targets table: each verdict from the same run's rows, the hit-rate rows
// matching a peer that is already at the trace's best hit rate.
import assert from "node:assert/strict";
import { renderPrefixReport } from "../../bench/prefix/report.ts";
import type { PrefixRunResult } from "../../bench/prefix/run.ts";

function row(
  contender: string,
  facts: { hit: number; best: number; ttft: number },
): PrefixRunResult {
  const { ttft } = facts;
  return {
    contender,
    requests: 100,
    failed: 0,
    ttft: [ttft, ttft * 2],
    byTurn: { first: [NaN, NaN, 0], later: [NaN, NaN, 0] },
    ttftMean: { client: ttft, server: ttft },
    floor: [1, 2],
    loadedFloor: [2, 3],
    idealHitRate: facts.best,
    e2e: [ttft * 10, ttft * 20],
    throughput: 10,
    hitRate: facts.hit,
    shares: [0.25, 0.25, 0.25, 0.25],
    stalls: { count: 0, longestMs: 0, totalMs: 0 },
  };
}

/** The verdict line of the KV-pressure hit-rate target for the two contenders' hit rates. */
function hitVerdict(ours: number, peer: number, best: number): string {
  const report = renderPrefixReport([{
    name: "system prompts, homogeneous, KV pressure",
    description: "",
    rows: [
      row("llmstream cache_aware", { hit: ours, best, ttft: 30 }),
      row("vllm-router cache_aware", { hit: peer, best, ttft: 35 }),
    ],
  }], []);
  const line = report.split("\n").find((line) => line.includes("| hit rate ≥ vllm-router's |"));
  assert.ok(line !== undefined, report);
  return line;
}

Deno.test("a hit rate at least the peer's is met", () => {
  assert.match(hitVerdict(0.9, 0.8, 0.95), /90\.0% vs 80\.0% \| met \|$/);
});

Deno.test("a hit rate below a peer short of the trace's best is missed, by however little", () => {
  assert.match(hitVerdict(0.9, 0.9004, 0.95), /90\.0% vs 90\.0% \| missed \|$/);
});

Deno.test("where the peer is at the trace's best hit rate, being there too matches it", () => {
  assert.match(
    hitVerdict(0.9486, 0.949, 0.9491),
    /94\.9% vs 94\.9%, both at the trace's best \(94\.9%\): a match \| met \|$/,
  );
  assert.match(
    hitVerdict(0.94, 0.949, 0.9491),
    /94\.0% vs 94\.9%, the trace's best 94\.9% \| missed/,
  );
});

Deno.test("the TTFT targets give the oracles' ratios beside ours", () => {
  const report = renderPrefixReport([{
    name: "chat, homogeneous",
    description: "",
    rows: [
      row("llmstream cache_aware", { hit: 0.8, best: 0.8, ttft: 30 }),
      row("vllm-router cache_aware", { hit: 0.8, best: 0.8, ttft: 40 }),
      row("oracle earliest_first_token", { hit: 0.8, best: 0.8, ttft: 28 }),
      row("oracle earliest_first_token via plain proxy", { hit: 0.8, best: 0.8, ttft: 32 }),
    ],
  }], []);
  assert.match(
    report,
    /\| TTFT p50 ≤ 0\.9x vllm-router's \| 0\.75x \(30\.0 vs 40\.0; oracle 0\.70x; through a plain proxy 0\.80x; floor 1\.0, loaded 2\.0\) \| met \|/,
  );
});
