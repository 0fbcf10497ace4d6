/**
 * The one running spec and the single writer of the spec file. Admin changes and edits of the file
 * go through here, one at a time, so the file and the running config always agree: a change is
 * validated as a file would be, written atomically (temporary file, fsync, rename), and only then
 * put in force. A change that fails anywhere leaves both the file and the running config as they
 * were.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type LoadedSpec, type LoadSpecOptions, loadSpecText, SpecError } from "./load.ts";
import type { Spec } from "./schema.ts";
import { describeSpecChange } from "./spec_diff.ts";
import { type SpecFormat, specFormatOf, writeAtomic, writeBlocker } from "./spec_file.ts";
import { errorLine } from "../common/errors.ts";

const logger = getLogger(["llmstream", "config"]);

/** What the store puts specs in force on (the running gateway implements it). */
export interface SpecTarget {
  /** The spec in force. */
  readonly spec: Spec;
  /** The loaded spec in force. */
  readonly loaded: LoadedSpec;
  /**
   * Puts a new spec in force; with several workers, in every worker before the promise settles.
   *
   * @param loaded The validated spec.
   * @param text The text it was loaded from (workers load it again).
   */
  apply(loaded: LoadedSpec, text: string): void | Promise<void>;
}

/** The spec file holds an edit that does not validate, so an admin change would overwrite it. */
export class SpecConflictError extends Error {
  /** The file's problems, one line each. */
  readonly problems: readonly string[];

  /**
   * Creates the error.
   *
   * @param path The spec file.
   * @param problems Why the file's current content is refused.
   */
  constructor(path: string, problems: readonly string[]) {
    super(
      `The spec file "${path}" holds an edit that does not validate (${problems.join("; ")}); ` +
        "fix or revert it before changing models through the admin API",
    );
    this.name = "SpecConflictError";
    this.problems = problems;
  }
}

/** What a {@link SpecEdit} receives: the raw text in force and the running spec built from it. */
export interface SpecEditInput {
  /** The raw text in force (with `${VAR}` references as written). */
  readonly text: string;
  /** Its format. */
  readonly format: SpecFormat;
  /** The running spec, built from `text`. */
  readonly spec: Spec;
}

/** Turns the text in force into the new text; may throw to refuse the change. */
export type SpecEdit = (current: SpecEditInput) => string;

/** One outcome of a change, for listeners (tests wait on these). */
export interface SpecChange {
  /** `api` for admin changes, `file` for edits of the file. */
  readonly source: "api" | "file";
  /** `applied`, `rejected` (invalid, the old config stays) or `unchanged`. */
  readonly outcome: "applied" | "rejected" | "unchanged";
  /** Readable summary of what changed, or the problems. */
  readonly summary: string;
}

/** The result of {@link SpecStore.update}. */
export interface UpdateResult {
  /** The spec in force afterwards. */
  readonly loaded: LoadedSpec;
  /** Whether the text changed. */
  readonly changed: boolean;
  /** Whether the change is in the spec file. */
  readonly persisted: boolean;
  /** Why changes are not persisted, when they are not. */
  readonly note: string | undefined;
}

/** Options for {@link SpecStore.open}. */
export interface SpecStoreOptions {
  /** The spec file; without one (demo mode) changes live in memory. */
  path?: string;
  /** The raw text the gateway's running spec was loaded from. */
  text: string;
  /** Its format (default: from `path`, else YAML). */
  format?: SpecFormat;
  /** Write changes back to the file (default true). */
  writeBack?: boolean;
  /** Environment and strategy catalog used to validate every new text. */
  load?: LoadSpecOptions;
}

/** The running spec's single writer. */
export class SpecStore {
  readonly #gateway: SpecTarget;
  readonly #path: string | undefined;
  readonly #format: SpecFormat;
  readonly #load: LoadSpecOptions;
  readonly #memoryReason: string | undefined;
  readonly #listeners = new Set<(change: SpecChange) => void>();
  #text: string;
  #fileText: string | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(gateway: SpecTarget, options: SpecStoreOptions, memoryReason?: string) {
    this.#gateway = gateway;
    this.#path = options.path;
    this.#format = options.format ?? (options.path ? specFormatOf(options.path) : "yaml");
    this.#load = options.load ?? {};
    this.#memoryReason = memoryReason;
    this.#text = options.text;
    this.#fileText = options.path === undefined ? undefined : options.text;
  }

  /**
   * Creates the store for a running gateway and decides whether changes can be written back: not
   * without a file, with `writeBack: false`, for a file without write permission bits, or when a
   * temporary file cannot be made beside it (a read-only mount).
   *
   * @param gateway The gateway whose spec was loaded from `options.text`.
   * @param options The file, its text and whether to write back.
   * @returns The store.
   * @example
   * ```ts
   * const source = await readSpecFile("config.yaml");
   * const gateway = new Gateway(source.loaded);
   * const store = await SpecStore.open(gateway, { path: "config.yaml", text: source.text });
   * ```
   */
  static async open(gateway: SpecTarget, options: SpecStoreOptions): Promise<SpecStore> {
    let reason: string | undefined;
    if (options.path === undefined) reason = "there is no spec file (demo mode)";
    else if (options.writeBack === false) reason = "write-back is off (--no-write-back)";
    else reason = await writeBlocker(options.path);
    return new SpecStore(gateway, options, reason);
  }

  /** The spec file, or `undefined` in demo mode. */
  get path(): string | undefined {
    return this.#path;
  }

  /** The raw text in force. */
  get text(): string {
    return this.#text;
  }

  /** Why changes stay in memory, or `undefined` when they are written back. */
  get memoryReason(): string | undefined {
    return this.#memoryReason;
  }

  /**
   * Registers a listener for every change outcome.
   *
   * @param listener Receives each outcome.
   * @returns A function that unregisters it.
   */
  onChange(listener: (change: SpecChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Changes the spec: picks up pending edits of the file first, applies `edit` to the text in
   * force, validates the result fully, writes it back (when persistent) and puts it in force.
   *
   * @param edit Turns the current text into the new one; may throw to refuse.
   * @returns What happened.
   * @throws SpecError (invalid result), SpecConflictError, SpecWriteError, or what `edit` throws.
   */
  update(edit: SpecEdit): Promise<UpdateResult> {
    return this.#exclusive(async () => {
      if (this.#path !== undefined) {
        await this.#sync("api");
        if (this.#memoryReason === undefined && this.#fileText !== this.#text) {
          const problems = await this.#problemsOf(this.#fileText ?? "");
          throw new SpecConflictError(this.#path, problems);
        }
      }
      const text = edit({ text: this.#text, format: this.#format, spec: this.#gateway.spec });
      const note = this.#memoryReason === undefined
        ? undefined
        : `The change is in force but not saved: ${this.#memoryReason}; a restart loses it`;
      const result = { persisted: this.#memoryReason === undefined, note };
      if (text === this.#text) return { ...result, loaded: this.#gateway.loaded, changed: false };
      const loaded = await loadSpecText(text, this.#loadOptions());
      const old = this.#text;
      const path = this.#memoryReason === undefined ? this.#path : undefined;
      if (path !== undefined) {
        await writeAtomic(path, text);
        this.#fileText = text;
      }
      try {
        await this.#apply(loaded, text, "api");
      } catch (error) {
        // Keep the file equal to the running config: put the old text back.
        if (path !== undefined) await writeAtomic(path, old).then(() => this.#fileText = old);
        throw error;
      }
      return { ...result, loaded, changed: true };
    });
  }

  /**
   * Re-reads the spec file and applies it when its content differs from what was last seen and it
   * validates; an invalid edit is logged and the last good config stays in force.
   *
   * @returns The outcome.
   */
  reload(): Promise<SpecChange> {
    return this.#exclusive(() => this.#sync("file"));
  }

  /** Resolves when every queued change has finished. */
  async idle(): Promise<void> {
    await this.#tail;
  }

  async #sync(cause: "api" | "file"): Promise<SpecChange> {
    const path = this.#path;
    if (path === undefined) {
      return this.#emit({ source: "file", outcome: "unchanged", summary: "" });
    }
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (cause === "file") {
        logger.warn("Cannot read the spec file {path}: {error}; the running config stays", {
          path,
          error: errorLine(error),
        });
      }
      return this.#emit({ source: "file", outcome: "unchanged", summary: errorLine(error) });
    }
    if (text === this.#fileText || text === this.#text) {
      this.#fileText = text;
      const unchanged: SpecChange = { source: "file", outcome: "unchanged", summary: "" };
      return cause === "file" ? this.#emit(unchanged) : unchanged;
    }
    this.#fileText = text;
    let loaded: LoadedSpec;
    try {
      loaded = await loadSpecText(text, this.#loadOptions());
    } catch (error) {
      if (!(error instanceof SpecError)) throw error;
      logger.error(
        "Refused the edit of {path}; the last good config stays in force:\n  {problems}",
        {
          path,
          problems: error.problems.join("\n  "),
        },
      );
      return this.#emit({
        source: "file",
        outcome: "rejected",
        summary: error.problems.join("; "),
      });
    }
    return await this.#apply(loaded, text, "file");
  }

  async #apply(loaded: LoadedSpec, text: string, source: "api" | "file"): Promise<SpecChange> {
    const summary = describeSpecChange(this.#gateway.spec, loaded.spec);
    await this.#gateway.apply(loaded, text);
    this.#text = text;
    logger.info("Config changed by {source} ({path}): {summary}", {
      source: source === "api" ? "the admin API" : "an edit of the spec file",
      path: this.#path ?? "in memory",
      summary,
    });
    return this.#emit({ source, outcome: "applied", summary });
  }

  async #problemsOf(text: string): Promise<readonly string[]> {
    try {
      await loadSpecText(text, this.#loadOptions());
      return [];
    } catch (error) {
      return error instanceof SpecError ? error.problems : [errorLine(error)];
    }
  }

  #loadOptions() {
    return {
      ...this.#load,
      format: this.#format,
      ...(this.#path === undefined ? {} : { source: this.#path }),
    };
  }

  #emit(change: SpecChange): SpecChange {
    for (const listener of this.#listeners) listener(change);
    return change;
  }

  /** Runs `task` after every task queued before it (a promise-chain mutex). */
  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task, task);
    this.#tail = run.catch(() => {});
    return run;
  }
}
