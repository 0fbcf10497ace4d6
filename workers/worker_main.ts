/**
 * A data-plane worker: one `Deno.serve` on the shared port (`reusePort`), a gateway over the
 * shared fleet state, and the plugins. It takes specs, scraped metrics and drain orders from the
 * control plane, and forwards admin API calls to it (the control plane owns the spec store).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type LoadedSpec, loadSpecText } from "../config/load.ts";
import { closeLogging, setupLogging } from "../common/log.ts";
import { Gateway } from "../gateway/gateway.ts";
import { type RouteHandler, type RunningGateway, startGateway } from "../gateway/server.ts";
import { SharedFleet } from "../fleet/shared_fleet.ts";
import type { WorkerPeers } from "../plugins/types.ts";
import type {
  FromWorker,
  HttpAnswer,
  ServerUpdate,
  SpecMessage,
  ToWorker,
  WorkerInit,
} from "./protocol.ts";

const logger = getLogger(["llmstream", "worker"]);

/** The worker global's messaging, as far as this file uses it. */
interface WorkerScope {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  close(): void;
}
const scope = self as unknown as WorkerScope;

/** Requests to the control plane awaiting an answer, by id. */
class Pending<T> {
  #next = 1;
  readonly #waiting = new Map<number, (value: T) => void>();

  ask(send: (id: number) => void): Promise<T> {
    const id = this.#next++;
    const { promise, resolve } = Promise.withResolvers<T>();
    this.#waiting.set(id, resolve);
    send(id);
    return promise;
  }

  settle(id: number, value: T): void {
    this.#waiting.get(id)?.(value);
    this.#waiting.delete(id);
  }
}

/** What plugins share with the other workers. */
class Peers implements WorkerPeers {
  readonly count: number;
  readonly #memory: Readonly<Record<string, SharedArrayBuffer>>;
  readonly #answers = new Map<string, () => unknown>();
  readonly gathers = new Pending<readonly unknown[]>();

  constructor(init: WorkerInit) {
    this.count = init.count;
    this.#memory = init.memory;
  }

  sharedMemory(name: string): SharedArrayBuffer | undefined {
    return Object.hasOwn(this.#memory, name) ? this.#memory[name] : undefined;
  }

  serve(topic: string, answer: () => unknown): () => void {
    this.#answers.set(topic, answer);
    return () => {
      if (this.#answers.get(topic) === answer) this.#answers.delete(topic);
    };
  }

  gather(topic: string): Promise<unknown[]> {
    return this.gathers.ask((id) => scope.postMessage({ type: "gather", id, topic }))
      .then((answers) => [...answers]);
  }

  answer(id: number, topic: string): void {
    const answer = this.#answers.get(topic);
    scope.postMessage({ type: "answer", id, served: answer !== undefined, value: answer?.() });
  }
}

let gateway: Gateway | undefined;
let running: RunningGateway | undefined;
let peers: Peers | undefined;
let fleet: SharedFleet | undefined;
const admin = new Pending<HttpAnswer>();
let queue: Promise<void> = Promise.resolve();

function load(spec: SpecMessage): Promise<LoadedSpec> {
  const env = spec.env === undefined ? undefined : new Map(spec.env);
  return loadSpecText(spec.text, {
    format: spec.format,
    ...(spec.source !== undefined && { source: spec.source }),
    ...(env && { env: (name: string) => env.get(name) }),
  });
}

/** Forwards `/admin` calls to the control plane and answers with what it answered. */
const forwardAdmin: RouteHandler = (context) => {
  const path = context.path;
  if (path !== "/admin" && !path.startsWith("/admin/")) return undefined;
  const { request } = context;
  const remote = context.remoteAddr;
  return request.bytes().then((body) =>
    admin.ask((id) =>
      scope.postMessage({
        type: "admin",
        id,
        request: {
          method: request.method,
          url: request.url,
          headers: [...request.headers],
          body,
          remote: remote && { hostname: remote.hostname, port: remote.port },
        },
      })
    )
  ).then((answer) =>
    new Response(answer.body.byteLength === 0 ? null : answer.body, {
      status: answer.status,
      headers: new Headers(answer.headers as [string, string][]),
    })
  );
};

async function start(init: WorkerInit): Promise<void> {
  await setupLogging(init.log);
  fleet = new SharedFleet(init.fleet);
  fleet.follow(init.spec.slots);
  peers = new Peers(init);
  gateway = new Gateway(await load(init.spec), {
    shared: fleet,
    workers: peers,
    startedAt: init.startedAt,
    workerId: init.id,
  });
  await gateway.startPlugins();
  running = startGateway(gateway, {
    hostname: init.host,
    port: init.port,
    reusePort: true,
    routes: [forwardAdmin],
  });
  scope.postMessage({ type: "listening", port: running.port });
}

function receive(servers: readonly ServerUpdate[]): void {
  for (const update of servers) {
    gateway?.pool.get(update.url)?.receiveMetrics(new Map(update.metrics), update);
  }
}

async function drain(): Promise<void> {
  if (gateway) gateway.draining = true;
  await running?.close();
  await gateway?.closePlugins();
  scope.postMessage({ type: "drained" });
  await closeLogging();
}

function handle(message: ToWorker): void {
  switch (message.type) {
    case "init":
      queue = queue.then(() => start(message)).catch((error) => {
        scope.postMessage({ type: "failed", message: String(error) });
      });
      return;
    case "apply":
      queue = queue.then(async () => {
        try {
          fleet?.follow(message.spec.slots);
          gateway?.apply(await load(message.spec));
          await gateway?.pluginsSettled();
          scope.postMessage({ type: "applied", seq: message.seq });
        } catch (error) {
          logger.error("A worker could not apply the new spec: {error}", { error });
          scope.postMessage({ type: "applied", seq: message.seq, error: String(error) });
        }
      });
      return;
    case "fleet":
      receive(message.servers);
      return;
    case "ask":
      peers?.answer(message.id, message.topic);
      return;
    case "gathered":
      peers?.gathers.settle(message.id, message.answers);
      return;
    case "admin_answer":
      admin.settle(message.id, message.answer);
      return;
    case "drain":
      queue = queue.then(drain);
      return;
  }
}

scope.onmessage = (event) => handle(event.data);
