/**
 * The messages between the control plane (the main isolate) and the data-plane workers. Every
 * message is structured-cloned by `postMessage`; shared buffers pass by reference.
 *
 * @module
 */
import type { SpecFormat } from "../config/spec_file.ts";
import type { FleetSlots } from "../fleet/shared_fleet.ts";
import type { ServerMetrics } from "../strategies/types.ts";

/** A spec as workers load it, with the fleet slots its servers and routes have. */
export interface SpecMessage {
  /** The raw text in force. */
  readonly text: string;
  /** Its format. */
  readonly format: SpecFormat;
  /** The spec file, for messages and relative strategy paths. */
  readonly source: string | undefined;
  /** `${VAR}` values to use instead of the environment (the demo fleet's URLs). */
  readonly env: readonly (readonly [string, string])[] | undefined;
  /** Slots of servers and routes in the shared fleet. */
  readonly slots: FleetSlots;
}

/** What the control plane scraped of one server, for workers' strategies and `/metrics`. */
export interface ServerUpdate {
  /** The server. */
  readonly url: string;
  /** Metrics by model name. */
  readonly metrics: readonly (readonly [string, ServerMetrics])[];
  /** When they were scraped. */
  readonly metricsAt: number;
  /** Failed scrapes so far. */
  readonly scrapeErrors: number;
}

/** Everything a worker needs to start. */
export interface WorkerInit {
  readonly type: "init";
  /** The worker's number, from 0. */
  readonly id: number;
  /** How many workers serve. */
  readonly count: number;
  /** Address and port to share. */
  readonly host: string;
  /** The port (0 for the first worker when the CLI asked for any). */
  readonly port: number;
  /** The shared fleet state. */
  readonly fleet: SharedArrayBuffer;
  /** Named buffers plugins share (`rate_limit`). */
  readonly memory: Readonly<Record<string, SharedArrayBuffer>>;
  /** The spec in force. */
  readonly spec: SpecMessage;
  /** The control plane's start time, seconds since the epoch. */
  readonly startedAt: number;
  /** Log settings. */
  readonly log: { readonly format: "text" | "json"; readonly level: LogLevel };
}

/** Log levels the CLI takes. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Messages to a worker. */
export type ToWorker =
  | WorkerInit
  | { readonly type: "apply"; readonly seq: number; readonly spec: SpecMessage }
  | { readonly type: "fleet"; readonly servers: readonly ServerUpdate[] }
  | { readonly type: "ask"; readonly id: number; readonly topic: string }
  | { readonly type: "gathered"; readonly id: number; readonly answers: readonly unknown[] }
  | { readonly type: "admin_answer"; readonly id: number; readonly answer: HttpAnswer }
  | { readonly type: "drain" };

/** An HTTP request or answer passed whole. */
export interface HttpAnswer {
  /** Status. */
  readonly status: number;
  /** Header pairs. */
  readonly headers: readonly (readonly [string, string])[];
  /** The body. */
  readonly body: Uint8Array<ArrayBuffer>;
}

/** An admin request a worker forwards. */
export interface ForwardedRequest {
  /** Method. */
  readonly method: string;
  /** Full URL. */
  readonly url: string;
  /** Header pairs. */
  readonly headers: readonly (readonly [string, string])[];
  /** The body (empty for none). */
  readonly body: Uint8Array<ArrayBuffer>;
  /** The client's address. */
  readonly remote: { readonly hostname: string; readonly port: number } | undefined;
}

/** Messages from a worker. */
export type FromWorker =
  | { readonly type: "listening"; readonly port: number }
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "applied"; readonly seq: number; readonly error?: string }
  | { readonly type: "gather"; readonly id: number; readonly topic: string }
  | {
    readonly type: "answer";
    readonly id: number;
    readonly served: boolean;
    readonly value: unknown;
  }
  | { readonly type: "admin"; readonly id: number; readonly request: ForwardedRequest }
  | { readonly type: "drained" };

/**
 * Turns an answer into a cloneable whole.
 *
 * @param response The response.
 * @returns Status, headers and body.
 */
export async function answerOf(response: Response): Promise<HttpAnswer> {
  return {
    status: response.status,
    headers: [...response.headers],
    body: new Uint8Array(await response.arrayBuffer()),
  };
}
