/**
 * Resolves a spec's strategy name or path to a strategy factory: a built-in, a file in a
 * `strategies/` folder (beside the program, in the working directory or beside the spec), or a
 * path relative to the spec file.
 *
 * @module
 */
import { FileCatalog } from "../common/file_catalog.ts";
import { BUILTIN_STRATEGIES } from "./builtin.ts";
import type { StrategyFactory } from "./types.ts";

/** Options for {@link StrategyCatalog}. */
export interface StrategyCatalogOptions {
  /** Extra folders to search, e.g. the spec file's `strategies/` folder. */
  dirs?: readonly string[];
}

/** Finds and imports strategy files, caching each module. */
export class StrategyCatalog extends FileCatalog<StrategyFactory> {
  /**
   * Creates a catalog searching the program's, the working directory's and the given folders.
   *
   * @param options Extra folders to search.
   */
  constructor(options: StrategyCatalogOptions = {}) {
    super({
      kind: "strategy",
      folder: "strategies",
      builtins: BUILTIN_STRATEGIES,
      ownDir: new URL(".", import.meta.url),
      exclude: new Set(["types", "builtin", "loader"]),
      ...(options.dirs ? { dirs: options.dirs } : {}),
    });
  }
}
