/**
 * The parts of `cache_aware`'s cost that are not about cached prefixes: the prefill backlog this
 * gateway sent, the wider home window when other replicas route some of a conversation's turns,
 * and speed learning that counts only this instance's own requests.
 */
import assert from "node:assert/strict";
import createCacheAware from "../../strategies/cache_aware.ts";
import { SpeedLearner } from "../../strategies/_speed_learner.ts";
import type { RequestFacts } from "../../strategies/types.ts";
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
    // Its home now carries three more requests (192 tokens at the default load_tokens 64).
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
