/**
 * Resolves a spec's strategy name or path to a strategy factory.
 *
 * A name such as `fastest` resolves to a built-in strategy, or to `fastest.ts` (or `.js`) in one
 * of the strategy folders: the `strategies/` folder beside the program, the one in the working
 * directory and the one beside the spec file. A value containing `/` or ending in `.ts`/`.js` is a
 * path, relative to the spec file's folder.
 *
 * @module
 */
import { BUILTIN_STRATEGIES } from "./builtin.ts";
import type { StrategyFactory } from "./types.ts";

/** Files in a strategy folder that are not strategies (nor are `_*` helpers and `*_test`). */
const NOT_STRATEGIES = new Set(["types", "builtin", "loader"]);

/** Options for {@link StrategyCatalog}. */
export interface StrategyCatalogOptions {
  /** Extra folders to search, e.g. the spec file's `strategies/` folder. */
  dirs?: readonly string[];
}

/** Finds and imports strategy files, caching each module. */
export class StrategyCatalog {
  #dirs: string[];
  #cache = new Map<string, Promise<StrategyFactory>>();

  /**
   * Creates a catalog searching the program's, the working directory's and the given folders.
   *
   * @param options Extra folders to search.
   */
  constructor(options: StrategyCatalogOptions = {}) {
    const dirs = [...defaultDirs(), ...(options.dirs ?? [])].map((dir) => dir.replace(/\/+$/, ""));
    this.#dirs = [...new Set(dirs)];
  }

  /**
   * Lists every strategy name available: built-ins and files in the strategy folders.
   *
   * @returns Sorted names.
   */
  names(): string[] {
    const names = new Set(BUILTIN_STRATEGIES.keys());
    for (const dir of this.#dirs) {
      try {
        for (const entry of Deno.readDirSync(dir)) {
          const match = /^([A-Za-z0-9_-]+)\.(ts|js)$/.exec(entry.name);
          if (!entry.isFile || !match) continue;
          const name = match[1]!;
          if (!NOT_STRATEGIES.has(name) && !name.startsWith("_") && !name.endsWith("_test")) {
            names.add(name);
          }
        }
      } catch {
        // A missing or unreadable folder simply offers no strategies.
      }
    }
    return [...names].sort();
  }

  /**
   * Resolves a strategy name or path to its factory.
   *
   * @param ref The spec's `strategy` value.
   * @param baseDir The spec file's folder, for relative paths.
   * @returns The factory.
   * @throws Error with a message naming the value and the available strategies.
   */
  resolve(ref: string, baseDir: string): Promise<StrategyFactory> {
    const builtin = BUILTIN_STRATEGIES.get(ref);
    if (builtin) return Promise.resolve(builtin);
    const file = this.#find(ref, baseDir);
    if (file === undefined) {
      return Promise.reject(
        new Error(`unknown strategy "${ref}"; available: ${this.names().join(", ")}`),
      );
    }
    let cached = this.#cache.get(file);
    if (!cached) {
      cached = importFactory(file);
      this.#cache.set(file, cached);
      cached.catch(() => this.#cache.delete(file));
    }
    return cached;
  }

  #find(ref: string, baseDir: string): string | undefined {
    const isPath = ref.includes("/") || /\.(ts|js)$/.test(ref);
    const candidates = isPath
      ? [ref.startsWith("/") ? ref : `${baseDir}/${ref}`]
      : /^[A-Za-z0-9_-]+$/.test(ref)
      ? this.#dirs.flatMap((dir) => [`${dir}/${ref}.ts`, `${dir}/${ref}.js`])
      : [];
    return candidates.find(isFile);
  }
}

/** The program's own `strategies/` folder (when run from source) and the working directory's. */
function defaultDirs(): string[] {
  const dirs: string[] = [];
  const own = new URL(".", import.meta.url);
  if (own.protocol === "file:" && !isCompiled()) dirs.push(decodeURIComponent(own.pathname));
  dirs.push(`${Deno.cwd()}/strategies`);
  return dirs;
}

/** Whether this process is a `deno compile` binary, whose own files are embedded, not on disk. */
function isCompiled(): boolean {
  return Deno.mainModule.includes("/deno-compile-");
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Imports a strategy file and checks its default export. A compiled binary cannot import files it
 * did not embed, so there the file's text is imported as a data URL instead.
 */
async function importFactory(path: string): Promise<StrategyFactory> {
  const url = new URL(`file://${path.startsWith("/") ? "" : Deno.cwd() + "/"}${path}`).href;
  let module: Record<string, unknown>;
  try {
    module = await import(url);
  } catch (error) {
    if (!isCompiled()) throw new Error(`failed to load strategy file "${path}": ${message(error)}`);
    const text = await Deno.readTextFile(path);
    const type = path.endsWith(".js") ? "javascript" : "typescript";
    const encoded = btoa(String.fromCharCode(...new TextEncoder().encode(text)));
    module = await import(`data:application/${type};base64,${encoded}`);
  }
  const factory = module["default"];
  if (typeof factory !== "function") {
    throw new Error(`strategy file "${path}" has no default export function create(options)`);
  }
  return factory as StrategyFactory;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0]! : String(error);
}
