/**
 * The simulated KV cache: fixed-size blocks, a prefix cache of hashed blocks and LRU eviction of
 * cached blocks that no running request holds (vLLM's block pool, simplified).
 *
 * A block gets its chain hash once it is full and computed, whether it holds prompt or generated
 * tokens. A freed request's blocks become evictable tail first, so the free queue runs least
 * recently used first and a prefix loses its last blocks before its first ones; a cached block
 * that a new request reuses leaves the queue until it is freed again. New blocks come from never
 * used capacity first, then from the head of that queue, whose hashes are dropped.
 *
 * @module
 */

/** One KV-cache block. */
export interface KvBlock {
  /** Chain hash of the token block it caches, or `null` while private. */
  hash: string | null;
  /** Number of running requests holding the block. */
  ref: number;
}

/** What a request holds in the cache. */
export interface KvHolder {
  /** Blocks in token order. */
  blocks: KvBlock[];
  /** How many leading blocks are hashed already. */
  registered: number;
}

/**
 * A block pool with a prefix cache.
 *
 * @example
 * ```ts
 * const kv = new KvCache(4, 16);
 * const holder = { blocks: [], registered: 0 };
 * kv.admit(holder, [], 40); // true: 3 blocks
 * kv.usage; // 0.75
 * ```
 */
export class KvCache {
  #capacity: number;
  readonly #blockSize: number;
  /** Blocks in use or cached: held ones plus evictable ones. */
  #allocated = 0;
  #held = 0;
  readonly #cache = new Map<string, KvBlock>();
  /** Cached blocks no request holds, least recently used first. */
  readonly #evictable = new Set<KvBlock>();

  /**
   * Creates an empty cache.
   *
   * @param capacity Number of blocks.
   * @param blockSize Tokens per block.
   */
  constructor(capacity: number, blockSize: number) {
    this.#capacity = capacity;
    this.#blockSize = blockSize;
  }

  /** Tokens per block. */
  get blockSize(): number {
    return this.#blockSize;
  }

  /** Number of blocks; may change while blocks are held. */
  get capacity(): number {
    return this.#capacity;
  }

  set capacity(value: number) {
    this.#capacity = value;
  }

  /** Blocks held by running requests. */
  get heldBlocks(): number {
    return this.#held;
  }

  /** Share of blocks held by running requests, 0..1 (cached free blocks count as free). */
  get usage(): number {
    return Math.min(1, this.#held / this.#capacity);
  }

  /**
   * Blocks needed for a number of tokens.
   *
   * @param tokens Token count.
   * @returns Block count.
   */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.#blockSize);
  }

  /**
   * Finds the longest cached prefix of a prompt. Like vLLM, it leaves at least one token to
   * compute, so the step samples one: a prompt of whole blocks never matches its last block.
   *
   * @param hashes Chain hashes of the request's full blocks.
   * @param tokens The request's tokens.
   * @returns The cached blocks, in order.
   */
  lookup(hashes: readonly string[], tokens: number): KvBlock[] {
    const hits: KvBlock[] = [];
    const limit = Math.min(hashes.length, Math.floor((tokens - 1) / this.#blockSize));
    for (let i = 0; i < limit; i++) {
      const block = this.#cache.get(hashes[i] ?? "");
      if (block === undefined) break;
      hits.push(block);
    }
    return hits;
  }

  /**
   * Gives a waiting request its cached blocks plus new ones for `tokens`, or nothing at all.
   *
   * @param holder The request's holdings (empty).
   * @param hits Cached blocks from {@link lookup}.
   * @param tokens Tokens the request will have computed after this step.
   * @returns Whether enough blocks were free.
   */
  admit(holder: KvHolder, hits: readonly KvBlock[], tokens: number): boolean {
    const fresh = Math.max(0, this.blocksFor(tokens) - hits.length);
    let revived = 0;
    for (const block of hits) if (block.ref === 0) revived++;
    if (fresh + revived > this.#available()) return false;
    for (const block of hits) {
      if (block.ref === 0) {
        this.#evictable.delete(block);
        this.#held++;
      }
      block.ref++;
      holder.blocks.push(block);
    }
    holder.registered = hits.length;
    for (let i = 0; i < fresh; i++) holder.blocks.push(this.#allocate());
    return true;
  }

  /**
   * Grows a running request's holdings to cover `tokens`.
   *
   * @param holder The request's holdings.
   * @param tokens Tokens the request will have computed after this step.
   * @returns Whether enough blocks were free (nothing changes when not).
   */
  grow(holder: KvHolder, tokens: number): boolean {
    const fresh = this.blocksFor(tokens) - holder.blocks.length;
    if (fresh <= 0) return true;
    if (fresh > this.#available()) return false;
    for (let i = 0; i < fresh; i++) holder.blocks.push(this.#allocate());
    return true;
  }

  /**
   * Caches the request's blocks that are now full and computed (prompt and generated tokens).
   *
   * @param holder The request's holdings.
   * @param hashes Chain hashes of the full blocks of prompt and output.
   * @param computed Tokens computed so far.
   */
  register(holder: KvHolder, hashes: readonly string[], computed: number): void {
    const upTo = Math.min(hashes.length, Math.floor(computed / this.#blockSize));
    for (let i = holder.registered; i < upTo; i++) {
      const block = holder.blocks[i];
      const hash = hashes[i];
      if (block === undefined || hash === undefined || block.hash !== null) continue;
      if (this.#cache.has(hash)) continue;
      block.hash = hash;
      this.#cache.set(hash, block);
    }
    if (upTo > holder.registered) holder.registered = upTo;
  }

  /**
   * Releases everything a request holds; its cached blocks stay reusable until evicted.
   *
   * @param holder The request's holdings (emptied).
   */
  free(holder: KvHolder): void {
    for (let i = holder.blocks.length - 1; i >= 0; i--) {
      const block = holder.blocks[i];
      if (block === undefined) continue;
      block.ref--;
      if (block.ref > 0) continue;
      this.#held--;
      if (block.hash === null) this.#allocated--;
      else this.#evictable.add(block);
    }
    holder.blocks = [];
    holder.registered = 0;
  }

  #available(): number {
    return Math.max(0, this.#capacity - this.#allocated) + this.#evictable.size;
  }

  #allocate(): KvBlock {
    if (this.#capacity - this.#allocated > 0) {
      this.#allocated++;
    } else {
      const victim = this.#evictable.values().next().value;
      if (victim === undefined) {
        throw new Error("KV cache has no free block; check availability first");
      }
      this.#evictable.delete(victim);
      if (victim.hash !== null) this.#cache.delete(victim.hash);
    }
    this.#held++;
    return { hash: null, ref: 1 };
  }
}
