/**
 * A LogTape sink that writes behind: each record is formatted at once, and lines that arrive while
 * a write is in flight go out together in the next write. Under load that is one write for many
 * request lines instead of one each (LogTape's stream sink awaits a write per record); when idle
 * a line is written at once. Nothing is dropped unless standard output stops taking lines and
 * {@link MAX_PENDING_BYTES} pile up; then lines are counted, dropped, and the count is reported
 * once output moves again.
 *
 * @module
 */
import type { LogRecord, Sink, TextFormatter } from "@logtape/logtape";

/** Bytes of lines held while standard output is busy before new ones are dropped. */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** Where the sink writes (`Deno.stdout` by default). */
export interface LineWriter {
  /**
   * Writes some of the bytes.
   *
   * @param bytes The bytes.
   * @returns How many were written.
   */
  write(bytes: Uint8Array): Promise<number>;
}

/** Options for {@link writeBehindSink}. */
export interface WriteBehindOptions {
  /** Formats a record as one line (with its newline). */
  formatter: TextFormatter;
  /** The output (default `Deno.stdout`). */
  writer?: LineWriter;
  /** Bytes held while the output is busy (default {@link MAX_PENDING_BYTES}). */
  maxPendingBytes?: number;
}

/** A sink that can be flushed and disposed. */
export type WriteBehindSink = Sink & AsyncDisposable & {
  /** Resolves once every line taken so far is written. */
  flush(): Promise<void>;
};

const encoder = new TextEncoder();

/**
 * Creates a write-behind sink.
 *
 * @param options The formatter and the output.
 * @returns The sink.
 * @example
 * ```ts
 * const sink = writeBehindSink({ formatter: jsonLinesFormatter });
 * await configure({ sinks: { stdout: sink }, loggers: [...] });
 * ```
 */
export function writeBehindSink(options: WriteBehindOptions): WriteBehindSink {
  const writer = options.writer ?? Deno.stdout;
  const maxPending = options.maxPendingBytes ?? MAX_PENDING_BYTES;
  let pending: string[] = [];
  let pendingBytes = 0;
  let dropped = 0;
  let writing: Promise<void> | undefined;

  async function drain(): Promise<void> {
    while (pending.length > 0) {
      let text = pending.join("");
      pending = [];
      pendingBytes = 0;
      if (dropped > 0) {
        text += `Dropped ${dropped} log lines: standard output did not keep up\n`;
        dropped = 0;
      }
      const bytes = encoder.encode(text);
      let offset = 0;
      try {
        while (offset < bytes.length) offset += await writer.write(bytes.subarray(offset));
      } catch {
        // Standard output is gone (closed pipe): there is nowhere to report it.
        pending = [];
        pendingBytes = 0;
      }
    }
    writing = undefined;
  }

  const sink = ((record: LogRecord) => {
    const line = options.formatter(record);
    if (pendingBytes + line.length > maxPending) {
      dropped++;
      return;
    }
    pending.push(line);
    pendingBytes += line.length;
    writing ??= drain();
  }) as WriteBehindSink;
  sink.flush = async () => {
    while (writing) await writing;
  };
  sink[Symbol.asyncDispose] = () => sink.flush();
  return sink;
}
