/**
 * Request logs: one structured line per request, when it has ended (streams included), with the
 * request id, model, server, status, time to first byte, duration, tokens, attempts and the
 * caller's key hash (never the key). 5xx answers log at warning, the rest at info.
 *
 * Enabled by default; option `tokens: false` stops it reading token usage. A spec with a `plugins` list enables it by naming `logging`. The line goes
 * through LogTape (`--log-format json` prints it as one JSON object).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Plugin, PluginOptions } from "./types.ts";

const logger = getLogger(["llmstream", "request"]);

/**
 * Creates the logging plugin.
 *
 * @param options `options.tokens: false` skips reading token usage from answers.
 * @returns The plugin.
 */
export default function createLogging(options: PluginOptions): Plugin {
  const tokens = options.options["tokens"] !== false;
  return {
    // Usage is read only while request lines are logged (5xx answers carry none worth logging).
    get wantsUsage() {
      return tokens && logger.isEnabledFor("info");
    },
    onResponse(request, outcome) {
      const level = outcome.status >= 500 ? "warning" : "info";
      if (!logger.isEnabledFor(level)) return;
      const model = outcome.model ?? (request.known ? request.model : null);
      const ttftMs = round(outcome.ttftMs);
      const durationMs = round(outcome.durationMs);
      // The record is built directly: LogTape would parse the message template on every call.
      logger.emit({
        timestamp: Date.now(),
        level,
        rawMessage: TEMPLATE,
        message: [
          "",
          request.request.method,
          " ",
          request.path,
          " model=",
          model,
          " server=",
          outcome.server,
          " status=",
          outcome.status,
          " outcome=",
          outcome.outcome,
          " attempts=",
          outcome.attempts,
          " ttft_ms=",
          ttftMs,
          " duration_ms=",
          durationMs,
          " id=",
          request.requestId,
          "",
        ],
        properties: {
          method: request.request.method,
          path: request.path,
          model,
          server: outcome.server,
          status: outcome.status,
          outcome: outcome.outcome,
          attempts: outcome.attempts,
          ttftMs,
          durationMs,
          overheadMs: round(outcome.overheadMs),
          requestId: request.requestId,
          promptTokens: outcome.usage?.prompt_tokens ?? null,
          completionTokens: outcome.usage?.completion_tokens ?? null,
          keyHash: request.state.get("auth.key_hash") ?? null,
          ...(outcome.errorCode ? { errorCode: outcome.errorCode } : {}),
          ...(outcome.retried.length > 0 ? { retried: outcome.retried.join("; ") } : {}),
        },
      });
    },
  };
}

/** The request line's template (its parts are laid out in `onResponse`). */
const TEMPLATE = "{method} {path} model={model} server={server} status={status} " +
  "outcome={outcome} attempts={attempts} ttft_ms={ttftMs} duration_ms={durationMs} id={requestId}";

function round(ms: number | undefined): number | null {
  return ms === undefined ? null : Math.round(ms * 10) / 10;
}
