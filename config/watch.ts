/**
 * Watches the spec file's folder and reloads the spec when the file changes: in-place writes,
 * editors' atomic saves (a rename over the file), `git checkout`, and kubectl-style symlink swaps of
 * a mounted ConfigMap (`..data` -> a timestamped folder). Events are collected and debounced; the
 * store then compares the content with what it last saw, so the gateway's own write-backs and
 * unrelated events reload nothing.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { isStoreTempFile } from "./spec_file.ts";
import type { SpecStore } from "./store.ts";

const logger = getLogger(["llmstream", "config"]);

/** Options for {@link SpecWatcher}. */
export interface SpecWatcherOptions {
  /** Quiet time after the last event before the file is read, in milliseconds (default 150). */
  debounceMs?: number;
}

/**
 * Reloads a store's spec file whenever its folder says the file may have changed.
 *
 * @example
 * ```ts
 * const watcher = new SpecWatcher(store);
 * // ... on shutdown:
 * await watcher.close();
 * ```
 */
export class SpecWatcher {
  readonly #store: SpecStore;
  readonly #name: string;
  readonly #debounceMs: number;
  readonly #watcher: Deno.FsWatcher;
  readonly #loop: Promise<void>;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #reloading: Promise<void> = Promise.resolve();
  #closed = false;

  /**
   * Starts watching the folder of the store's spec file.
   *
   * @param store The store whose file is watched; it must have a path.
   * @param options Debounce time.
   */
  constructor(store: SpecStore, options: SpecWatcherOptions = {}) {
    const path = store.path;
    if (path === undefined) throw new Error("The spec store has no file to watch");
    this.#store = store;
    const cut = path.lastIndexOf("/");
    this.#name = path.slice(cut + 1);
    this.#debounceMs = options.debounceMs ?? 150;
    this.#watcher = Deno.watchFs(cut < 0 ? "." : path.slice(0, cut) || "/", { recursive: false });
    this.#loop = this.#run();
  }

  /** Stops watching and waits for a reload in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher.close();
    await this.#loop;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#reloading;
  }

  async #run(): Promise<void> {
    try {
      for await (const event of this.#watcher) {
        if (event.paths.some((path) => this.#concerns(path))) this.#schedule();
      }
    } catch (error) {
      if (!this.#closed) logger.error("Watching the spec file stopped: {error}", { error });
    }
  }

  /** The spec itself, or a kubectl `..data` link (or its `..data_tmp`, timestamped folders). */
  #concerns(path: string): boolean {
    const name = path.slice(path.lastIndexOf("/") + 1);
    return !isStoreTempFile(name) && (name === this.#name || name.startsWith(".."));
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#reloading = this.#reloading.then(async () => {
        if (this.#closed) return;
        try {
          await this.#store.reload();
        } catch (error) {
          logger.error("Reloading the spec failed: {error}", { error });
        }
      });
    }, this.#debounceMs);
  }
}
