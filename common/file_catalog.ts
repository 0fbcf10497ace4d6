/**
 * Finds the files a spec names by name or path: strategies and plugins. A name such as `fastest`
 * resolves to a built-in, or to `fastest.ts` (or `.js`) in one of the kind's folders: the folder
 * beside the program, the one in the working directory and the one beside the spec file. A value
 * containing `/` or ending in `.ts`/`.js` is a path, relative to the spec file's folder.
 *
 * Built-ins are imported statically so `deno compile` embeds them; a compiled binary cannot import
 * files it did not embed, so there a dropped-in file's text is imported as a data URL instead.
 *
 * @module
 */
import { errorLine } from "./errors.ts";

/** How to find one kind of file. */
export interface FileCatalogOptions<T> {
  /** The kind, for messages: `strategy` or `plugin`. */
  kind: string;
  /** The folder name: `strategies` or `plugins`. */
  folder: string;
  /** Built-ins by name. */
  builtins: ReadonlyMap<string, T>;
  /** The program's own folder of this kind (used when running from source). */
  ownDir: URL;
  /** File names (without extension) in the folders that are not of this kind. */
  exclude: ReadonlySet<string>;
  /** Extra folders to search, e.g. the spec file's. */
  dirs?: readonly string[];
}

/** Finds and imports files of one kind, caching each module. */
export class FileCatalog<T> {
  #options: FileCatalogOptions<T>;
  #dirs: string[];
  #cache = new Map<string, Promise<T>>();

  /**
   * Creates a catalog.
   *
   * @param options Kind, folder, built-ins and folders to search.
   */
  constructor(options: FileCatalogOptions<T>) {
    this.#options = options;
    const own = options.ownDir.protocol === "file:" && !isCompiled()
      ? [decodeURIComponent(options.ownDir.pathname)]
      : [];
    const dirs = [...own, `${Deno.cwd()}/${options.folder}`, ...(options.dirs ?? [])];
    this.#dirs = [...new Set(dirs.map((dir) => dir.replace(/\/+$/, "")))];
  }

  /**
   * Lists every name available: built-ins and files in the folders.
   *
   * @returns Sorted names.
   */
  names(): string[] {
    const names = new Set(this.#options.builtins.keys());
    for (const dir of this.#dirs) {
      try {
        for (const entry of Deno.readDirSync(dir)) {
          const match = /^([A-Za-z0-9_-]+)\.(ts|js)$/.exec(entry.name);
          if (!entry.isFile || !match) continue;
          const name = match[1]!;
          if (this.#options.exclude.has(name) || name.startsWith("_") || name.endsWith("_test")) {
            continue;
          }
          names.add(name);
        }
      } catch {
        // A missing or unreadable folder simply offers nothing.
      }
    }
    return [...names].sort();
  }

  /**
   * Resolves a name or path to the module's default export.
   *
   * @param ref The spec's value.
   * @param baseDir The spec file's folder, for relative paths.
   * @returns The default export (a factory function).
   * @throws Error with a message naming the value and what is available.
   */
  resolve(ref: string, baseDir: string): Promise<T> {
    const builtin = this.#options.builtins.get(ref);
    if (builtin) return Promise.resolve(builtin);
    const file = this.#find(ref, baseDir);
    if (file === undefined) {
      return Promise.reject(
        new Error(`unknown ${this.#options.kind} "${ref}"; available: ${this.names().join(", ")}`),
      );
    }
    let cached = this.#cache.get(file);
    if (!cached) {
      cached = importDefault<T>(file, this.#options.kind);
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

/** Whether this process is a `deno compile` binary, whose own files are embedded, not on disk. */
function isCompiled(): boolean {
  // `Deno.mainModule` is undefined inside a Worker.
  return (Deno.mainModule ?? "").includes("/deno-compile-");
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Imports a file and checks that its default export is a function. */
async function importDefault<T>(path: string, kind: string): Promise<T> {
  const url = new URL(`file://${path.startsWith("/") ? "" : Deno.cwd() + "/"}${path}`).href;
  let module: Record<string, unknown>;
  try {
    module = await import(url);
  } catch (error) {
    if (!isCompiled()) {
      throw new Error(`failed to load ${kind} file "${path}": ${errorLine(error)}`);
    }
    const text = await Deno.readTextFile(path);
    const type = path.endsWith(".js") ? "javascript" : "typescript";
    const encoded = btoa(String.fromCharCode(...new TextEncoder().encode(text)));
    module = await import(`data:application/${type};base64,${encoded}`);
  }
  const factory = module["default"];
  if (typeof factory !== "function") {
    throw new Error(`${kind} file "${path}" has no default export function create(options)`);
  }
  return factory as T;
}
