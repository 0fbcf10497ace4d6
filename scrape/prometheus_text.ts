/**
 * A fast, forgiving parser for the Prometheus text exposition format 0.0.4.
 *
 * One pass over the lines, char codes only, no regular expressions. Malformed lines never throw:
 * they are skipped and counted, and the first one is described in {@link ParseResult.firstError}.
 * Lines accepted: `# HELP`, `# TYPE`, other `#` comments, blank lines, and samples
 * `name{label="value",...} value [timestamp]` with LF or CRLF endings. Label values may hold the
 * escapes `\\`, `\"` and `\n`; values may be floats, exponent forms, `NaN`, `+Inf` or `-Inf`.
 * Histogram and summary series (`_bucket`, `_sum`, `_count`, `_created`) come out as flat samples.
 *
 * @example
 * ```ts
 * import { parsePrometheusText } from "./prometheus_text.ts";
 *
 * const { samples } = parsePrometheusText('up{job="a"} 1\n');
 * samples[0]; // { name: "up", labels: { job: "a" }, value: 1 }
 * ```
 *
 * @module
 */

import {
  hashName,
  isBlank,
  parseTimestamp,
  parseValue,
  readLabelValue,
  scanLabelValue,
  scanName,
  skipBlanks,
} from "./prometheus_tokens.ts";

/** A metric type named by a `# TYPE` line (OpenMetrics names accepted too). */
export type MetricType =
  | "counter"
  | "gauge"
  | "histogram"
  | "summary"
  | "untyped"
  | "unknown"
  | "info"
  | "stateset"
  | "gaugehistogram";

/** One sample line. Samples without labels share one frozen empty `labels` object. */
export interface Sample {
  /** The series name as written, suffix included (e.g. `foo_bucket`). */
  readonly name: string;
  /** Label names to unescaped values. */
  readonly labels: Readonly<Record<string, string>>;
  /** The value; may be `NaN` or `±Infinity`. */
  readonly value: number;
  /** Milliseconds since the epoch, when the line carries one. */
  readonly timestamp?: number;
}

/** What {@link parsePrometheusText} returns. */
export interface ParseResult {
  /** Samples in input order. */
  readonly samples: Sample[];
  /** Metric family name to the type its `# TYPE` line gives. */
  readonly types: Map<string, MetricType>;
  /** Malformed lines skipped. */
  readonly errors: number;
  /** The first malformed line, described as `line N: reason`, when `errors > 0`. */
  readonly firstError?: string;
}

/** Options of {@link parsePrometheusText}. */
export interface ParseOptions {
  /**
   * Sample names to keep (exact, suffix included). Other sample lines are skipped after reading
   * only their name, without allocating, so they are neither validated nor counted as errors.
   * `# TYPE` entries are then kept only for names in the set. The set is indexed on first use
   * (cached per set object): do not change it afterwards.
   */
  readonly names?: ReadonlySet<string>;
}

// deno-fmt-ignore
const CR = 13, SPACE = 32, QUOTE = 34, HASH = 35, COMMA = 44, EQUALS = 61, OPEN_BRACE = 123,
  CLOSE_BRACE = 125;

const EMPTY_LABELS: Readonly<Record<string, string>> = Object.freeze({});

// deno-fmt-ignore
const TYPE_NAMES: readonly MetricType[] = [
  "counter", "gauge", "histogram", "summary", "untyped", "unknown", "info", "stateset",
  "gaugehistogram",
];
const TYPES: ReadonlyMap<string, MetricType> = new Map(TYPE_NAMES.map((t) => [t, t]));

/** State of one parse, shared by the line functions. */
interface State {
  readonly text: string;
  readonly names: ReadonlySet<string> | undefined;
  /** Hash of each wanted name to the names with that hash, when filtering. */
  readonly index: NameIndex | undefined;
  readonly samples: Sample[];
  readonly types: Map<string, MetricType>;
  /** The previous sample name, so runs of one name are not re-sliced. */
  lastName: string;
}

/**
 * Parses a Prometheus text exposition (format 0.0.4) into flat samples and a TYPE map.
 *
 * @param text The `/metrics` body.
 * @param options `names` keeps only the listed sample names (faster on large bodies).
 * @returns Samples, types, and the count (and first description) of malformed lines skipped.
 * @example
 * ```ts
 * const result = parsePrometheusText(body, { names: new Set(["vllm:num_requests_running"]) });
 * for (const s of result.samples) console.log(s.labels.model_name, s.value);
 * ```
 */
export function parsePrometheusText(text: string, options: ParseOptions = {}): ParseResult {
  const state: State = {
    text,
    names: options.names,
    index: options.names === undefined ? undefined : indexNames(options.names),
    samples: [],
    types: new Map(),
    lastName: "",
  };
  let errors = 0;
  let firstError: string | undefined;
  let lineNo = 0;
  let start = 0;
  const length = text.length;
  while (start < length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = length;
    lineNo++;
    const stop = end > start && text.charCodeAt(end - 1) === CR ? end - 1 : end;
    const i = skipBlanks(text, start, stop);
    if (i < stop) {
      const problem = text.charCodeAt(i) === HASH
        ? parseComment(state, i + 1, stop)
        : parseSample(state, i, stop);
      if (problem !== undefined) {
        errors++;
        firstError ??= `line ${lineNo}: ${problem}`;
      }
    }
    start = end + 1;
  }
  const base = { samples: state.samples, types: state.types, errors };
  return firstError === undefined ? base : { ...base, firstError };
}

/** Parses a `#` line from after the `#`; returns a reason when a HELP or TYPE line is malformed. */
function parseComment(state: State, i: number, stop: number): string | undefined {
  const { text } = state;
  i = skipBlanks(text, i, stop);
  const isHelp = text.startsWith("HELP", i);
  if (!isHelp && !text.startsWith("TYPE", i)) return undefined; // a plain comment
  i += 4;
  if (i < stop && !isBlank(text.charCodeAt(i))) return undefined; // e.g. "# HELPER"
  const nameStart = skipBlanks(text, i, stop);
  const nameEnd = scanName(text, nameStart, stop, true);
  if (nameEnd === nameStart) return `expected a metric name after "${isHelp ? "HELP" : "TYPE"}"`;
  if (isHelp) return undefined; // the docstring is free text and not kept
  if (nameEnd < stop && !isBlank(text.charCodeAt(nameEnd))) return "invalid metric name";
  const typeStart = skipBlanks(text, nameEnd, stop);
  i = typeStart;
  while (i < stop && !isBlank(text.charCodeAt(i))) i++;
  const type = TYPES.get(text.slice(typeStart, i));
  if (type === undefined || skipBlanks(text, i, stop) !== stop) {
    return `unknown metric type "${text.slice(typeStart, stop).trim()}"`;
  }
  const name = text.slice(nameStart, nameEnd);
  if (state.names === undefined || state.names.has(name)) state.types.set(name, type);
  return undefined;
}

/** Parses a sample line from its first non-blank; returns a reason when it is malformed. */
function parseSample(state: State, start: number, stop: number): string | undefined {
  const { text } = state;
  const nameEnd = scanName(text, start, stop, true);
  if (nameEnd === start) return "invalid metric name";
  const next = nameEnd < stop ? text.charCodeAt(nameEnd) : SPACE;
  if (next !== OPEN_BRACE && !isBlank(next)) return "invalid character in metric name";
  let name: string | undefined = state.lastName;
  if (state.index !== undefined) {
    name = lookUpName(state.index, text, start, nameEnd);
    if (name === undefined) return undefined;
  } else if (nameEnd - start !== name.length || !text.startsWith(name, start)) {
    name = state.lastName = text.slice(start, nameEnd);
  }
  let i = skipBlanks(text, nameEnd, stop);
  let labels = EMPTY_LABELS;
  if (i < stop && text.charCodeAt(i) === OPEN_BRACE) {
    const parsed: Record<string, string> = {};
    i = parseLabels(text, i + 1, stop, parsed);
    if (i < 0) return LABEL_PROBLEMS[-i - 1];
    labels = parsed;
    i = skipBlanks(text, i, stop);
  }
  if (i === stop) return "missing value";
  const valueStart = i;
  while (i < stop && !isBlank(text.charCodeAt(i))) i++;
  const value = parseValue(text, valueStart, i);
  if (value === undefined) return `invalid value "${text.slice(valueStart, i)}"`;
  i = skipBlanks(text, i, stop);
  if (i === stop) {
    state.samples.push({ name, labels, value });
    return undefined;
  }
  const tsStart = i;
  while (i < stop && !isBlank(text.charCodeAt(i))) i++;
  const timestamp = parseTimestamp(text, tsStart, i);
  if (timestamp === undefined) return `invalid timestamp "${text.slice(tsStart, i)}"`;
  if (skipBlanks(text, i, stop) !== stop) return "unexpected text after the timestamp";
  state.samples.push({ name, labels, value, timestamp });
  return undefined;
}

/** Wanted names by hash (see {@link hashName}); collisions share a bucket. */
type NameIndex = ReadonlyMap<number, readonly string[]>;

const INDEXES = new WeakMap<ReadonlySet<string>, NameIndex>();

function indexNames(names: ReadonlySet<string>): NameIndex {
  let index = INDEXES.get(names);
  if (index !== undefined) return index;
  const built = new Map<number, string[]>();
  for (const name of names) {
    const hash = hashName(name, 0, name.length);
    const bucket = built.get(hash);
    if (bucket === undefined) built.set(hash, [name]);
    else bucket.push(name);
  }
  INDEXES.set(names, index = built);
  return index;
}

/** Finds the wanted name spelled at `text[start, end)`, without allocating. */
function lookUpName(
  index: NameIndex,
  text: string,
  start: number,
  end: number,
): string | undefined {
  const bucket = index.get(hashName(text, start, end));
  if (bucket === undefined) return undefined;
  for (const name of bucket) {
    if (name.length === end - start && text.startsWith(name, start)) return name;
  }
  return undefined;
}

/** Reasons {@link parseLabels} reports, by negative code -1, -2, ... */
const LABEL_PROBLEMS = [
  "unterminated label set",
  "invalid label name",
  'expected "=" after a label name',
  "expected a quoted label value",
  "unterminated label value",
  "invalid escape in a label value",
  "duplicate label name",
  'expected "," or "}" after a label value',
] as const;

/**
 * Parses labels from after `{` through `}` into `out`.
 *
 * @returns The index after `}`, or a negative code into {@link LABEL_PROBLEMS}.
 */
function parseLabels(text: string, i: number, stop: number, out: Record<string, string>): number {
  for (;;) {
    i = skipBlanks(text, i, stop);
    if (i >= stop) return -1;
    if (text.charCodeAt(i) === CLOSE_BRACE) return i + 1;
    const nameEnd = scanName(text, i, stop, false);
    if (nameEnd === i) return -2;
    const labelName = text.slice(i, nameEnd);
    i = skipBlanks(text, nameEnd, stop);
    if (i >= stop || text.charCodeAt(i) !== EQUALS) return -3;
    i = skipBlanks(text, i + 1, stop);
    if (i >= stop || text.charCodeAt(i) !== QUOTE) return -4;
    const close = scanLabelValue(text, i + 1, stop);
    if (close < 0) return close === -1 ? -5 : -6;
    const value = readLabelValue(text, i + 1, close);
    if (Object.hasOwn(out, labelName)) return -7;
    if (labelName === "__proto__") {
      Object.defineProperty(out, labelName, { value, enumerable: true, writable: true });
    } else {
      out[labelName] = value;
    }
    i = skipBlanks(text, close + 1, stop);
    if (i >= stop) return -1;
    const c = text.charCodeAt(i);
    if (c === COMMA) i++;
    else if (c !== CLOSE_BRACE) return -8;
  }
}
