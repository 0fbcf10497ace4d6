/**
 * The spec file on disk: reading it once with its raw text, telling whether it can be written
 * back, and writing it atomically (a temporary file beside it, fsync, rename over it).
 *
 * @module
 */
import { type LoadedSpec, type LoadSpecOptions, loadSpecText, SpecError } from "./load.ts";
import { errorLine } from "../common/errors.ts";

/** How a spec file is written: JSON for `.json`, YAML otherwise. */
export type SpecFormat = "json" | "yaml";

/**
 * Tells a spec file's format from its name.
 *
 * @param path The file's path.
 * @returns `json` for `.json`, else `yaml`.
 */
export function specFormatOf(path: string): SpecFormat {
  return /\.json$/i.test(path) ? "json" : "yaml";
}

/** A spec as read: its raw text (with `${VAR}` untouched) and the loaded result. */
export interface SpecSource {
  /** The raw text. */
  readonly text: string;
  /** Its format. */
  readonly format: SpecFormat;
  /** The validated spec with resolved strategies. */
  readonly loaded: LoadedSpec;
}

/**
 * Reads a spec file once and loads it, keeping the raw text for {@link SpecStore}.
 *
 * @param path Path to a `.yaml`, `.yml` or `.json` file.
 * @param options Environment and strategy catalog, as for `loadSpecFile`.
 * @returns The text and the loaded spec.
 * @throws SpecError listing every problem.
 */
export async function readSpecFile(
  path: string,
  options: LoadSpecOptions = {},
): Promise<SpecSource> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new SpecError(`"${path}"`, [`cannot read the file: ${errorLine(error)}`]);
  }
  const format = specFormatOf(path);
  return { text, format, loaded: await loadSpecText(text, { ...options, format, source: path }) };
}

/** Writing the spec file failed; the old file and the running config stay. */
export class SpecWriteError extends Error {
  /**
   * Creates the error.
   *
   * @param path The spec file.
   * @param cause The underlying failure.
   */
  constructor(path: string, cause: unknown) {
    super(`Writing "${path}" failed: ${errorLine(cause)}`, { cause });
    this.name = "SpecWriteError";
  }
}

/** The temporary file a write goes through, beside the file it replaces. */
function tempPathOf(target: string): string {
  const cut = target.lastIndexOf("/");
  return `${target.slice(0, cut + 1)}.${target.slice(cut + 1)}.llmstream-${Deno.pid}.tmp`;
}

/**
 * Tells whether a file name is one of the store's temporary files.
 *
 * @param name A file name or path.
 * @returns True for `.<spec>.llmstream-<pid>.tmp`.
 */
export function isStoreTempFile(name: string): boolean {
  return /\.llmstream-\d+\.tmp$/.test(name);
}

/**
 * Tells why a spec file cannot be written back: no write permission bits, or no temporary file can
 * be made beside it (a read-only mount).
 *
 * @param path The spec file.
 * @returns The reason, or `undefined` when it can be written.
 */
export async function writeBlocker(path: string): Promise<string | undefined> {
  try {
    const target = await Deno.realPath(path);
    const info = await Deno.stat(target);
    if (info.mode !== null && (info.mode & 0o222) === 0) {
      return `the spec file "${path}" is read-only`;
    }
    const probe = tempPathOf(target);
    (await Deno.open(probe, { write: true, create: true, truncate: true })).close();
    await Deno.remove(probe);
    return undefined;
  } catch (error) {
    return `the spec file "${path}" cannot be written: ${errorLine(error)}`;
  }
}

/**
 * Writes a spec file atomically: a temporary file beside it (beside the target of a symlink),
 * fsync, rename over it, fsync the folder. Readers see the old file or the new one.
 *
 * @param path The spec file.
 * @param text The new text.
 * @throws SpecWriteError when any step fails; the old file is then untouched.
 */
export async function writeAtomic(path: string, text: string): Promise<void> {
  let target = path;
  try {
    target = await Deno.realPath(path);
  } catch {
    // A missing file is created where the path says.
  }
  const temp = tempPathOf(target);
  let created = false;
  try {
    const mode = (await Deno.stat(target).catch(() => undefined))?.mode ?? null;
    const file = await Deno.open(temp, { write: true, create: true, truncate: true });
    created = true;
    try {
      const bytes = new TextEncoder().encode(text);
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
      await file.sync();
    } finally {
      file.close();
    }
    if (mode !== null) await Deno.chmod(temp, mode & 0o7777);
    await Deno.rename(temp, target);
    created = false;
  } catch (error) {
    if (created) await Deno.remove(temp).catch(() => {});
    throw new SpecWriteError(path, error);
  }
  try {
    const folder = await Deno.open(target.slice(0, target.lastIndexOf("/") + 1) || ".");
    try {
      await folder.sync();
    } finally {
      folder.close();
    }
  } catch {
    // The rename is done; syncing the folder only makes it durable sooner.
  }
}
