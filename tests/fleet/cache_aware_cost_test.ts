/**
 * The parts of `cache_aware`'s cost beyond matching cached prefixes: the prefill backlog this
 * gateway sent, the wider home window when other replicas route some of a conversation's turns,
 * speed learning that counts only this instance's own requests, the wait for a step on a slow
 * server, and copies of shared prefixes where caches have room or, under pressure, to a faster
 * server when this instance routes alone.
 */
import assert from "node:assert/strict";
import { setTimeout as elapse } from "node:timers/promises";
import createCacheAware from "../../strategies/cache_aware.ts";
import { SpeedLearner } from "../../strategies/_speed_learner.ts";
import { CacheChurn } from "../../strategies/prefix_cache/cache_churn.ts";
import { PrefixHeat } from "../../strategies/prefix_cache/prefix_heat.ts";
import { PrefixIndex } from "../../strategies/prefix_cache/prefix_index.ts";
import type { RequestFacts, ServerView, Strategy } from "../../strategies/types.ts";
import { facts, metrics, view } from "../support/strategy_views.ts";

function words(seed: number, count: number): string {
  return Array.from({ length: count }, (_, i) => `w${(seed * 7919 + i * 104729) % 9973}`).join(" ");
}

/** Turn `turn` of conversation `id`, the history re-sent. */
function turnOf(id: number, turn: number): RequestFacts {
  const messages = [{ role: "system", content: `Helper ${id}.` }];
  for (let t = 0; t <= turn; t++) {
    messages.push({ role: "user", content: `Question ${t}: ${words(id * 31 + t, 150)}` });
    if (t < turn) messages.push({ role: "assistant", content: `Answer ${t}: ${words(t, 60)}` });
  }
  return facts({ messages });
}

/** A request with a system prompt and a user's question. */
function ask(system: string, question: string): RequestFacts {
  return facts({
    messages: [{ role: "system", content: system }, { role: "user", content: question }],
  });
}

/**
 * A `cache_aware` strategy in front of two idle servers, and `send`: pick, start and end a
 * request (returning the server's URL).
 */
function pair(options: Record<string, unknown>) {
  const strategy = createCacheAware({ model: "m", options, metricsInterval: 1 });
  const [a, b] = [view("http://a"), view("http://b")];
  strategy.onServers!([a, b]);
  const send = (request: RequestFacts, servers: ServerView[]): string => {
    const server = strategy.pick(servers, request)!;
    strategy.onStart!(server, request);
    strategy.onEnd!(server, request, "success");
    return server.url;
  };
  return { strategy, a, b, send };
}

Deno.test("cache_aware: a long prefill just sent makes its server wait, so the next request goes elsewhere", () => {
  // A prefill rate low enough that the backlog cannot drain during the test.
  const strategy = createCacheAware({
    model: "m",
    options: { prefill_rate: 100 },
    metricsInterval: 1,
  });
  const a = view("http://a");
  const b = view("http://b");
  strategy.onServers!([a, b]);
  for (let pair = 0; pair < 12; pair++) {
    // Two unrelated ~4,000-token prompts: nothing cached anywhere, equal scraped load.
    const first = facts({ prompt: words(1000 + 2 * pair, 4000) });
    const firstServer = strategy.pick([a, b], first)!;
    strategy.onStart!(firstServer, first);
    const second = facts({ prompt: words(1001 + 2 * pair, 4000) });
    const secondServer = strategy.pick([a, b], second)!;
    strategy.onStart!(secondServer, second);
    assert.notEqual(secondServer.url, firstServer.url, `pair ${pair}: both went to one server`);
    strategy.onEnd!(firstServer, first, "success");
    strategy.onEnd!(secondServer, second, "success");
  }
});

Deno.test("cache_aware: when other replicas route later turns, a conversation's home wins its first turn under more load", () => {
  const servers = [view("http://a"), view("http://b")];
  const single = createCacheAware({ model: "m", options: {}, metricsInterval: 1 });
  const replica = createCacheAware({ model: "m", options: {}, metricsInterval: 1 });
  single.onServers!(servers);
  replica.onServers!(servers);
  // The replica keeps getting later turns whose earlier turns it never routed.
  for (let id = 0; id < 200; id++) {
    const later = turnOf(id, 2);
    const server = replica.pick(servers, later)!;
    replica.onStart!(server, later);
    replica.onEnd!(server, later, "success");
  }
  let widened = 0;
  for (let id = 1000; id < 1030; id++) {
    // Where the conversation goes at equal load: its home.
    const home = single.pick(servers, turnOf(id, 0))!;
    // Its home now carries three more requests (48 tokens at the default load_tokens 16).
    const loaded = servers.map((server) =>
      server.url === home.url ? view(server.url, { inFlight: 3 }) : server
    );
    assert.notEqual(single.pick(loaded, turnOf(id, 0))!.url, home.url);
    if (replica.pick(loaded, turnOf(id, 0))!.url === home.url) widened++;
  }
  assert.equal(widened, 30, `the replica sent ${widened} of 30 first turns home`);
});

Deno.test("speed learning counts only its own requests: another replica's traffic does not make a server look slow", () => {
  const learner = new SpeedLearner(10);
  const start = 1_000_000;
  // This instance sends 1 request at a time to a, and to b only every fourth second; b also
  // runs 30 requests of another replica, which its scraped `running` shows.
  const a = (at: number) => view("http://a", { metrics: metrics({ running: 1, scrapedAt: at }) });
  const b = (at: number) => view("http://b", { metrics: metrics({ running: 30, scrapedAt: at }) });
  for (let second = 0; second < 40; second++) {
    const at = start + second * 1000;
    learner.observe(a(at), at);
    learner.observe(b(at), at);
    // Each request takes 500 ms on either server.
    learner.started(a(at), at);
    learner.ended(a(at), "success", at + 500);
    if (second % 4 === 0) {
      learner.started(b(at), at);
      learner.ended(b(at), "success", at + 500);
    }
  }
  const end = start + 40_000;
  const speeds = learner.speeds([a(end), b(end)]);
  assert.ok(speeds.get("http://b")! > 0.8, `b's speed ${speeds.get("http://b")}`);
  assert.ok(speeds.get("http://a")! > 0.8, `a's speed ${speeds.get("http://a")}`);
});

Deno.test("cache_aware copies a prefix many requests share to a less loaded server while its cache has room, and not under KV pressure", () => {
  const promptP = words(1, 2000);
  const promptQ = words(2, 2000);
  const share = (system: string, n: number) => ask(system, `Q${n}: ${words(100 + n, 200)}`);
  /**
   * Whether a request sharing P goes to b when P's server, a, carries three more requests;
   * `churn` is the new prompt tokens a second b's own counters show it taking in, when scraped
   * (`scrapes` times, a second apart; half the queried tokens hit).
   */
  function copied(options: Record<string, unknown>, churn?: number, scrapes = 2): boolean {
    const { strategy, a, b, send } = pair(options);
    // P lands on a and Q on b; then twenty requests share each, at equal load.
    assert.equal(send(share(promptP, 0), [a, view(b.url, { inFlight: 9 })]), a.url);
    assert.equal(send(share(promptQ, 0), [view(a.url, { inFlight: 9 }), b]), b.url);
    for (let n = 1; n <= 20; n++) {
      assert.equal(send(share(promptP, n), [a, b]), a.url);
      assert.equal(send(share(promptQ, n), [a, b]), b.url);
    }
    let scraped = b;
    if (churn !== undefined) {
      const at = Date.now();
      const scrape = (queries: number, scrapedAt: number) =>
        view(b.url, {
          metrics: metrics({ prefixQueries: queries, prefixHitRate: 0.5, scrapedAt }),
        });
      for (let n = scrapes - 1; n > 0; n--) {
        strategy.pick([a, scrape(1_000_000 - 2 * churn * n, at - 1000 * n)], share(promptQ, 98));
      }
      scraped = scrape(1_000_000, at);
    }
    return send(share(promptP, 99), [view(a.url, { inFlight: 3 }), scraped]) === b.url;
  }
  // Room for both prompts: a copy of P on b costs its ~2,700 tokens once over P's 20 uses.
  assert.equal(copied({}), true);
  // Room for one prompt and a few questions: b evicts blocks it got seconds ago, so a copy of P
  // there would push out Q, which b's requests use.
  assert.equal(copied({ cache_tokens: 3500 }), false);
  // b's own counters (every gateway's traffic) show its cache taking in its size (262,144
  // tokens) in under a minute, though this gateway's index of it has room: no copy.
  assert.equal(copied({}, 500), true);
  assert.equal(copied({}, 5000), false);
  // Until a second scrape shows the rate, nothing is known to stay: no copy.
  assert.equal(copied({}, 500, 1), false);
});

Deno.test("shared-prefix helpers: expected uses follow the rate; pressure is recent evictions of recent blocks, or a cache that turns over within a minute", () => {
  // Expected uses over the next minute project the rate seen so far, early and late.
  const heat = new PrefixHeat();
  const t0 = 1_000_000;
  heat.add(7, t0);
  heat.add(7, t0 + 1000);
  const early = heat.expected(7, t0 + 1000);
  assert.ok(early > 100 && early < 140, `two requests a second apart project ${early}`);
  for (let s = 2; s <= 10; s++) heat.add(7, t0 + s * 1000);
  const steady = heat.expected(7, t0 + 10_000);
  assert.ok(steady > 50 && steady < 75, `one a second projects ${steady} a minute`);
  assert.ok(heat.expected(7, t0 + 600_000) < 1, "a prefix unused for ten minutes");
  assert.equal(heat.expected(8, t0), 0);

  // The index: evicting blocks recorded seconds ago is pressure for a minute; old ones are not.
  const index = new PrefixIndex({ keepMs: 60_000 });
  const blocks = (from: number) => Array.from({ length: 8 }, (_, i) => from + i);
  index.record("http://a", blocks(0), { capacity: 16, now: t0 });
  index.record("http://a", blocks(100), { capacity: 16, now: t0 + 120_000 });
  index.record("http://a", blocks(200), { capacity: 16, now: t0 + 121_000 });
  assert.equal(index.underPressure("http://a", t0 + 121_000), false, "evicted blocks were old");
  index.record("http://a", blocks(300), { capacity: 16, now: t0 + 122_000 });
  assert.equal(index.underPressure("http://a", t0 + 122_000), true);
  assert.equal(index.underPressure("http://a", t0 + 183_000), false, "a minute later");

  // The server's counters: its cache's turnover, once two scrapes show the rate.
  const churn = new CacheChurn();
  const scrape = (queries: number, at: number) =>
    metrics({ prefixQueries: queries, prefixHitRate: 0.5, scrapedAt: at });
  assert.equal(churn.turnover("http://a", 8_000), undefined, "no counters seen");
  churn.observe("http://a", scrape(0, t0));
  assert.equal(churn.turnover("http://a", 8_000), 0, "no rate yet");
  churn.observe("http://a", scrape(20_000, t0 + 1000));
  assert.equal(churn.turnover("http://a", 50_000), 5, "10,000 new tokens a second");
  assert.equal(churn.observe("http://a", scrape(10, t0 + 2000)), true, "a restart");
  assert.equal(churn.turnover("http://a", 8_000), 0);
});

Deno.test("cache_aware: a later turn moves off its history's server only for twice the prefill it would repeat", () => {
  const { strategy, a, b, send } = pair({});
  assert.equal(send(turnOf(7, 0), [a, view(b.url, { inFlight: 9 })]), a.url);
  for (let turn = 1; turn <= 4; turn++) assert.equal(send(turnOf(7, turn), [a, b]), a.url);
  // Turn 5 re-sends about 1,600 tokens of history that a holds. 140 more requests on a cost
  // 2,240 tokens at load_tokens 16: more than the history once, less than twice.
  const next = () => turnOf(7, 5);
  assert.equal(strategy.pick([view(a.url, { inFlight: 140 }), b], next())!.url, a.url);
  assert.equal(strategy.pick([view(a.url, { inFlight: 320 }), b], next())!.url, b.url);
});

Deno.test("cache_aware: a server whose KV cache is full still takes requests whose prefix it holds, not prompts it would prefill", () => {
  const { strategy, a, b, send } = pair({});
  const system = words(7, 1600);
  const user = (n: number) => ask(system, words(n, 20));
  const home = send(user(0), [a, b]);
  // 99% of a 12,800-token cache held by running requests: 128 tokens free.
  const full = view(home, { metrics: metrics({ running: 6, kvUsage: 0.99, cacheTokens: 12_800 }) });
  const other = view(home === a.url ? b.url : a.url, { metrics: metrics({ running: 6 }) });
  // A new user's question (~30 tokens) shares the cached prompt's blocks: it fits.
  for (let n = 1; n < 10; n++) {
    assert.equal(strategy.pick([full, other], user(n))!.url, home, `user ${n}`);
  }
  // A prompt it holds nothing of would need ~2,000 tokens of new blocks: it goes elsewhere.
  const fresh = facts({ messages: [{ role: "user", content: words(99, 1600) }] });
  assert.equal(strategy.pick([full, other], fresh)!.url, other.url);
});

/** Scraped now, with `running` requests running and nothing waiting. */
function scraped(url: string, running = 0): ServerView {
  return view(url, { metrics: metrics({ scrapedAt: Date.now(), running }) });
}

/**
 * Teaches a strategy that b is a quarter as fast as a: for 1.5 s, one request at a time on each,
 * 8 ms each on a and 40 ms on b, scraped every tick, each server reporting that request and
 * `others` more (another router's). Each request's time is measured, so a late timer changes
 * nothing.
 */
async function learnSpeeds(
  strategy: Strategy,
  servers: { a: ServerView; b: ServerView },
  options: { others?: number } = {},
): Promise<void> {
  const { a, b } = servers;
  const reported = 1 + (options.others ?? 0);
  const running = new Map<string, { started: number; request: RequestFacts }>();
  const until = Date.now() + 1500;
  for (let n = 0; Date.now() < until; n++) {
    const views = [scraped(a.url, reported), scraped(b.url, reported)];
    strategy.pick(views, ask(words(500 + n, 300), "learn"));
    for (const [server, lasts] of [[a, 8], [b, 40]] as const) {
      const current = running.get(server.url);
      if (current !== undefined && Date.now() - current.started < lasts) continue;
      if (current !== undefined) strategy.onEnd!(server, current.request, "success");
      const request = ask(words(9000 + n, 300), `learn ${server.url}`);
      strategy.onStart!(server, request);
      running.set(server.url, { started: Date.now(), request });
    }
    await elapse(4);
  }
  for (const [url, { request }] of running) strategy.onEnd!(view(url), request, "success");
}

Deno.test("cache_aware: a slower server must be idler by more than a step's wait there", async () => {
  const short = (n: number) => ask("Be brief.", `Q${n}`);
  for (const [options, busyGoesTo] of [[{}, "a"], [{ step_tokens: 0 }, "b"]] as const) {
    const { strategy, a, b } = pair(options);
    await learnSpeeds(strategy, { a, b });
    // A short prompt, nothing cached: a runs 10 requests (160 tokens at load_tokens 16), b none.
    // b, a quarter as fast, costs the step's 256 tokens four times over: 1,024.
    const busy = view(a.url, { metrics: metrics({ running: 10 }) });
    const picked = strategy.pick([busy, scraped(b.url)], short(1))!.url;
    assert.equal(picked, busyGoesTo === "a" ? a.url : b.url, JSON.stringify(options));
  }
});

Deno.test("cache_aware: under KV pressure a hot shared prefix moves off a slow server to a faster one, unless other routers share the fleet", async () => {
  // Alone, and beside another router that sends twice as much (its copies are not in this
  // instance's index, so a move could duplicate one of them).
  for (const [others, movesTo] of [[0, "a"], [2, "b"]] as const) {
    // A small cache: the learning traffic makes the index evict recent blocks (pressure).
    const { strategy, a, b, send } = pair({ cache_tokens: 3500 });
    await learnSpeeds(strategy, { a, b }, { others });
    // A hot 2,000-token prompt lands on b while a is saturated, and its traffic stays there.
    const system = words(3, 2000);
    const saturated = view(a.url, { metrics: metrics({ waiting: 64 }) });
    for (let n = 0; n < 20; n++) {
      assert.equal(send(ask(system, `Q${n}`), [saturated, scraped(b.url)]), b.url, `request ${n}`);
    }
    // a is free again. Both caches are under pressure, yet a is faster than any holder: alone,
    // the next request pays the copy there, and the ones after it stay.
    for (let n = 20; n < 30; n++) {
      assert.equal(
        send(ask(system, `Q${n}`), [scraped(a.url), scraped(b.url)]),
        movesTo === "a" ? a.url : b.url,
        `others ${others}, request ${n}`,
      );
    }
  }
});
