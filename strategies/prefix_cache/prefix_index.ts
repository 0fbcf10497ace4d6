/**
 * A helper for cache-aware strategies: what each server has probably cached, as the chained block
 * hashes ({@link PromptBlocks}) of the prompts this gateway sent it.
 *
 * Each server has its own least-recently-used set of block hashes, bounded by its capacity in
 * blocks; recording a prompt touches its blocks from the last to the first, so a server's oldest
 * blocks are the tails of old prompts and a shared prefix is evicted last (as vLLM frees a
 * request's blocks tail first). Because block hashes are chained, a server holds a prompt's first
 * `k` blocks when it holds block `k - 1`, and a match walks from the first block until a miss.
 * A server over its capacity drops its oldest blocks down to seven eighths of it.
 *
 * @module
 */

/** One server's cached blocks, oldest first (a `Map` keeps insertion order). */
class ServerBlocks {
  readonly blocks = new Map<number, true>();
  capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }
}

/** The index of one model's servers. */
export class PrefixIndex {
  #servers = new Map<string, ServerBlocks>();

  /** Blocks held, over all servers. */
  get size(): number {
    let size = 0;
    for (const server of this.#servers.values()) size += server.blocks.size;
    return size;
  }

  /**
   * Counts the leading blocks of a prompt a server holds.
   *
   * @param url The server.
   * @param hashes The prompt's chained block hashes.
   * @returns How many of the first blocks it holds.
   */
  match(url: string, hashes: readonly number[]): number {
    const blocks = this.#servers.get(url)?.blocks;
    if (blocks === undefined) return 0;
    let matched = 0;
    while (matched < hashes.length && blocks.has(hashes[matched]!)) matched++;
    return matched;
  }

  /**
   * Records that a server received a prompt, evicting its least recently used blocks beyond its
   * capacity.
   *
   * @param url The server.
   * @param hashes The prompt's chained block hashes.
   * @param capacity The server's capacity in blocks now.
   */
  record(url: string, hashes: readonly number[], capacity: number): void {
    let server = this.#servers.get(url);
    if (server === undefined) this.#servers.set(url, server = new ServerBlocks(capacity));
    server.capacity = capacity;
    const blocks = server.blocks;
    let held = 0;
    while (held < hashes.length && blocks.has(hashes[held]!)) held++;
    // Blocks past the held prefix are new: a plain insert puts them at the young end. The held
    // prefix is moved there after them, so it is the youngest.
    for (let i = hashes.length - 1; i >= held; i--) blocks.set(hashes[i]!, true);
    for (let i = held - 1; i >= 0; i--) {
      const hash = hashes[i]!;
      blocks.delete(hash);
      blocks.set(hash, true);
    }
    if (blocks.size > capacity) {
      // Evict an eighth more than needed: walking a Map from its oldest entry costs a pass over
      // the holes earlier deletes left, so evicting in batches keeps a record cheap.
      let excess = blocks.size - capacity + (capacity >>> 3);
      for (const hash of blocks.keys()) {
        if (excess-- <= 0) break;
        blocks.delete(hash);
      }
    }
  }

  /**
   * Forgets everything a server held (it restarted, or left the fleet).
   *
   * @param url The server.
   */
  forget(url: string): void {
    this.#servers.delete(url);
  }

  /**
   * Forgets every server not in a list.
   *
   * @param urls The servers that stay.
   */
  retain(urls: ReadonlySet<string>): void {
    for (const url of this.#servers.keys()) if (!urls.has(url)) this.#servers.delete(url);
  }

  /** The servers with entries. */
  servers(): string[] {
    return [...this.#servers.keys()];
  }
}
