/**
 * Token scanners of the Prometheus text parser ({@link ./prometheus_text.ts}): blanks, names,
 * values, timestamps and label-value unescaping. Each works on char codes of `text` between
 * indices, allocating only the strings it returns.
 *
 * @module
 */

// deno-fmt-ignore
const TAB = 9, SPACE = 32, QUOTE = 34, PLUS = 43, MINUS = 45, DOT = 46, ZERO = 48, NINE = 57,
  COLON = 58, UPPER_E = 69, BACKSLASH = 92, UNDERSCORE = 95, LOWER_E = 101, LOWER_N = 110;

/**
 * Tells whether a char code is a blank (space or tab) of the format.
 *
 * @param c A char code.
 * @returns `true` for space and tab.
 */
export function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
}

/**
 * Skips blanks.
 *
 * @param text The text.
 * @param i Where to start.
 * @param stop The end of the line (exclusive).
 * @returns The index of the first non-blank, or `stop`.
 */
export function skipBlanks(text: string, i: number, stop: number): number {
  while (i < stop && isBlank(text.charCodeAt(i))) i++;
  return i;
}

/**
 * Skips a metric name `[a-zA-Z_:][a-zA-Z0-9_:]*`, or with `colon` false a label name
 * `[a-zA-Z_][a-zA-Z0-9_]*`, stopping at the first other character.
 *
 * @param text The text.
 * @param i Where the name starts.
 * @param stop The end of the line (exclusive).
 * @param colon Whether `:` is allowed (metric names).
 * @returns The index after the name; `i` itself when no name starts there (or a digit does).
 */
export function scanName(text: string, i: number, stop: number, colon: boolean): number {
  const allowed = colon ? METRIC_CHAR : LABEL_CHAR;
  if (i < stop && text.charCodeAt(i) >= ZERO && text.charCodeAt(i) <= NINE) return i;
  while (i < stop) {
    const c = text.charCodeAt(i);
    if (c >= 128 || allowed[c] === 0) break;
    i++;
  }
  return i;
}

/** 1 for each ASCII char allowed in a label name (after the first): `[a-zA-Z0-9_]`. */
const LABEL_CHAR = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const folded = c | 0x20; // ASCII upper case to lower case
  if ((folded >= 97 && folded <= 122) || (c >= ZERO && c <= NINE) || c === UNDERSCORE) {
    LABEL_CHAR[c] = 1;
  }
}
/** As {@link LABEL_CHAR}, plus `:` for metric names. */
const METRIC_CHAR = LABEL_CHAR.slice();
METRIC_CHAR[COLON] = 1;

/**
 * Hashes `text[start, end)` (31-based, 30 bits), so names can be looked up without slicing.
 *
 * @param text The text.
 * @param start Where the name starts.
 * @param end Where it ends (exclusive).
 * @returns A 32-bit integer hash.
 */
export function hashName(text: string, start: number, end: number): number {
  let hash = 0;
  for (let i = start; i < end; i++) hash = (Math.imul(hash, 31) + text.charCodeAt(i)) | 0;
  return hash & 0x3fffffff; // a small integer (Smi) key, fast in a Map
}

/**
 * Parses a sample value: decimals, exponent forms, `NaN`, `+Inf`, `-Inf` (case-insensitive, as Go's
 * `ParseFloat`). Plain decimals of up to 15 digits are computed without allocating a string; the
 * result is the same as `Number()` (both operands are exact doubles, so one division rounds right).
 *
 * @param text The text.
 * @param start Where the token starts.
 * @param end Where it ends (exclusive).
 * @returns The value, or `undefined` when the token is no number.
 */
export function parseValue(text: string, start: number, end: number): number | undefined {
  let mantissa = 0;
  let scale = 1;
  let digits = 0;
  let dot = false;
  let simple = true;
  let plain = true;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= ZERO && c <= NINE) {
      mantissa = mantissa * 10 + (c - ZERO);
      if (dot) scale *= 10;
      digits++;
    } else if (c === DOT && !dot) {
      dot = true;
    } else {
      simple = false;
      if (c !== DOT && c !== PLUS && c !== MINUS && c !== LOWER_E && c !== UPPER_E) plain = false;
    }
  }
  if (simple && digits > 0 && digits <= 15) return mantissa / scale;
  if (plain) {
    const value = Number(text.slice(start, end));
    return Number.isNaN(value) ? undefined : value;
  }
  switch (text.slice(start, end).toLowerCase()) {
    case "nan":
      return NaN;
    case "inf":
    case "+inf":
    case "infinity":
    case "+infinity":
      return Infinity;
    case "-inf":
    case "-infinity":
      return -Infinity;
    default:
      return undefined;
  }
}

/**
 * Parses a timestamp: an integer number of milliseconds, optionally signed.
 *
 * @param text The text.
 * @param start Where the token starts.
 * @param end Where it ends (exclusive).
 * @returns The timestamp, or `undefined` when the token is no integer.
 */
export function parseTimestamp(text: string, start: number, end: number): number | undefined {
  let i = start;
  const sign = text.charCodeAt(i);
  if (sign === MINUS || sign === PLUS) i++;
  if (i === end) return undefined;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < ZERO || c > NINE) return undefined;
  }
  return Number(text.slice(start, end));
}

/**
 * Finds the closing quote of a label value and checks its escapes (`\\`, `\"`, `\n` only).
 *
 * @param text The text.
 * @param i The index after the opening quote.
 * @param stop The end of the line (exclusive).
 * @returns The index of the closing quote; `-1` when unterminated, `-2` on an invalid escape.
 */
export function scanLabelValue(text: string, i: number, stop: number): number {
  while (i < stop) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) return i;
    if (c === BACKSLASH) {
      const e = i + 1 < stop ? text.charCodeAt(i + 1) : 0;
      if (e !== BACKSLASH && e !== QUOTE && e !== LOWER_N) return -2;
      i += 2;
    } else {
      i++;
    }
  }
  return -1;
}

/**
 * Reads a label value, unescaping `\\`, `\"` and `\n` (validated by {@link scanLabelValue}).
 *
 * @param text The text.
 * @param start The index after the opening quote.
 * @param end The index of the closing quote.
 * @returns The value.
 */
export function readLabelValue(text: string, start: number, end: number): string {
  let out = "";
  let from = start;
  for (let i = start; i < end; i++) {
    if (text.charCodeAt(i) !== BACKSLASH) continue;
    const e = text.charCodeAt(i + 1);
    out += text.slice(from, i) + (e === LOWER_N ? "\n" : e === QUOTE ? '"' : "\\");
    i++;
    from = i + 1;
  }
  return out + text.slice(from, end);
}
