/**
 * The upstream fuzzer's quick mode (`deno task fuzz:upstream` runs it longer): a few seconds of
 * seeded, mutated upstream answers, plain and streaming, with no broken client answer and
 * nothing leaked.
 *
 * @module
 */
import assert from "node:assert/strict";
import { formatReport, runUpstreamFuzz } from "../../bench/fuzz/upstream_fuzz.ts";

Deno.test("fuzzed upstream answers: valid or OpenAI-shaped 502/504, nothing leaked", async () => {
  const report = await runUpstreamFuzz({ seed: 13, seconds: 3, concurrency: 16 });
  const text = formatReport(report);
  assert.deepEqual(report.failures, [], text);
  assert.deepEqual(report.leaks, [], text);
  assert.ok(report.cases >= 300, text);
  assert.ok((report.outcomes["exact"] ?? 0) > 0, text);
  assert.ok((report.outcomes["502 upstream_bad_response"] ?? 0) > 0, text);
});
