/**
 * Logging set-up: LogTape with one sink on standard output, as JSON lines or readable text.
 *
 * Library code only calls `getLogger(["llmstream", ...])`; nothing is printed until the program
 * calls {@link setupLogging}, so tests and embedders stay quiet.
 *
 * @module
 */
import {
  configure,
  dispose,
  getTextFormatter,
  jsonLinesFormatter,
  type LogLevel,
  reset,
} from "@logtape/logtape";
import { writeBehindSink } from "./log_sink.ts";

/** Options for {@link setupLogging}. */
export interface LoggingOptions {
  /** Lowest level printed (default `info`). */
  level?: LogLevel;
  /** `text` (readable lines, default) or `json` (one JSON object a line). */
  format?: "text" | "json";
}

/**
 * Configures logging for the whole process.
 *
 * @param options Level and format.
 * @example
 * ```ts
 * await setupLogging({ level: "info", format: "json" });
 * ```
 */
export async function setupLogging(options: LoggingOptions = {}): Promise<void> {
  await reset();
  const formatter = options.format === "json" ? jsonLinesFormatter : getTextFormatter({
    timestamp: "date-time-timezone",
    category: ".",
    value: plainValue,
  });
  await configure({
    reset: true,
    sinks: { stdout: writeBehindSink({ formatter }) },
    loggers: [
      { category: ["llmstream"], lowestLevel: options.level ?? "info", sinks: ["stdout"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stdout"] },
    ],
  });
}

/** Writes out the lines still pending and closes the sinks (before the process exits). */
export async function closeLogging(): Promise<void> {
  await dispose();
}

/** Renders a logged value for text lines: strings as they are, anything else as JSON. */
function plainValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
