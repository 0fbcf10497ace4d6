/**
 * The rate limiter's shared memory store, as two workers see it: two stores over one buffer keep
 * one set of counters, slide the window as the memory store does, release concurrency slots once,
 * and reuse the records of keys gone quiet.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SHARED_STORE_BYTES, SharedMemoryStore } from "../../plugins/_rate_limit_memory.ts";
import type { Limits } from "../../plugins/_rate_limit_window.ts";

const NONE: Limits = {
  requests_per_minute: undefined,
  tokens_per_minute: undefined,
  concurrent: undefined,
};

function pair(now: () => number): [SharedMemoryStore, SharedMemoryStore] {
  const memory = new SharedArrayBuffer(SHARED_STORE_BYTES);
  return [new SharedMemoryStore(memory, { now }), new SharedMemoryStore(memory, { now })];
}

Deno.test("shared store: two workers share one request budget and one window", async () => {
  let now = 60_000 * 1000;
  const [a, b] = pair(() => now);
  const limits = { ...NONE, requests_per_minute: 4 };
  const decisions: (string | undefined)[] = [];
  for (let i = 0; i < 6; i++) {
    const store = i % 2 === 0 ? a : b;
    decisions.push((await store.admit("k|m", { limits, requestId: `r${i}` })).refused);
  }
  assert.deepEqual(decisions, [
    undefined,
    undefined,
    undefined,
    undefined,
    "requests_per_minute",
    "requests_per_minute",
  ]);
  // Half-way through the next minute, half of the previous minute's 4 still count.
  now += 90_000;
  const next = await b.admit("k|m", { limits, requestId: "r6" });
  assert.equal(next.refused, undefined);
  assert.deepEqual([next.requests.current, next.requests.previous], [1, 4]);
  // 4 × 0.5 + 1 = 3 counted: one more fits, then none.
  assert.equal((await a.admit("k|m", { limits, requestId: "r7" })).refused, undefined);
  assert.equal((await b.admit("k|m", { limits, requestId: "r8" })).refused, "requests_per_minute");
});

Deno.test("shared store: concurrency slots are counted across workers and released once", async () => {
  const [a, b] = pair(() => 1_000_000);
  const limits = { ...NONE, concurrent: 2 };
  assert.equal((await a.admit("k|m", { limits, requestId: "1" })).inFlight, 1);
  assert.equal((await b.admit("k|m", { limits, requestId: "2" })).inFlight, 2);
  assert.equal((await a.admit("k|m", { limits, requestId: "3" })).refused, "concurrent");
  await b.release("k|m", "1");
  await b.release("k|m", "2");
  await b.release("k|m", "2"); // a stray release never goes below zero
  assert.equal((await a.admit("k|m", { limits, requestId: "4" })).inFlight, 1);
});

Deno.test("shared store: tokens are charged to the key's window; other keys are apart", async () => {
  const [a, b] = pair(() => 5_000_000);
  const limits = { ...NONE, tokens_per_minute: 100 };
  assert.equal((await a.admit("k|m", { limits, requestId: "1" })).refused, undefined);
  await b.charge("k|m", 100);
  assert.equal((await a.admit("k|m", { limits, requestId: "2" })).refused, "tokens_per_minute");
  assert.equal((await b.admit("other|m", { limits, requestId: "3" })).refused, undefined);
});

Deno.test("shared store: a full table admits new keys unlimited, then reuses quiet records", async () => {
  let now = 9_000_000;
  let full = 0;
  const memory = new SharedArrayBuffer(SHARED_STORE_BYTES);
  const store = new SharedMemoryStore(memory, { now: () => now, onFull: () => full++ });
  const limits = { ...NONE, requests_per_minute: 1 };
  for (let i = 0; i < 16_384; i++) await store.admit(`key${i}|m`, { limits, requestId: "x" });
  const extra = () => store.admit("late|m", { limits, requestId: "y" });
  assert.equal((await extra()).refused, undefined);
  assert.equal((await extra()).refused, undefined, "no record: not limited");
  assert.equal(full, 1, "logged once");
  // Two windows later every record is quiet: the new key gets one, and its limit holds.
  now += 120_000;
  assert.equal((await extra()).refused, undefined);
  assert.equal((await extra()).refused, "requests_per_minute");
});
