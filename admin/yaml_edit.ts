/**
 * Edits a YAML document while keeping every byte of what the edit does not touch. Edits are made
 * with the `yaml` Document API; the result is printed by splicing only the touched entries into
 * the original text (a list item; else the map entry holding the list; else the whole model), and
 * checked to mean exactly what the Document API says. When splicing cannot be done safely (flow collections,
 * anchors, unusual layouts) the whole document is printed by the Document API, which still keeps
 * comments and key order.
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";
import {
  Document,
  isCollection,
  isMap,
  isNode,
  isScalar,
  isSeq,
  type Node,
  Pair,
  parseDocument,
  type ToStringOptions,
  YAMLMap,
  YAMLSeq,
} from "yaml";

type Path = readonly (string | number)[];

/** One edit, remembered for printing: a key of a map, an item of a list, or an append. */
type Touch =
  | { kind: "key"; container: Path; key: string }
  | { kind: "item"; container: Path; index: number }
  | { kind: "append"; container: Path };

interface TextEdit {
  start: number;
  end: number;
  insert: string;
  order: number;
}

/** A YAML document open for edits; `toString()` gives the edited text. */
export class YamlEditor {
  readonly #text: string;
  readonly #before: Document;
  readonly #doc: Document;
  readonly #options: ToStringOptions;
  readonly #touches: Touch[] = [];

  /**
   * Parses a YAML text.
   *
   * @param text The text.
   * @throws Error when it does not parse.
   */
  constructor(text: string) {
    this.#text = text;
    this.#before = parseDocument(text);
    this.#doc = parseDocument(text);
    if (this.#doc.errors.length > 0) throw new Error(this.#doc.errors[0]!.message);
    this.#options = styleOf(text, this.#before);
  }

  /**
   * Sets a value (a new node; a flow collection stays flow, a trailing comment stays).
   *
   * @param path Keys from the root; the last one is a map key.
   * @param value A plain value.
   */
  set(path: readonly [...Path, string], value: unknown): void {
    const old = this.#doc.getIn(path, true);
    const node = this.#doc.createNode(value);
    if (isCollection(old) && old.flow && isCollection(node)) node.flow = true;
    if (isNode(old) && isNode(node) && old.comment) node.comment = old.comment;
    this.#doc.setIn(path, node);
    this.#touches.push({ kind: "key", container: path.slice(0, -1), key: path.at(-1) as string });
  }

  /**
   * Removes a map key or a list item.
   *
   * @param path Keys from the root; the last one is a key or an index.
   */
  delete(path: Path): void {
    if (!this.#doc.deleteIn(path)) throw new Error(`nothing at "${path.join(".")}"`);
    const last = path.at(-1)!;
    const container = path.slice(0, -1);
    this.#touches.push(
      typeof last === "number"
        ? { kind: "item", container, index: last }
        : { kind: "key", container, key: last },
    );
  }

  /**
   * Appends an item to a list.
   *
   * @param path The list's path.
   * @param value A plain value.
   */
  append(path: Path, value: unknown): void {
    this.#doc.addIn(path, this.#doc.createNode(value));
    this.#touches.push({ kind: "append", container: path });
  }

  /** The edited text: spliced when that is safe, else printed whole. */
  toString(): string {
    const fine = this.#splice(this.#touches);
    if (fine !== undefined) return fine;
    const entry = this.#splice(this.#touches.map((touch): Touch => {
      const key = touch.container.at(-1);
      return touch.kind === "key" || typeof key !== "string"
        ? touch
        : { kind: "key", container: touch.container.slice(0, -1), key };
    }));
    if (entry !== undefined) return entry;
    const coarse = this.#splice(this.#touches.map((touch): Touch => {
      const model = touch.container[0] === "models" ? touch.container[1] : undefined;
      return model === undefined
        ? touch
        : { kind: "key", container: ["models"], key: String(model) };
    }));
    return coarse ?? this.#doc.toString(this.#options);
  }

  #splice(touches: readonly Touch[]): string | undefined {
    try {
      const edits: TextEdit[] = [];
      const seen = new Set<string>();
      for (const touch of touches) {
        const id = JSON.stringify(touch);
        if (seen.has(id)) continue;
        seen.add(id);
        const edit = this.#editFor(touch, edits.length);
        if (!edit) return undefined;
        edits.push(edit);
      }
      let out = this.#text;
      edits.sort((a, b) => b.start - a.start || b.order - a.order);
      for (const edit of edits) out = out.slice(0, edit.start) + edit.insert + out.slice(edit.end);
      const check = parseDocument(out);
      const same = check.errors.length === 0 && isDeepStrictEqual(check.toJS(), this.#doc.toJS());
      return same ? out : undefined;
    } catch {
      return undefined;
    }
  }

  #editFor(touch: Touch, order: number): TextEdit | undefined {
    const text = this.#text;
    const before = this.#before.getIn(touch.container, true);
    const after = this.#doc.getIn(touch.container, true);
    if (touch.kind === "key") {
      if (!isMap(before) || before.flow || !isMap(after) || before.items.length === 0) return;
      const column = columnOf(text, keyStart(before.items[0]!));
      const old = before.items.find((pair) => keyOf(pair) === touch.key);
      const next = after.items.find((pair) => keyOf(pair) === touch.key);
      const rendered = next ? this.#render(pairDocument(next), column) : "";
      if (old) {
        const start = keyStart(old);
        const end = endOf(text, start, old.value);
        if (start === undefined || end === undefined) return;
        return next
          ? { start, end, insert: rendered, order }
          : { start: deletionStart(text, start), end, insert: "", order };
      }
      if (!next) return;
      return this.#append(before.items.at(-1)!.value, column, rendered, order);
    }
    if (!isSeq(before) || before.flow || !isSeq(after) || before.items.length === 0) return;
    const first = before.items[0];
    const dash = isNode(first) ? dashBefore(text, first.range?.[0]) : undefined;
    if (dash === undefined) return;
    const column = columnOf(text, dash);
    if (touch.kind === "append") {
      const item = new YAMLSeq(this.#doc.schema);
      item.items.push(after.items.at(-1));
      const doc = new Document();
      doc.contents = item;
      return this.#append(before.items.at(-1), column, this.#render(doc, column), order);
    }
    const old = before.items[touch.index];
    const start = isNode(old) ? dashBefore(text, old.range?.[0]) : undefined;
    const end = start === undefined ? undefined : endOf(text, start, old);
    if (start === undefined || end === undefined) return;
    return { start: deletionStart(text, start), end, insert: "", order };
  }

  /** Inserts rendered lines after the last entry of a block collection. */
  #append(last: unknown, column: number, rendered: string, order: number): TextEdit | undefined {
    const text = this.#text;
    const lastStart = isNode(last) ? last.range?.[0] : undefined;
    const end = lastStart === undefined ? undefined : endOf(text, lastStart, last);
    if (end === undefined) return;
    const prefix = text[end - 1] === "\n" ? "" : "\n";
    return { start: end, end, insert: prefix + " ".repeat(column) + rendered, order };
  }

  /** Prints a small document, indenting every line after the first by `column`. */
  #render(doc: Document, column: number): string {
    const printed = doc.toString(this.#options);
    return printed.replace(/\n(?=[^\n])/g, `\n${" ".repeat(column)}`);
  }
}

/** A document holding one `key: value` pair, without the key's leading comment or blank line. */
function pairDocument(pair: Pair): Document {
  const key = isScalar(pair.key) ? pair.key.clone() : pair.key;
  if (isNode(key)) {
    key.commentBefore = null;
    key.spaceBefore = false;
  }
  const doc = new Document();
  const map = new YAMLMap(doc.schema);
  map.items.push(new Pair(key, pair.value));
  doc.contents = map;
  return doc;
}

function keyOf(pair: Pair): unknown {
  return isScalar(pair.key) ? pair.key.value : pair.key;
}

function keyStart(pair: Pair): number | undefined {
  return isScalar(pair.key) ? pair.key.range?.[0] : undefined;
}

function columnOf(text: string, offset: number | undefined): number {
  if (offset === undefined) throw new Error("no position");
  return offset - (text.lastIndexOf("\n", offset - 1) + 1);
}

/** The `-` of a block list item whose content starts at `start`, if on the same line. */
function dashBefore(text: string, start: number | undefined): number | undefined {
  if (start === undefined) return undefined;
  const lineStart = text.lastIndexOf("\n", start - 1) + 1;
  const match = /^( *)- +$/.exec(text.slice(lineStart, start));
  return match ? lineStart + match[1]!.length : undefined;
}

/** Where an entry starting at `start` ends: after the newline of its last line. */
function endOf(text: string, start: number | undefined, value: unknown): number | undefined {
  if (start === undefined) return undefined;
  let end = isNode(value) && value.range ? value.range[2] : undefined;
  if (end === undefined) end = text.indexOf("\n", start) + 1 || text.length;
  const lineStart = text.lastIndexOf("\n", end - 1) + 1;
  if (lineStart > start && text.slice(lineStart, end).trim() === "") return lineStart;
  return end === text.length || text[end - 1] === "\n" ? end : undefined;
}

/** A removed entry takes the comment lines right above it (the Document API's view) along. */
function deletionStart(text: string, start: number): number {
  let lineStart = text.lastIndexOf("\n", start - 1) + 1;
  const indent = text.slice(lineStart, start).replace(/-.*$/, "");
  while (lineStart > 0) {
    const previous = text.lastIndexOf("\n", lineStart - 2) + 1;
    if (!text.slice(previous, lineStart - 1).startsWith(`${indent}#`)) break;
    lineStart = previous;
  }
  return lineStart;
}

/** Printing options that match the file: indentation, list indentation, flow padding. */
function styleOf(text: string, doc: Document): ToStringOptions {
  let indent = 2;
  const models = doc.get("models", true) as Node | undefined;
  const first = isMap(models) && !models.flow ? models.items[0] : undefined;
  const start = first && keyStart(first);
  if (start !== undefined) indent = Math.max(1, columnOf(text, start));
  return {
    indent,
    indentSeq: !/^( *)[^\s#-][^\n]*:[ \t]*(#[^\n]*)?\n\1- /m.test(text),
    flowCollectionPadding: /[[{] [^\s\]}]/.test(text),
    lineWidth: 0,
  };
}
