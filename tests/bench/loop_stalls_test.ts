import assert from "node:assert/strict";
import { watchLoop } from "../../bench/common/loop_stalls.ts";

Deno.test("the loop watch counts a blocked event loop as one stall, and forgets it on reset", async () => {
  const watch = watchLoop({ tickMs: 2, thresholdMs: 5 });
  try {
    // Let the timer tick on an idle loop, forget what the machine itself made late there (a
    // shared machine delays an idle process's timers by 5-15 ms now and then), then block the
    // loop for 40 ms.
    await new Promise((resolve) => setTimeout(resolve, 10));
    watch.reset();
    const blockedFrom = performance.now();
    while (performance.now() - blockedFrom < 40) {
      // Busy: no timer can fire.
    }
    const deadline = performance.now() + 5_000;
    while (watch.stalls.longestMs < 30 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const { count, longestMs, totalMs } = watch.stalls;
    assert.ok(count >= 1, `count ${count}`);
    assert.ok(longestMs >= 30 && longestMs < 1_000, `longest ${longestMs} ms`);
    assert.ok(totalMs >= longestMs);
    watch.reset();
    assert.deepEqual(watch.stalls, { count: 0, longestMs: 0, totalMs: 0 });
  } finally {
    watch.stop();
  }
});
