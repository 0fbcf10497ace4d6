import assert from "node:assert/strict";
import createCacheAware from "../../strategies/cache_aware.ts";
import { promptBlocks } from "../../strategies/prefix_cache/prompt_blocks.ts";
import { PrefixIndex } from "../../strategies/prefix_cache/prefix_index.ts";
import { facts, metrics, view } from "../support/strategy_views.ts";
import { type SimServer, startSimServer } from "../../sim/server.ts";
import { postJson, type Stack, startStack } from "../support/stack.ts";

const FAST = { itlMs: 1, ttftMs: 1 };
const BLOCKS = { blockBytes: 256, rootBytes: 1024 };

function words(seed: number, count: number): string {
  return Array.from({ length: count }, (_, i) => `w${(seed * 7919 + i * 104729) % 9973}`).join(" ");
}

/** The messages of turn `turn` (0-based) of conversation `id`: the whole history re-sent. */
function conversation(id: number, turn: number): { role: string; content: string }[] {
  const messages = [{ role: "system", content: `You help user ${id}. ${words(id, 120)}` }];
  for (let t = 0; t <= turn; t++) {
    messages.push({ role: "user", content: `Question ${t}: ${words(id * 31 + t, 80)}` });
    if (t < turn) messages.push({ role: "assistant", content: `Answer ${t}: ${words(t, 60)}` });
  }
  return messages;
}

function receivedBy(sims: readonly SimServer[], before: readonly number[]): number {
  const index = sims.findIndex((sim, i) => sim.state().received > before[i]!);
  assert.ok(index >= 0, "no simulator received the request");
  return index;
}

async function chat(url: string, messages: unknown): Promise<void> {
  const response = await postJson(`${url}/v1/chat/completions`, {
    model: "m",
    messages,
    max_tokens: 4,
  });
  assert.equal(response.status, 200, await response.clone().text());
  await response.body?.cancel();
}

function spec(urls: string[]): Record<string, unknown> {
  return { models: { m: { servers: urls, strategy: "cache_aware" } } };
}

Deno.test("cache_aware keeps each conversation on one server and spreads conversations", async () => {
  const stack = await startStack({ sims: [FAST, FAST, FAST, FAST], spec });
  try {
    const homes = new Map<number, Set<number>>();
    for (let turn = 0; turn < 4; turn++) {
      for (let id = 0; id < 8; id++) {
        const before = stack.sims.map((sim) => sim.state().received);
        await chat(stack.url, conversation(id, turn));
        const home = homes.get(id) ?? new Set();
        home.add(receivedBy(stack.sims, before));
        homes.set(id, home);
      }
    }
    for (const [id, servers] of homes) {
      assert.equal(servers.size, 1, `conversation ${id} moved: ${[...servers]}`);
    }
    const used = new Set([...homes.values()].map((servers) => [...servers][0]));
    assert.ok(used.size >= 2, `8 conversations all went to one server`);
  } finally {
    await stack.close();
  }
});

Deno.test("cache_aware: two gateway replicas alternating turns agree on each conversation's server", async () => {
  const sims = await Promise.all([FAST, FAST, FAST, FAST].map((o) => startSimServer(o)));
  const urls = sims.map((sim) => sim.url);
  const replicas: Stack[] = [];
  try {
    for (let i = 0; i < 2; i++) replicas.push(await startStack({ spec: () => spec(urls) }));
    for (let id = 0; id < 8; id++) {
      const servers = new Set<number>();
      for (let turn = 0; turn < 4; turn++) {
        const before = sims.map((sim) => sim.state().received);
        await chat(replicas[turn % 2]!.url, conversation(id, turn));
        servers.add(receivedBy(sims, before));
      }
      assert.equal(servers.size, 1, `conversation ${id} moved between replicas: ${[...servers]}`);
    }
  } finally {
    for (const replica of replicas) await replica.close();
    await Promise.all(sims.map((sim) => sim.close()));
  }
});

Deno.test("cache_aware trades a cached prefix against load, and forgets restarted servers", () => {
  const strategy = createCacheAware({ model: "m", options: {}, metricsInterval: 1 });
  const a = view("http://a");
  const b = view("http://b");
  // A 2,000-token system prompt shared by many users.
  const system = words(1, 1600);
  const ask = (user: number) =>
    facts({
      messages: [{ role: "system", content: system }, { role: "user", content: words(user, 20) }],
    });
  strategy.onServers!([a, b]);
  const opening = ask(0);
  const first = strategy.pick([a, b], opening)!;
  strategy.onStart!(first, opening);
  strategy.onEnd!(first, opening, "success");
  const other = first === a ? b : a;
  // Equal load: the server holding the prefix wins for every new user.
  for (let user = 1; user < 20; user++) assert.equal(strategy.pick([a, b], ask(user)), first);
  // Busy enough to lose ~2,000 tokens of prefill: 8 waiting requests count as 128 running ones,
  // at 16 tokens each (the defaults queue_weight 16 and load_tokens 16).
  const busy = view(first.url, { metrics: metrics({ running: 16, waiting: 8 }) });
  const idle = view(other.url, { metrics: metrics({ running: 0 }) });
  assert.equal(strategy.pick([busy, idle], ask(21))!.url, other.url);
  const slightly = view(first.url, { metrics: metrics({ running: 12 }) });
  assert.equal(strategy.pick([slightly, idle], ask(22))!.url, first.url);
  // Its prefix-cache counter goes back: it restarted, and its entries are gone.
  const before = view(first.url, { metrics: metrics({ prefixQueries: 10_000 }) });
  const otherFresh = view(other.url, { metrics: metrics({ prefixQueries: 0 }) });
  strategy.pick([before, otherFresh], ask(23));
  const restarted = view(first.url, { metrics: metrics({ prefixQueries: 5 }) });
  const picks = new Set<string>();
  for (let user = 30; user < 60; user++) {
    picks.add(strategy.pick([restarted, otherFresh], ask(user))!.url);
  }
  assert.equal(picks.size, 2, "after the restart no server holds the prefix: both get users");
});

Deno.test("cache_aware: a server that leaves the fleet loses its entries; the index is bounded", () => {
  const strategy = createCacheAware({ model: "m", options: {}, metricsInterval: 1 });
  const a = view("http://a");
  const b = view("http://b");
  strategy.onServers!([a, b]);
  const long = facts({ prompt: words(1, 1600) });
  const chosen = strategy.pick([a, b], long)!;
  strategy.onStart!(chosen, long);
  // Its prefill is done (until it ends, it counts as work waiting on that server).
  strategy.onEnd!(chosen, long, "success");
  const other = chosen === a ? b : a;
  // Ten requests busier, it still wins: its cached prefix saves ~2,000 tokens of prefill.
  const busier = view(chosen.url, { inFlight: 10 });
  assert.equal(strategy.pick([busier, other], facts({ prompt: words(1, 1600) }))!.url, chosen.url);
  // It leaves the fleet and comes back: its record is gone, so the idler server wins.
  strategy.onServers!([other]);
  strategy.onServers!([a, b]);
  assert.equal(strategy.pick([busier, other], facts({ prompt: words(1, 1600) }))!.url, other.url);
  // The index: each server keeps at most its capacity, least recently used blocks out first.
  const index = new PrefixIndex();
  const prompts = Array.from(
    { length: 10 },
    (_, n) => promptBlocks({ prompt: words(n + 100, 200) }, { blockBytes: 64, rootBytes: 1024 }),
  );
  for (const prompt of prompts) index.record("http://a", prompt.hashes, { capacity: 32 });
  assert.ok(index.size <= 32, `index holds ${index.size} blocks, over its bound`);
  const last = prompts.at(-1)!;
  assert.equal(index.match("http://a", last.hashes), Math.min(32, last.hashes.length));
  assert.equal(index.match("http://a", prompts[0]!.hashes), 0);
  // A shared prefix recorded again stays; only tails are evicted first.
  index.record("http://a", prompts[0]!.hashes.slice(0, 4), { capacity: 32 });
  index.record("http://a", prompts[1]!.hashes, { capacity: 32 });
  assert.equal(index.match("http://a", prompts[0]!.hashes), 4);
});

Deno.test("prompt blocks: chat history shares its prefix; every body shape renders", () => {
  const turn1 = promptBlocks({ messages: conversation(5, 0) }, BLOCKS);
  const turn2 = promptBlocks({ messages: conversation(5, 1) }, BLOCKS);
  const elsewhere = promptBlocks({ messages: conversation(6, 1) }, BLOCKS);
  assert.ok(turn1.hashes.length >= 3);
  assert.deepEqual(turn2.hashes.slice(0, turn1.hashes.length), turn1.hashes);
  assert.equal(turn2.root, turn1.root, "the root names the conversation in every turn");
  assert.notEqual(elsewhere.root, turn1.root);
  assert.notEqual(elsewhere.hashes[0], turn1.hashes[0]);
  // Array content parts, tools, token ids, lists of prompts and embedding input all render.
  const parts = promptBlocks({
    tools: [{ type: "function", function: { name: "f", parameters: {} } }],
    messages: [{
      role: "user",
      content: [{ type: "text", text: words(9, 200) }, {
        type: "image_url",
        image_url: { url: "data:x" },
      }],
    }],
  }, BLOCKS);
  assert.ok(parts.hashes.length > 0);
  const ids = promptBlocks({ prompt: Array.from({ length: 500 }, (_, i) => i) }, BLOCKS);
  assert.ok(ids.hashes.length > 0);
  const list = promptBlocks({ prompt: [words(3, 100), words(4, 100)] }, BLOCKS);
  const input = promptBlocks({ input: words(3, 100) }, BLOCKS);
  assert.equal(list.hashes[0], input.hashes[0], "the same leading text, the same first block");
  assert.equal(promptBlocks({}, BLOCKS).hashes.length, 0);
});

Deno.test("cache_aware refuses unknown or wrong options", () => {
  assert.throws(
    () => createCacheAware({ model: "m", options: { block_bytes: 100 }, metricsInterval: 1 }),
    /strategy option "block_bytes"/,
  );
  assert.throws(
    () => createCacheAware({ model: "m", options: { blok_bytes: 256 }, metricsInterval: 1 }),
    /blok_bytes/,
  );
});
