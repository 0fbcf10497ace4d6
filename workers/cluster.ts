/**
 * The control plane's side of the workers: starts N data-plane workers on one port, puts every
 * spec change in force in all of them before it counts as applied (an acknowledged round trip),
 * pushes scraped metrics to them, answers the admin calls and gathers they forward, and drains
 * them on shutdown. Shared counters (in-flight, slots, breakers, health, rate limits) need no
 * messages: they live in shared memory.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { LoadedSpec } from "../config/load.ts";
import type { Spec } from "../config/schema.ts";
import type { SpecTarget } from "../config/store.ts";
import type { Gateway } from "../gateway/gateway.ts";
import { handleRequest, type RouteHandler } from "../gateway/server.ts";
import type { SharedFleet } from "../fleet/shared_fleet.ts";
import { SHARED_STORE_BYTES } from "../plugins/_rate_limit_memory.ts";
import {
  answerOf,
  type ForwardedRequest,
  type FromWorker,
  type LogLevel,
  type ServerUpdate,
  type SpecMessage,
  type ToWorker,
} from "./protocol.ts";

const logger = getLogger(["llmstream", "workers"]);
/** Longest wait for a worker to apply a spec or answer a gather. */
const ANSWER_MS = 10_000;

/** Options for {@link Cluster.start}. */
export interface ClusterOptions {
  /** Workers to start (2 or more). */
  count: number;
  /** Address to listen on. */
  host: string;
  /** Port (0: the first worker picks one, the others share it). */
  port: number;
  /** The spec's text and how to load it. */
  spec: Omit<SpecMessage, "slots">;
  /** Log settings for the workers. */
  log: { format: "text" | "json"; level: LogLevel };
}

interface Member {
  readonly worker: Worker;
  alive: boolean;
}

interface Waiting {
  readonly answers: unknown[];
  left: number;
  readonly done: () => void;
}

/** The running workers. */
export class Cluster implements SpecTarget {
  readonly #gateway: Gateway;
  readonly #fleet: SharedFleet;
  readonly #options: ClusterOptions;
  readonly #members: Member[] = [];
  readonly #waits = new Map<number, Waiting>();
  #next = 1;
  #spec: Omit<SpecMessage, "slots">;
  #admin: RouteHandler | undefined;
  #pushing = false;
  #port = 0;

  private constructor(gateway: Gateway, fleet: SharedFleet, options: ClusterOptions) {
    this.#gateway = gateway;
    this.#fleet = fleet;
    this.#options = options;
    this.#spec = options.spec;
  }

  /**
   * Starts the workers: the first on the asked port, then the others on the port it got.
   *
   * @param gateway The control plane's gateway, over the shared fleet it leads.
   * @param options Count, address, spec and logging.
   * @returns The cluster once every worker listens.
   * @throws Error when a worker cannot start (bad port, plugin failure).
   */
  static async start(gateway: Gateway, options: ClusterOptions): Promise<Cluster> {
    const fleet = gateway.pool.shared;
    if (!fleet) throw new Error("The control plane's gateway needs a shared fleet");
    const cluster = new Cluster(gateway, fleet, options);
    const memory = { rate_limit: new SharedArrayBuffer(SHARED_STORE_BYTES) };
    cluster.#port = await cluster.#spawn(0, options.port, memory);
    const rest = Array.from({ length: options.count - 1 }, (_, i) => i + 1);
    try {
      await Promise.all(rest.map((id) => cluster.#spawn(id, cluster.#port, memory)));
    } catch (error) {
      cluster.terminate();
      throw error;
    }
    return cluster;
  }

  /** The port every worker listens on. */
  get port(): number {
    return this.#port;
  }

  /** Workers started. */
  get count(): number {
    return this.#members.length;
  }

  /** The spec in force. */
  get spec(): Spec {
    return this.#gateway.spec;
  }

  /** The loaded spec in force. */
  get loaded(): LoadedSpec {
    return this.#gateway.loaded;
  }

  /**
   * Puts a spec in force in the control plane and then in every worker; resolves when each has
   * acknowledged it.
   *
   * @param loaded The validated spec.
   * @param text Its text, which the workers load.
   */
  async apply(loaded: LoadedSpec, text: string): Promise<void> {
    this.#gateway.apply(loaded);
    this.#spec = { ...this.#spec, text };
    const spec: SpecMessage = { ...this.#spec, slots: this.#fleet.slots() };
    const acks = await this.#all((seq) => ({ type: "apply", seq, spec }));
    const failed = acks.filter((ack) => typeof ack === "string");
    if (failed.length > 0) logger.error("Workers failed to apply the spec: {failed}", { failed });
    this.pushFleet();
  }

  /**
   * Sets the handler of the admin calls workers forward.
   *
   * @param routes The admin API's routes.
   */
  serveAdmin(routes: RouteHandler): void {
    this.#admin = routes;
  }

  /** Sends the workers what was last scraped of each server (coalesced). */
  pushFleet(): void {
    if (this.#pushing) return;
    this.#pushing = true;
    setTimeout(() => {
      this.#pushing = false;
      const servers: ServerUpdate[] = [...this.#gateway.pool.all()].map((server) => ({
        url: server.url,
        metrics: [...server.lastMetrics],
        metricsAt: server.metricsAt,
        scrapeErrors: server.scrapeErrors,
      }));
      this.#broadcast({ type: "fleet", servers });
    }, 0);
  }

  /**
   * Drains every worker: each refuses new requests and finishes those in flight.
   *
   * @param timeoutMs Longest wait.
   * @returns Whether all finished in time.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const drained = Promise.all(
      this.#members.filter((member) => member.alive).map((member) => {
        const { promise, resolve } = Promise.withResolvers<void>();
        member.worker.addEventListener("message", (event: MessageEvent<FromWorker>) => {
          if (event.data.type === "drained") resolve();
        });
        member.worker.postMessage({ type: "drain" } satisfies ToWorker);
        return promise;
      }),
    ).then(() => true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), timeoutMs)
    );
    const result = await Promise.race([drained, late]);
    clearTimeout(timer);
    return result;
  }

  /** Stops every worker at once. */
  terminate(): void {
    for (const member of this.#members) {
      member.alive = false;
      member.worker.terminate();
    }
  }

  #spawn(id: number, port: number, memory: Record<string, SharedArrayBuffer>): Promise<number> {
    const worker = new Worker(new URL("./worker_main.ts", import.meta.url), { type: "module" });
    const member: Member = { worker, alive: true };
    this.#members.push(member);
    const listening = Promise.withResolvers<number>();
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "listening") listening.resolve(message.port);
      else if (message.type === "failed") listening.reject(new Error(message.message));
      else this.#receive(member, message);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      member.alive = false;
      listening.reject(new Error(event.message));
      logger.error("Worker {id} failed: {error}", { id, error: event.message });
    };
    const init: ToWorker = {
      type: "init",
      id,
      count: this.#options.count,
      host: this.#options.host,
      port,
      fleet: this.#fleet.memory,
      memory,
      spec: { ...this.#spec, slots: this.#fleet.slots() },
      startedAt: this.#gateway.startedAt,
      log: this.#options.log,
    };
    worker.postMessage(init);
    return listening.promise;
  }

  #receive(member: Member, message: FromWorker): void {
    switch (message.type) {
      case "applied":
        return this.#answered(message.seq, message.error ?? true, true);
      case "answer":
        return this.#answered(message.id, message.value, message.served);
      case "gather":
        void this.#all((id) => ({ type: "ask", id, topic: message.topic })).then((answers) =>
          member.worker.postMessage(
            { type: "gathered", id: message.id, answers } satisfies ToWorker,
          )
        );
        return;
      case "admin":
        void this.#forwarded(message.request).then((answer) =>
          member.worker.postMessage(
            { type: "admin_answer", id: message.id, answer } satisfies ToWorker,
            [answer.body.buffer],
          )
        );
        return;
    }
  }

  async #forwarded(forwarded: ForwardedRequest) {
    const request = new Request(forwarded.url, {
      method: forwarded.method,
      headers: forwarded.headers as [string, string][],
      ...(forwarded.body.byteLength > 0 && { body: forwarded.body }),
    });
    const remote = forwarded.remote;
    const response = await handleRequest(this.#gateway, request, {
      routes: this.#admin ? [this.#admin] : [],
      ...(remote && { remoteAddr: { transport: "tcp" as const, ...remote } }),
    });
    return answerOf(response);
  }

  /** Sends a numbered message to every live worker; resolves with their answers. */
  #all(message: (id: number) => ToWorker): Promise<unknown[]> {
    const id = this.#next++;
    const alive = this.#members.filter((member) => member.alive);
    const { promise, resolve } = Promise.withResolvers<unknown[]>();
    const answers: unknown[] = [];
    const timer = setTimeout(() => {
      logger.warn("Workers did not answer within {ms} ms", { ms: ANSWER_MS });
      this.#waits.delete(id);
      resolve(answers);
    }, ANSWER_MS);
    this.#waits.set(id, {
      answers,
      left: alive.length,
      done: () => {
        clearTimeout(timer);
        this.#waits.delete(id);
        resolve(answers);
      },
    });
    for (const member of alive) member.worker.postMessage(message(id));
    if (alive.length === 0) this.#waits.get(id)?.done();
    return promise;
  }

  #answered(id: number, value: unknown, served: boolean): void {
    const wait = this.#waits.get(id);
    if (!wait) return;
    if (served) wait.answers.push(value);
    if (--wait.left === 0) wait.done();
  }

  #broadcast(message: ToWorker): void {
    for (const member of this.#members) if (member.alive) member.worker.postMessage(message);
  }
}
