/**
 * Cache-aware routing: send each request where its prompt's prefix is probably cached, unless that
 * server is busy enough to lose the advantage. The name is the one the vLLM and SGLang routers use.
 *
 * The strategy keeps, per model, an index of what each server has probably cached: every prompt
 * it routes is cut into blocks with chained hashes (`prefix_cache/prompt_blocks.ts`), recorded
 * for the server it went to, least recently used blocks evicted beyond the server's cache size
 * (`prefix_cache/prefix_index.ts`; the size is the engine's own, `vllm:cache_config_info`, when it
 * reports it, else `cache_tokens`).
 *
 * Each candidate gets an expected time to first token, in prefill tokens:
 *
 *     load    = queue_weight * waiting + running + sent_since_scrape - ended_since_scrape
 *               (the gateway's in-flight count when the server's metrics are stale)
 *     backlog = prefill this gateway sent the server and it has probably not computed yet: each
 *               request adds its miss when it starts; the sum drains at prefill_rate * speed
 *               tokens a second and never exceeds the misses of requests still in flight
 *     miss    = prompt_tokens - cached_tokens            (what the server would still prefill)
 *     cost    = (step_tokens + load * load_tokens + backlog + miss) / speed
 *
 * `step_tokens` is the wait for a step on an idle server (a decode step and the fixed part of a
 * prefill); a running request adds far less to a step (`load_tokens`), a waiting one far more
 * (`queue_weight` running ones). For a later turn of a chat, the miss above the lowest among the
 * candidates counts twice: moving the conversation re-prefills its history, which the moved
 * request waits for and so do those queued behind it. `speed` is learned as `real_time_metrics`
 * learns it, on a coarse grid. The backlog is `prefix_cache/prefill_backlog.ts`. A saturated
 * server (`waiting` at `saturated_queue`, or KV use at `saturated_kv` with no room left for the
 * prompt tokens the request would add) costs a million times more.
 *
 * Servers are ranked by rendezvous hashing of the request's affinity key (the conversation's
 * root: system messages and first user message, or a prompt's first `root_bytes`; else a session
 * header or the body's `user`). The first in that ranking whose cost is within a window of the
 * lowest wins: `affinity_tokens` for a later turn; for a first turn or a single request, 0 while
 * this instance routes every turn itself, wider as other replicas or workers route later turns
 * (`homeWindow`). A later turn is credited to the server that has its history (`creditHistory`).
 * Replicas rank alike and see about the same loads, so they agree with no shared state.
 *
 * A prefix many requests share is worth a copy on more servers: on a server lacking part of the
 * longest prefix any server holds, that part's prefill is priced over the requests expected to
 * share it (`prefix_cache/prefix_heat.ts`), where the server's cache is not under pressure
 * (`prefix_cache/prefix_index.ts`, `prefix_cache/cache_churn.ts`) or, while this instance sends
 * at least three quarters of the requests the servers report (no other replica or worker copies
 * prefixes it does not know of), the server is at least 1.5 times as fast as every server holding
 * the prefix (the prefix moves there and the slow copy ages out). A chat's history, one request
 * at a time, keeps its full price.
 *
 * A server whose prefix-cache counter goes back (it restarted) or that leaves the model's server
 * list loses its entries. Options: `prefix_cache/cache_aware_options.ts`; the whole account, with
 * the reasons: docs/strategies.md.
 *
 * @module
 */
import type {
  RequestFacts,
  RequestOutcome,
  ServerView,
  Strategy,
  StrategyOptions,
} from "./types.ts";
import { hashText, type PromptBlocks, promptBlocks } from "./prefix_cache/prompt_blocks.ts";
import { PrefixIndex } from "./prefix_cache/prefix_index.ts";
import { PrefixHeat } from "./prefix_cache/prefix_heat.ts";
import { CacheChurn } from "./prefix_cache/cache_churn.ts";
import { PrefillBacklog } from "./prefix_cache/prefill_backlog.ts";
import { readCacheAwareOptions } from "./prefix_cache/cache_aware_options.ts";
import { SpeedLearner } from "./_speed_learner.ts";
import { liveLoad } from "./real_time_metrics.ts";

/** What the strategy keeps about a request it routes. */
interface Routed {
  /** The prompt's blocks. */
  readonly blocks: PromptBlocks;
  /** Its affinity key. */
  readonly key: number;
  /** The last pick's servers, the prefill each would compute, and their speeds. */
  picked:
    | { urls: string[]; misses: number[]; speeds: number[]; shared: number | undefined }
    | undefined;
  /** Prefill tokens added to its server's backlog when it started, until it ends. */
  started: number | undefined;
}

/** Later turns over which the share routed elsewhere is averaged. */
const ELSEWHERE_TURNS = 32;

/** The most later turns in a row routed elsewhere that the home window counts. */
const MAX_ELSEWHERE_RUN = 4;

/**
 * How long a server's cache should keep what it gets for a copy of a shared prefix to be worth
 * placing there; also the time constant of a prefix's request count.
 */
const KEEP_MS = 60_000;

/** How much faster than a prefix's holders a server under pressure must be to take a copy. */
const FASTER = 1.5;

/**
 * This instance's share of the fleet's requests below which it assumes other replicas or workers
 * route to the same servers, each with an index of its own copies.
 */
const ALONE = 0.75;

/** Cost multiplier of a saturated server. */
const SATURATED = 1e6;

/**
 * Creates the cache-aware strategy.
 *
 * @param options `options.options`: see the module documentation.
 * @returns The strategy.
 * @throws Error naming an option with a wrong value.
 * @example
 * ```ts
 * const strategy = createCacheAware({ model: "m", options: {}, metricsInterval: 1 });
 * ```
 */
export default function createCacheAware(options: StrategyOptions): Strategy {
  const settings = readCacheAwareOptions(options.options);
  const index = new PrefixIndex({ keepMs: KEEP_MS });
  const heat = new PrefixHeat({ decayMs: KEEP_MS });
  const churn = new CacheChurn();
  const learner = new SpeedLearner(settings.speedWindow);
  const prompts = new WeakMap<RequestFacts, Routed>();
  const backlog = new PrefillBacklog(settings.prefillRate);
  const urlHashes = new Map<string, number>();
  const capacities = new Map<string, number>();
  let serverCount = 1;
  let elsewhere = 0;

  /**
   * The window within which a conversation's home server wins its first turn (and is assumed
   * to have won it): `affinity_tokens` plus the root's prefill (what going home saves a later
   * turn that another replica or worker routes with no record of its own), times the number of
   * later turns in a row that other replicas route (`elsewhere / (1 - elsewhere)`, at most 4).
   * With no other replica it is 0: a first turn or a single request goes to the lowest cost.
   */
  function homeWindow(blocks: PromptBlocks): number {
    const turns = Math.min(MAX_ELSEWHERE_RUN, elsewhere / (1 - elsewhere));
    return turns * (settings.affinityTokens + blocks.rootBytes / settings.bytesPerToken);
  }

  function promptOf(request: RequestFacts): Routed {
    let prompt = prompts.get(request);
    if (prompt === undefined) {
      const blocks = promptBlocks(request.body, settings);
      prompt = { blocks, key: affinityKey(request, blocks), picked: undefined, started: undefined };
      prompts.set(request, prompt);
    }
    return prompt;
  }

  function affinityKey(request: RequestFacts, blocks: PromptBlocks): number {
    if (settings.sessionHeader !== undefined) {
      const value = request.headers.get(settings.sessionHeader);
      if (value) return hashText(value);
    }
    if (settings.sessionUser) {
      const user = request.body["user"];
      if (typeof user === "string" && user !== "") return hashText(user);
    }
    return blocks.root;
  }

  function urlHash(url: string): number {
    let hash = urlHashes.get(url);
    if (hash === undefined) urlHashes.set(url, hash = hashText(url));
    return hash;
  }

  /** Notes a new scrape: learns speed, keeps the cache size, forgets a restarted server. */
  function observe(server: ServerView): void {
    learner.observe(server);
    const metrics = server.metrics;
    if (metrics === undefined) return;
    if (metrics.cacheTokens !== undefined) capacities.set(server.url, metrics.cacheTokens);
    if (churn.observe(server.url, metrics)) index.forget(server.url);
  }

  /**
   * Whether a server's cache keeps what it gets for less than `KEEP_MS`: the index had to evict
   * a block used that recently, or the server's own counters show its cache taking in its size
   * in new tokens that fast (counting every gateway's traffic), or have not shown a rate yet.
   */
  function underPressure(url: string, now: number): boolean {
    if (index.underPressure(url, now)) return true;
    return (churn.turnover(url, cacheTokens(url)) ?? Infinity) * 1000 < KEEP_MS;
  }

  /** A server's cache size in tokens: its engine's own when reported, else `cache_tokens`. */
  function cacheTokens(url: string): number {
    return capacities.get(url) ?? settings.cacheTokens;
  }

  function capacityBlocks(url: string): number {
    const blocks = Math.floor(cacheTokens(url) * settings.bytesPerToken / settings.blockBytes);
    return Math.max(1, Math.min(blocks, Math.floor(settings.maxBlocks / serverCount)));
  }

  /** The load part of a server's cost: `(step_tokens + load * load_tokens) / speed`. */
  function loadCost(server: ServerView, speed: number, now: number): number {
    const load = liveLoad(server, settings.queueWeight, learner.endedSince(server, now));
    return (settings.stepTokens + load * settings.loadTokens) / speed;
  }

  /**
   * Whether a server cannot take the request soon: `waiting` is at `saturated_queue`, or its KV
   * use is at `saturated_kv` and the prompt tokens it would add do not fit in the rest (a request
   * whose prefix the server holds shares those blocks and adds only its own).
   */
  function saturated(server: ServerView, missTokens: number): boolean {
    const metrics = server.metrics;
    if (metrics === undefined) return false;
    if (metrics.waiting >= settings.saturatedQueue) return true;
    const used = metrics.kvUsage ?? 0;
    return used >= settings.saturatedKv && missTokens > (1 - used) * cacheTokens(server.url);
  }

  /** Prefill tokens a server would still compute for the prompt. */
  function missTokens(blocks: PromptBlocks, cachedBytes: number): number {
    return Math.max(0, blocks.bytes - cachedBytes) / settings.bytesPerToken;
  }

  /** Server positions by rendezvous rank for a key, first first. */
  function rank(servers: readonly ServerView[], key: number): number[] {
    const scores = servers.map((server) => rendezvous(key, urlHash(server.url)));
    return servers.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  }

  /**
   * Credits a later turn's history to the server that has it: the one this gateway sent the
   * previous turn to (its record covers that turn's prompt, and the answer is cached too), else,
   * when another replica routed the previous turn, the conversation's home: the first server in
   * its ranking, where every replica sends it unless the home is too busy.
   */
  function creditHistory(
    turn: { cached: number[]; ranked: number[]; speeds: number[]; blocks: PromptBlocks },
  ): void {
    const window = homeWindow(turn.blocks);
    const { cached, blocks } = turn;
    const previous = Math.floor(blocks.previousBytes / settings.blockBytes) * settings.blockBytes;
    let known = false;
    for (let i = 0; i < cached.length; i++) {
      if (previous > 0 && cached[i]! >= previous) {
        cached[i] = Math.max(cached[i]!, blocks.historyBytes);
        known = true;
      }
    }
    // How often a later turn's previous turn was routed by another replica or worker.
    elsewhere += (Number(!known) - elsewhere) / ELSEWHERE_TURNS;
    if (known) return;
    // Where the first turn went, as every replica would have chosen it with no load: the first
    // in the ranking whose first-turn prefill, at its speed, is within the first-turn window of
    // the best.
    const first = turn.speeds.map((speed) =>
      (settings.stepTokens + blocks.rootBytes / settings.bytesPerToken) / speed
    );
    const best = Math.min(...first);
    const home = turn.ranked.find((i) => first[i]! <= best + window)!;
    cached[home] = Math.max(cached[home]!, blocks.historyBytes);
  }

  /**
   * The longest prefix of the prompt any server holds (`matched` blocks), when earlier requests
   * shared it: its hash, and per server the prefill a copy there would save on the price (a copy
   * is paid once and then serves the prefix's later requests, so it is priced at its prefill
   * over the requests expected to share it), where the server's cache is not under pressure (it
   * keeps what it gets for a minute, so the copy stays to serve them) or, when this instance
   * routes alone, the server is much faster than every holder.
   */
  function sharedPrefix(
    servers: readonly ServerView[],
    prompt: {
      blocks: PromptBlocks;
      matched: readonly number[];
      cached: readonly number[];
      speeds: readonly number[];
    },
    now: number,
  ): { hash: number; saved: number[] } | undefined {
    const deepest = Math.max(...prompt.matched);
    if (deepest === 0) return undefined;
    const hash = prompt.blocks.hashes[deepest - 1]!;
    const uses = heat.expected(hash, now);
    if (uses <= 1) return { hash, saved: [] };
    // Under pressure a copy evicts what another prefix needs, so it is made only where it
    // moves the prefix to a clearly faster server than any that holds it (learned speeds of
    // equal servers can differ by a grid step): each of its requests gains there, and the
    // slower copy ages out. Only when routing alone: beside other replicas or workers, this
    // index misses their copies, so a move would duplicate a prefix one of them placed there.
    const holders = Math.max(...prompt.speeds.filter((_, i) => prompt.matched[i] === deepest));
    // Read once, and only when some server would take a move.
    let alone: boolean | undefined;
    const routesAlone = () => alone ??= (learner.share(servers) ?? 1) >= ALONE;
    const saved = servers.map((server, i) => {
      // `cached` may credit a chat's history beyond the index's match: only the rest is a copy.
      const copied = deepest * settings.blockBytes - prompt.cached[i]!;
      const room = !underPressure(server.url, now) ||
        (prompt.speeds[i]! >= holders * FASTER && routesAlone());
      return copied > 0 && room ? copied / settings.bytesPerToken * (1 - 1 / uses) : 0;
    });
    return { hash, saved };
  }

  return {
    pick(servers: readonly ServerView[], request: RequestFacts): ServerView | undefined {
      if (servers.length <= 1) return servers[0];
      const prompt = promptOf(request);
      const { blocks, key } = prompt;
      const now = Date.now();
      for (const server of servers) observe(server);
      const speeds = learner.speeds(servers);
      const matched = servers.map((server) => index.match(server.url, blocks.hashes));
      const cached = matched.map((count) => count * settings.blockBytes);
      const speedOf = servers.map((server) => coarse(speeds.get(server.url) ?? 1));
      const loads = servers.map((server, i) => loadCost(server, speedOf[i]!, now));
      const ranked = rank(servers, key);
      if (blocks.historyBytes > 0) {
        creditHistory({ cached, ranked, speeds: speedOf, blocks });
      }
      const misses = cached.map((bytes) => missTokens(blocks, bytes));
      const shared = sharedPrefix(servers, { blocks, matched, cached, speeds: speedOf }, now);
      // A later turn moved off the server with its history re-prefills that history there: the
      // request waits for it, and so do the requests that queue behind it, so the extra prefill
      // counts twice.
      const fewest = Math.min(...misses);
      const moved = blocks.historyBytes > 0 ? 2 : 1;
      const costs = servers.map((server, i) =>
        loads[i]! * (saturated(server, misses[i]!) ? SATURATED : 1) +
        (backlog.of(server.url, { speed: speedOf[i]!, now }) + fewest +
            moved * (misses[i]! - fewest) - (shared?.saved[i] ?? 0)) /
          speedOf[i]!
      );
      prompt.picked = {
        urls: servers.map((server) => server.url),
        misses,
        speeds: speedOf,
        shared: shared?.hash,
      };
      let best = Infinity;
      for (const value of costs) if (value < best) best = value;
      const window = blocks.historyBytes > 0 ? settings.affinityTokens : homeWindow(blocks);
      // The first server in the affinity key's ranking within the window of the best:
      // every replica ranks alike and sees about the same loads, so they agree.
      for (const i of ranked) if (costs[i]! <= best + window) return servers[i];
      return undefined;
    },
    onStart(server: ServerView, request: RequestFacts): void {
      learner.started(server);
      const prompt = promptOf(request);
      const { blocks, picked } = prompt;
      const now = Date.now();
      if (picked !== undefined) {
        const at = picked.urls.indexOf(server.url);
        if (at >= 0) {
          const miss = { tokens: picked.misses[at]!, speed: picked.speeds[at]!, now };
          prompt.started = backlog.start(server.url, miss);
        }
        if (picked.shared !== undefined) heat.add(picked.shared, now);
      }
      if (blocks.hashes.length > 0) {
        index.record(server.url, blocks.hashes, { capacity: capacityBlocks(server.url), now });
      }
    },
    onEnd(server: ServerView, request: RequestFacts, outcome: RequestOutcome): void {
      learner.ended(server, outcome);
      // An ended request's prefill is done: the backlog is at most what is still in flight.
      const prompt = prompts.get(request);
      if (prompt?.started !== undefined) {
        backlog.end(server.url, prompt.started);
        prompt.started = undefined;
      }
    },
    onServers(servers: readonly ServerView[]): void {
      serverCount = Math.max(1, servers.length);
      const urls = new Set(servers.map((server) => server.url));
      index.retain(urls);
      churn.retain(urls);
      backlog.retain(urls);
      for (const map of [capacities, urlHashes]) {
        for (const url of map.keys()) if (!urls.has(url)) map.delete(url);
      }
    },
  };
}

/**
 * A learned speed on a coarse grid (steps of a third of a doubling: 1, 0.79, 0.63, 0.5, ...), so
 * that the noise of learning does not tell equal servers apart, nor two replicas apart.
 */
function coarse(speed: number): number {
  return 2 ** (Math.round(Math.log2(speed) * 3) / 3);
}

/** The rendezvous (highest random weight) score of a server for a key. */
function rendezvous(key: number, server: number): number {
  let h = Math.imul(key ^ server, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
