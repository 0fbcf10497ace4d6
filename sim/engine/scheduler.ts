/**
 * vLLM V1's scheduling policy, simplified: which requests run in the next engine step.
 *
 * Running requests go first (one decode token each, or their next prefill chunk); when KV blocks
 * run out the newest running request is preempted (its blocks freed, back to the queue head, to be
 * recomputed). Then, unless something was preempted, waiting requests are admitted from the queue
 * head only, while running slots, the step's token budget and KV blocks allow; a request that does
 * not fit blocks those behind it. While a test gate is closed, gated requests about to sample their
 * last token are skipped but keep their slot and blocks. A waiting request starts from its longest
 * cached prefix (whole blocks, leaving at least one prompt token to compute, as vLLM does).
 *
 * @module
 */

import type { KvBlock, KvCache, KvHolder } from "./kv_cache.ts";

/** What to generate for one request. */
export interface EngineJob {
  /** Prompt length in tokens. */
  promptTokens: number;
  /**
   * Chain hashes of the full blocks of the prompt followed by the output to generate (empty to
   * skip the prefix cache). Lookups use the prompt's blocks; the output's are cached as computed.
   */
  blockHashes: readonly string[];
  /** Output tokens to generate; 0 finishes after prefill (embeddings). */
  outputTokens: number;
  /** Reason reported once all output tokens are out. */
  finishReason: "stop" | "length";
  /** Whether the request waits at a closed gate before sampling its last token (streams). */
  gated: boolean;
}

/** A request inside the engine, with its progress and KV holdings. */
export class SimRequest implements KvHolder {
  /** KV blocks held, in token order. */
  blocks: KvBlock[] = [];
  /** Leading blocks already hashed. */
  registered = 0;
  /** Where the request is. */
  phase: "waiting" | "running" | "done" = "waiting";
  /** Tokens whose KV is computed. */
  computed = 0;
  /** Output tokens sampled. */
  generated = 0;
  /** Tokens scheduled in the step in flight. */
  scheduled = 0;
  /** Prompt tokens found in the prefix cache at first admission. */
  cachedTokens = 0;
  /** Whether the request was ever admitted (preempted ones come back). */
  admitted = false;
  /** When the last token was sampled (`performance.now()`). */
  lastTokenAt = 0;
  /** When the request arrived (`performance.now()`). */
  readonly arrival: number = performance.now();
  /** What to generate. */
  readonly job: EngineJob;

  /**
   * Creates a waiting request.
   *
   * @param job What to generate.
   */
  constructor(job: EngineJob) {
    this.job = job;
  }

  /** Prompt plus sampled tokens. */
  get numTokens(): number {
    return this.job.promptTokens + this.generated;
  }
}

/** Limits of one step. */
export interface StepLimits {
  /** Running slots. */
  maxNumSeqs: number;
  /** Tokens one step may compute. */
  maxNumBatchedTokens: number;
  /** Whether to look prompts up in the prefix cache. */
  prefixCaching: boolean;
  /** Whether a test gate is closed: gated requests about to sample their last token wait. */
  gateClosed: boolean;
}

/** The requests one step computes. */
export interface StepPlan {
  /** Scheduled requests; each has `scheduled` set. */
  batch: SimRequest[];
  /** Requests in the batch that decode one token. */
  decodes: number;
  /** Tokens prefilled (prompt chunks and recomputation). */
  prefillTokens: number;
  /** Requests admitted for the first time, with their prefix cache hits set. */
  admitted: SimRequest[];
  /** Running requests preempted to free blocks. */
  preempted: number;
  /** Running requests waiting at the closed gate (holding their slot and blocks). */
  held: number;
}

/**
 * Plans one step, moving requests between the queues and allocating their blocks.
 *
 * @param queues Running requests (admission order) and waiting requests (queue order); changed.
 * @param kv The KV cache; blocks are allocated and freed here.
 * @param limits Slots, token budget and prefix caching.
 * @returns The step's batch and what it costs.
 */
export function planStep(
  queues: { running: SimRequest[]; waiting: SimRequest[] },
  kv: KvCache,
  limits: StepLimits,
): StepPlan {
  const { running, waiting } = queues;
  const plan: StepPlan = {
    batch: [],
    decodes: 0,
    prefillTokens: 0,
    admitted: [],
    preempted: 0,
    held: 0,
  };
  let budget = limits.maxNumBatchedTokens;
  for (let i = 0; i < running.length && budget > 0; i++) {
    const request = running[i] as SimRequest;
    if (limits.gateClosed && atGate(request)) continue;
    const tokens = Math.min(request.numTokens - request.computed, budget);
    let ok = kv.grow(request, request.computed + tokens);
    while (!ok) {
      const victim = running.pop() as SimRequest;
      kv.free(victim);
      victim.phase = "waiting";
      victim.computed = 0;
      waiting.unshift(victim);
      plan.preempted++;
      if (victim === request) break;
      ok = kv.grow(request, request.computed + tokens);
    }
    if (!ok) break;
    budget -= schedule(plan, request, tokens);
  }
  while (
    plan.preempted === 0 && budget > 0 && waiting.length > 0 && running.length < limits.maxNumSeqs
  ) {
    const request = waiting[0] as SimRequest;
    const hits = limits.prefixCaching ? kv.lookup(request.job.blockHashes, request.numTokens) : [];
    const cached = hits.length * kv.blockSize;
    const tokens = Math.min(request.numTokens - cached, budget);
    if (!kv.admit(request, hits, cached + tokens)) break;
    waiting.shift();
    request.phase = "running";
    request.computed = cached;
    running.push(request);
    if (!request.admitted) {
      request.admitted = true;
      request.cachedTokens = cached;
      plan.admitted.push(request);
    }
    budget -= schedule(plan, request, tokens);
  }
  if (limits.gateClosed) { for (const request of running) if (atGate(request)) plan.held++; }
  return plan;
}

/** Whether a gated request's next step would sample its last token (never its only one). */
function atGate(request: SimRequest): boolean {
  const job = request.job;
  return job.gated && request.generated > 0 && request.generated === job.outputTokens - 1;
}

function schedule(plan: StepPlan, request: SimRequest, tokens: number): number {
  request.scheduled = tokens;
  plan.batch.push(request);
  if (request.generated > 0 && request.numTokens - request.computed === 1) plan.decodes++;
  else plan.prefillTokens += tokens;
  return tokens;
}
