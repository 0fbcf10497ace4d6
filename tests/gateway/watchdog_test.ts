import assert from "node:assert/strict";
import { Watchdog, WATCHDOG_TICK_MS } from "../../gateway/watchdog.ts";

/** A watched item that records its checks and may delete itself when checked. */
function item(watchdog: Watchdog, options: { selfDelete?: boolean } = {}) {
  const seen: number[] = [];
  const watched = {
    seen,
    check(now: number): void {
      seen.push(now);
      if (options.selfDelete) watchdog.delete(watched);
    },
  };
  return watched;
}

/** Resolves after the watchdog's next tick has run (polls with a deadline). */
async function nextTick(items: { seen: number[] }[]): Promise<void> {
  const before = items.map((entry) => entry.seen.length);
  const deadline = performance.now() + 2_000;
  while (items.every((entry, i) => entry.seen.length === before[i])) {
    if (performance.now() > deadline) throw new Error("The watchdog did not tick within 2 s");
    await new Promise((resolve) => setTimeout(resolve, WATCHDOG_TICK_MS));
  }
}

Deno.test("the watchdog checks every item until it is deleted, whichever slot it had", async () => {
  const watchdog = new Watchdog();
  const [a, b, c, d] = [item(watchdog), item(watchdog), item(watchdog), item(watchdog)];
  for (const entry of [a, b, c, d]) watchdog.add(entry);
  watchdog.add(b); // a second add is a no-op
  assert.equal(watchdog.size, 4);
  watchdog.delete(b); // the middle: d moves into its slot
  watchdog.delete(b); // deleting twice is a no-op
  assert.equal(watchdog.size, 3);
  await nextTick([a, c, d]);
  assert.equal(b.seen.length, 0);
  for (const entry of [a, c, d]) assert.ok(entry.seen.length >= 1);
  for (const entry of [a, c, d]) watchdog.delete(entry);
  assert.equal(watchdog.size, 0);
  watchdog.delete(item(watchdog)); // never added
  assert.equal(watchdog.size, 0);
  // The interval stops at the next empty tick; leave time for it so no timer leaks.
  await new Promise((resolve) => setTimeout(resolve, WATCHDOG_TICK_MS * 3));
});

Deno.test("an item that deletes itself while checked does not make the tick skip another", async () => {
  const watchdog = new Watchdog();
  const keep = [item(watchdog), item(watchdog), item(watchdog)];
  const leaving = [item(watchdog, { selfDelete: true }), item(watchdog, { selfDelete: true })];
  for (const entry of [keep[0]!, leaving[0]!, keep[1]!, leaving[1]!, keep[2]!]) watchdog.add(entry);
  await nextTick(keep);
  const counts = keep.map((entry) => entry.seen.length);
  assert.ok(counts.every((count) => count >= 1), `every kept item was checked: ${counts}`);
  for (const entry of leaving) assert.equal(entry.seen.length, 1);
  assert.equal(watchdog.size, 3);
  for (const entry of keep) watchdog.delete(entry);
  await new Promise((resolve) => setTimeout(resolve, WATCHDOG_TICK_MS * 3));
});
