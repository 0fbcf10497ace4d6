/**
 * Worker entry of the routing benchmark: runs one strategy on one trace in its own thread (own
 * fleet, own gateway, own client), so the strategies of a trace can run side by side.
 *
 * Messages in: `{kind: "prepare", config}`, then `{kind: "run", trace, startAt}`. Messages out:
 * `{kind: "ready"}`, then `{kind: "done", summary}`; `{kind: "failed", message}` on any error.
 *
 * @module
 */
import { type PreparedRun, prepareRun, type RunConfig } from "./run.ts";
import type { RunSummary } from "./stats.ts";
import type { Trace } from "./traces.ts";

/** A message to the worker. */
export type ToWorker =
  | { kind: "prepare"; config: RunConfig }
  | { kind: "run"; trace: Trace; startAt: number };

/** A message from the worker. */
export type FromWorker =
  | { kind: "ready" }
  | { kind: "done"; summary: RunSummary }
  | { kind: "failed"; message: string };

/** The worker side of the message channel. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
}

listen(self as unknown as WorkerScope);

function listen(scope: WorkerScope): void {
  let prepared: PreparedRun | undefined;
  scope.onmessage = (event) => {
    handle(event.data).catch((error: unknown) => {
      const message = error instanceof Error ? error.stack ?? error.message : String(error);
      scope.postMessage({ kind: "failed", message });
    });
  };
  async function handle(message: ToWorker): Promise<void> {
    if (message.kind === "prepare") {
      prepared = await prepareRun(message.config);
      scope.postMessage({ kind: "ready" });
      return;
    }
    if (!prepared) throw new Error("Run before prepare");
    const summary = await prepared.run(message.trace, message.startAt);
    await prepared.close();
    scope.postMessage({ kind: "done", summary });
  }
}
