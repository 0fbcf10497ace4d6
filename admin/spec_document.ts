/**
 * Edits a spec's raw text the way a careful person would: only what changes is rewritten. YAML
 * keeps its comments, key order, quoting and the bytes of every untouched part (see
 * {@link YamlEditor}); JSON stays JSON with its indentation. `${VAR}` references stay as written,
 * since the raw document is edited, never the substituted values.
 *
 * @module
 */
import type { SpecFormat } from "../config/spec_file.ts";
import { YamlEditor } from "./yaml_edit.ts";

/** The raw document cannot be edited as asked (e.g. an alias where a list is expected). */
export class SpecEditError extends Error {
  /**
   * Creates the error.
   *
   * @param message What could not be edited.
   */
  constructor(message: string) {
    super(message);
    this.name = "SpecEditError";
  }
}

type Path = readonly (string | number)[];

/** A raw spec document open for model edits. */
export interface SpecDocument {
  /** Adds or replaces a whole model. */
  setModel(name: string, model: Readonly<Record<string, unknown>>): void;
  /** Sets one key of a model; `undefined` removes the key. */
  setModelKey(name: string, key: string, value: unknown): void;
  /** Removes a model. */
  deleteModel(name: string): void;
  /** Appends a server entry (a URL string or `{url, weight}`) to a model's list. */
  appendServer(name: string, entry: unknown): void;
  /** Removes the server at a position of a model's list. */
  deleteServer(name: string, index: number): void;
  /** The edited text. */
  toString(): string;
}

/**
 * Opens a raw spec text for editing.
 *
 * @param text The spec's raw text.
 * @param format `yaml` or `json`.
 * @returns The document; `toString()` gives the edited text.
 * @throws SpecEditError when the text does not parse.
 * @example
 * ```ts
 * const doc = parseSpecDocument(text, "yaml");
 * doc.appendServer("gpt-4", { url: "http://node5:8000", weight: 2 });
 * await Deno.writeTextFile("config.yaml", doc.toString());
 * ```
 */
export function parseSpecDocument(text: string, format: SpecFormat): SpecDocument {
  const raw = format === "json" ? new JsonRaw(text) : new YamlRaw(text);
  return {
    setModel: (name, model) => raw.set(["models", name], model, name),
    setModelKey: (name, key, value) =>
      value === undefined
        ? raw.delete(["models", name, key], name)
        : raw.set(["models", name, key], value, name),
    deleteModel: (name) => raw.delete(["models", name], name),
    appendServer: (name, entry) => raw.append(["models", name, "servers"], entry, name),
    deleteServer: (name, index) => raw.delete(["models", name, "servers", index], name),
    toString: () => raw.toString(),
  };
}

/** A JSON spec: edited as plain values, printed with the file's indentation. */
class JsonRaw {
  readonly #value: unknown;
  readonly #indent: string;
  readonly #finalNewline: boolean;

  constructor(text: string) {
    try {
      this.#value = JSON.parse(text);
    } catch (error) {
      throw new SpecEditError(`The spec file is not valid JSON: ${String(error)}`);
    }
    this.#indent = /\n([ \t]+)\S/.exec(text)?.[1] ?? "";
    this.#finalNewline = text.endsWith("\n");
  }

  set(path: Path, value: unknown, _model: string): void {
    const parent = this.#walk(path.slice(0, -1));
    define(parent, path.at(-1)!, structuredClone(value));
  }

  delete(path: Path, _model: string): void {
    const parent = this.#walk(path.slice(0, -1));
    const key = path.at(-1)!;
    if (Array.isArray(parent) && typeof key === "number") parent.splice(key, 1);
    else delete parent[key as string];
  }

  append(path: Path, value: unknown, _model: string): void {
    const list = this.#walk(path);
    if (!Array.isArray(list)) throw new SpecEditError(`"${path.join(".")}" is not a list`);
    list.push(structuredClone(value));
  }

  toString(): string {
    return JSON.stringify(this.#value, null, this.#indent) + (this.#finalNewline ? "\n" : "");
  }

  #walk(path: Path): Record<string | number, unknown> {
    let node: unknown = this.#value;
    for (const key of path) {
      if (node === null || typeof node !== "object") break;
      node = (node as Record<string | number, unknown>)[key];
    }
    if (node === null || typeof node !== "object") {
      throw new SpecEditError(`"${path.join(".")}" is not an object or a list in the spec file`);
    }
    return node as Record<string | number, unknown>;
  }
}

/** Sets an own property, so keys such as `__proto__` stay plain data. */
function define(target: Record<string | number, unknown>, key: string | number, value: unknown) {
  if (Array.isArray(target) && typeof key === "number") target[key] = value;
  else {Object.defineProperty(target, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });}
}

/** A YAML spec, edited through {@link YamlEditor}; failures name the model. */
class YamlRaw {
  readonly #editor: YamlEditor;

  constructor(text: string) {
    try {
      this.#editor = new YamlEditor(text);
    } catch (error) {
      throw new SpecEditError(`The spec file is not valid YAML: ${messageOf(error)}`);
    }
  }

  set(path: Path, value: unknown, model: string): void {
    this.#edit(model, () => this.#editor.set(path as [...Path, string], value));
  }

  delete(path: Path, model: string): void {
    this.#edit(model, () => this.#editor.delete(path));
  }

  append(path: Path, value: unknown, model: string): void {
    this.#edit(model, () => this.#editor.append(path, value));
  }

  toString(): string {
    return this.#editor.toString();
  }

  #edit(model: string, change: () => void): void {
    try {
      change();
    } catch (error) {
      throw new SpecEditError(`Cannot edit model "${model}" in the spec file: ${messageOf(error)}`);
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
