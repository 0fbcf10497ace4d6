// Tests of the scraper loop against tiny local servers whose /metrics text the test controls.

import assert from "node:assert/strict";
import { isStale, Scraper, type ScrapeResult } from "../../scrape/scraper.ts";

/** A local server on 127.0.0.1:0 whose `/metrics` (under any prefix) the test scripts. */
interface Fake {
  readonly url: string;
  /** Requests received, in order, with when each arrived. */
  readonly hits: { path: string; at: number }[];
  /** Answers still hanging. */
  hanging: number;
  close(): Promise<void>;
}

type Answer = (path: string) => string | Response | "hang";

function fake(answer: Answer): Fake {
  const releases = new Set<() => void>();
  const state = { hits: [] as { path: string; at: number }[], hanging: 0 };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      state.hits.push({ path, at: Date.now() });
      const reply = answer(path);
      if (reply !== "hang") return typeof reply === "string" ? new Response(reply) : reply;
      state.hanging++;
      await new Promise<void>((resolve) => {
        releases.add(resolve);
        request.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      state.hanging--;
      return new Response("late");
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    hits: state.hits,
    get hanging() {
      return state.hanging;
    },
    async close() {
      for (const release of releases) release();
      await server.shutdown();
    },
  };
}

/** Polls `condition` every 5 ms until it holds, failing after `ms`. */
async function until(condition: () => boolean, what: string, ms = 4000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function vllm(running: number, queries: number, hits: number): string {
  const l = `{engine="0",model_name="llama"}`;
  return `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running${l} ${running}.0
vllm:num_requests_waiting${l} 1.0
vllm:kv_cache_usage_perc${l} 0.25
vllm:prefix_cache_queries_total${l} ${queries}.0
vllm:prefix_cache_hits_total${l} ${hits}.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="llama"} 3.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="llama"} 3.0
`;
}

function collect(): { results: ScrapeResult[]; onResult(r: ScrapeResult): void } {
  const results: ScrapeResult[] = [];
  return { results, onResult: (r) => results.push(r) };
}

Deno.test("scraper scrapes every interval (fractions allowed) and reports readings", async () => {
  const server = fake(() => vllm(3, 10, 5));
  const { results, onResult } = collect();
  const scraper = new Scraper({ intervalSeconds: 0.05, onResult });
  try {
    scraper.setTargets([server.url + "/"]);
    const started = Date.now();
    scraper.start();
    scraper.start(); // idempotent
    await until(() => results.length >= 5, "five scrapes");
    const elapsed = Date.now() - started;
    assert.ok(
      server.hits.length <= Math.floor(elapsed / 50) + 2,
      `too many hits for ${elapsed} ms`,
    );
    assert.ok(server.hits.every((h) => h.path === "/metrics"));
    const last = results.at(-1);
    assert.ok(last?.ok, JSON.stringify(last));
    assert.equal(last.url, server.url + "/");
    assert.equal(last.errors, 0);
    assert.deepEqual(last.readings.get("llama"), {
      running: 3,
      waiting: 1,
      kvUsage: 0.25,
      prefixQueries: 10,
      prefixHits: 5,
      ranks: 1,
    });
    assert.deepEqual(last.metrics.get("llama"), {
      running: 3,
      waiting: 1,
      kvUsage: 0.25,
      prefixQueries: 10,
      scrapedAt: last.at,
    });
  } finally {
    await scraper.stop();
    await server.close();
  }
});

Deno.test("a hanging target fails within its timeout while another keeps being scraped", async () => {
  const slow = fake(() => "hang");
  const quick = fake(() => vllm(1, 0, 0));
  let overlaps = 0; // quick results that came while a slow scrape hung
  const results: ScrapeResult[] = [];
  const onResult = (r: ScrapeResult) => {
    if (r.url === quick.url && slow.hanging > 0) overlaps++;
    results.push(r);
  };
  const scraper = new Scraper({ intervalSeconds: 0.25, onResult }); // timeout 200 ms
  try {
    scraper.setTargets([slow.url, quick.url]);
    scraper.start();
    const of = (url: string) => results.filter((r) => r.url === url);
    await until(() => of(slow.url).length >= 2 && overlaps >= 2, "failures and overlaps");
    for (const failure of of(slow.url)) {
      assert.equal(failure.ok, false);
      assert.equal(failure.error, `Server "${slow.url}/metrics" did not answer within 200 ms`);
    }
    assert.ok(of(quick.url).length >= 2);
    assert.ok(of(quick.url).every((r) => r.ok));
    // A scrape still running at the next tick is skipped. The slow target was fetched on every
    // tick, as often as the quick one: each of its scrapes timed out within the interval.
    assert.ok(Math.abs(slow.hits.length - quick.hits.length) <= 1);
  } finally {
    await scraper.stop();
    await slow.close();
    await quick.close();
  }
});

Deno.test("a target still being scraped is not fetched twice", async () => {
  const slow = fake(() => "hang");
  const { results, onResult } = collect();
  const scraper = new Scraper({ intervalSeconds: 1, timeoutMs: 150, onResult });
  try {
    scraper.setTargets([slow.url, slow.url]);
    await Promise.all([scraper.scrapeNow(), scraper.scrapeNow()]);
    assert.equal(slow.hits.length, 1);
    assert.equal(results.length, 1);
    assert.equal(results[0]?.ok, false);
  } finally {
    await scraper.stop();
    await slow.close();
  }
});

Deno.test("unreachable ports, HTTP errors and garbage give ok: false with a clear message", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = listener.addr.port;
  listener.close();
  const server = fake((path) => {
    if (path === "/error/metrics") return new Response("oops", { status: 503 });
    if (path === "/html/metrics") return "<!DOCTYPE html>\n<html><body>Hello</body></html>\n";
    return `${vllm(2, 0, 0)}vllm:num_requests_waiting{engine="1" 2\n`;
  });
  const { results, onResult } = collect();
  const scraper = new Scraper({ intervalSeconds: 1, onResult });
  try {
    const dead = `http://127.0.0.1:${closedPort}`;
    scraper.setTargets([dead, `${server.url}/error`, `${server.url}/html`, `${server.url}/partly`]);
    await scraper.scrapeNow();
    const by = new Map(results.map((r) => [r.url, r]));
    const refused = by.get(dead);
    assert.equal(refused?.ok, false);
    assert.ok(refused.error.startsWith(`Fetching "${dead}/metrics" failed: `), refused.error);
    assert.match(refused.error, /refused/i);
    const error = by.get(`${server.url}/error`);
    assert.equal(error?.ok, false);
    assert.equal(
      error.error,
      `Server "${server.url}/error/metrics" answered HTTP 503 Service Unavailable`,
    );
    const html = by.get(`${server.url}/html`);
    assert.equal(html?.ok, false);
    assert.match(
      html.error,
      /returned no usable engine metrics \(2 malformed lines; first at line 1/,
    );
    const partly = by.get(`${server.url}/partly`);
    assert.ok(partly?.ok);
    assert.equal(partly.errors, 1);
    assert.match(partly.error ?? "", /^line 11: /);
    assert.equal(partly.readings.get("llama")?.running, 2);
  } finally {
    await scraper.stop();
    await server.close();
  }
});

Deno.test("prefix hit rate spans two scrapes; removed targets are forgotten", async () => {
  let queries = 100;
  let hits = 40;
  const server = fake(() => vllm(1, queries, hits));
  const { results, onResult } = collect();
  const scraper = new Scraper({ intervalSeconds: 1, onResult });
  try {
    scraper.setTargets([server.url]);
    await scraper.scrapeNow();
    queries = 300;
    hits = 190;
    await scraper.scrapeNow();
    const second = results[1];
    assert.ok(second?.ok);
    assert.equal(second.metrics.get("llama")?.prefixHitRate, 0.75);
    scraper.setTargets([]);
    scraper.setTargets([server.url]);
    await scraper.scrapeNow();
    const third = results[2];
    assert.ok(third?.ok);
    assert.equal(third.metrics.get("llama")?.prefixHitRate, undefined);
  } finally {
    await scraper.stop();
    await server.close();
  }
});

Deno.test("stop aborts in-flight scrapes, reports nothing more and leaves no timers", async () => {
  const slow = fake(() => "hang");
  const { results, onResult } = collect();
  const scraper = new Scraper({ intervalSeconds: 2, timeoutMs: 1500, onResult });
  try {
    scraper.setTargets([slow.url]);
    scraper.start();
    await until(() => slow.hanging === 1, "the scrape to reach the server");
    await scraper.stop();
    assert.equal(results.length, 0);
    await until(() => slow.hanging === 0, "the server to see the abort");
    await scraper.stop(); // idempotent
  } finally {
    await slow.close();
  }
  // Deno's op sanitizer fails this test if any timer or fetch is still pending.
});

Deno.test("a throwing onResult does not break the loop", async () => {
  const server = fake(() => vllm(1, 0, 0));
  let calls = 0;
  const scraper = new Scraper({
    intervalSeconds: 0.05,
    onResult() {
      calls++;
      throw new Error("callback bug");
    },
  });
  try {
    scraper.setTargets([server.url]);
    scraper.start();
    await until(() => calls >= 3, "three callbacks");
  } finally {
    await scraper.stop();
    await server.close();
  }
});

Deno.test("options are validated and isStale applies the three-interval rule", () => {
  const onResult = () => {};
  assert.throws(() => new Scraper({ intervalSeconds: 0, onResult }), RangeError);
  assert.throws(() => new Scraper({ intervalSeconds: 1, timeoutMs: 1000, onResult }), RangeError);
  assert.throws(() => new Scraper({ intervalSeconds: Number.NaN, onResult }), RangeError);
  assert.equal(isStale(1000, 1750, { intervalSeconds: 0.25 }), false);
  assert.equal(isStale(1000, 1751, { intervalSeconds: 0.25 }), true);
  assert.equal(isStale(1000, 2500, { intervalSeconds: 0.25, intervals: 6 }), false);
});
