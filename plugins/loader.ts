/**
 * Resolves a spec's plugin name or path to a plugin factory: a built-in, a file in a `plugins/`
 * folder (beside the program, in the working directory or beside the spec), or a path relative to
 * the spec file.
 *
 * @module
 */
import { FileCatalog } from "../common/file_catalog.ts";
import { BUILTIN_PLUGINS } from "./builtin.ts";
import type { PluginFactory } from "./types.ts";

/** Options for {@link PluginCatalog}. */
export interface PluginCatalogOptions {
  /** Extra folders to search, e.g. the spec file's `plugins/` folder. */
  dirs?: readonly string[];
}

/** Finds and imports plugin files, caching each module. */
export class PluginCatalog extends FileCatalog<PluginFactory> {
  /**
   * Creates a catalog searching the program's, the working directory's and the given folders.
   *
   * @param options Extra folders to search.
   */
  constructor(options: PluginCatalogOptions = {}) {
    super({
      kind: "plugin",
      folder: "plugins",
      builtins: BUILTIN_PLUGINS,
      ownDir: new URL(".", import.meta.url),
      exclude: new Set(["types", "builtin", "loader"]),
      ...(options.dirs ? { dirs: options.dirs } : {}),
    });
  }
}
