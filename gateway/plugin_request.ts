/**
 * The {@link PluginRequest} of one inference request. Its mutable parts (response headers, shared
 * state, the upstream `Headers`) are made on first use: most requests meet no plugin that needs
 * them, and each costs an allocation and, for headers, Web IDL conversions.
 *
 * @module
 */
import type { PluginRequest } from "../plugins/types.ts";
import type { HeaderPair, UpstreamHeaders } from "./headers.ts";
import type { ParsedBody } from "./request.ts";

/** What an {@link InferenceRequest} is made from. */
export interface InferenceRequestParts {
  /** The request id. */
  requestId: string;
  /** The client's request. */
  request: Request;
  /** The endpoint path. */
  path: string;
  /** The parsed body, once read. */
  parsed?: ParsedBody | undefined;
  /** Whether the body's model is configured. */
  known: boolean;
  /** When the request arrived (`performance.now()`). */
  started: number;
  /** The headers to send upstream. */
  upstreamHeaders: UpstreamHeaders;
}

/** An inference request as plugins see it. */
export class InferenceRequest implements PluginRequest {
  /** The request id. */
  readonly requestId: string;
  /** The client's request. */
  readonly request: Request;
  /** The endpoint path. */
  readonly path: string;
  /** The body's `model`. */
  readonly model: string;
  /** Whether `model` is configured. */
  readonly known: boolean;
  /** The parsed body. */
  readonly body: Readonly<Record<string, unknown>>;
  /** When the request arrived. */
  readonly started: number;
  readonly #upstream: UpstreamHeaders;
  #responseHeaders: Headers | undefined;
  #responsePairs: [string, string][] = [];
  #state: Map<string, unknown> | undefined;

  /**
   * Creates the request view.
   *
   * @param parts The request's parts.
   */
  constructor(parts: InferenceRequestParts) {
    this.requestId = parts.requestId;
    this.request = parts.request;
    this.path = parts.path;
    this.model = parts.parsed?.model ?? "";
    this.known = parts.known;
    this.body = parts.parsed?.json ?? {};
    this.started = parts.started;
    this.#upstream = parts.upstreamHeaders;
  }

  /** Headers sent upstream (plugins may change them). */
  get upstreamHeaders(): Headers {
    return this.#upstream.headers;
  }

  /** Headers added to the client's response. */
  get responseHeaders(): Headers {
    if (!this.#responseHeaders) {
      this.#responseHeaders = new Headers(this.#responsePairs);
      this.#responsePairs = [];
    }
    return this.#responseHeaders;
  }

  /**
   * Sets a header on the client's response without making the `Headers` object.
   *
   * @param name A lower-case name.
   * @param value The value.
   */
  setResponseHeader(name: string, value: string): void {
    if (this.#responseHeaders) return this.#responseHeaders.set(name, value);
    const index = this.#responsePairs.findIndex((pair) => pair[0] === name);
    if (index >= 0) this.#responsePairs[index] = [name, value];
    else this.#responsePairs.push([name, value]);
  }

  /** Values plugins share for this request. */
  get state(): Map<string, unknown> {
    this.#state ??= new Map();
    return this.#state;
  }

  /**
   * Removes a header from those sent upstream without making the `Headers` object.
   *
   * @param name A lower-case name.
   */
  deleteUpstreamHeader(name: string): void {
    this.#upstream.delete(name);
  }

  /**
   * The headers plugins added to the client's response.
   *
   * @returns Name and value pairs (none when no plugin touched them).
   */
  addedResponseHeaders(): HeaderPair[] {
    return this.#responseHeaders ? [...this.#responseHeaders] : this.#responsePairs;
  }
}
