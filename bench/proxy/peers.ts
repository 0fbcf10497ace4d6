/**
 * The contenders of the proxy benchmark: how each is configured, started (pinned to the contender
 * CPU, bound to 127.0.0.1, pointed at the same upstream) and stopped. Peers come from the cache
 * folder that `bench/peers/install.sh` fills; nothing of theirs is in the repository.
 *
 * @module
 */
import {
  CHAT,
  commandText,
  exists,
  launch,
  llmstreamArgs,
  type Peer,
  pipVersion,
} from "../common/peer_launch.ts";
import { freePort } from "../common/proc.ts";

export type { Peer, PeerContext, RunningPeer } from "../common/peer_launch.ts";

/** Direct to the upstream: the baseline. */
const direct: Peer = {
  name: "direct",
  start(context) {
    return Promise.resolve({
      url: context.upstreamUrl + CHAT,
      headers: {},
      version: "bench/common/upstream.ts",
      how: "no proxy: the load generator talks to the upstream",
      stop: () => Promise.resolve(),
    });
  },
};

/** The API key the `plugins` variant of LLMStream checks. */
const BENCH_KEY = "sk-bench-0123456789";

/**
 * How LLMStream runs: `warning` (request lines off), `info` (the default level, a line per
 * request), `plugins` (info, with auth, rate_limit, metrics and logging, as an operator would run
 * it; limits high enough never to refuse); `w1` and `w2`: warning level with `--workers 1` and
 * `--workers 2`, both allowed every CPU (they share CPU 0 with the load generator and upstream),
 * so the two rows compare one worker and two on the same CPUs. All other variants run
 * `--workers 1` on the contender CPU.
 */
export type LlmstreamVariant = "warning" | "info" | "plugins" | "w1" | "w2";

/** CPUs the worker variants may use: all of this 2-CPU machine's. */
const ALL_CPUS = "0,1";

/**
 * LLMStream: `main.ts` as its own process with a generated spec.
 *
 * @param variant The log level and plugins.
 * @returns The peer.
 */
export function llmstream(variant: LlmstreamVariant): Peer {
  const plugins = variant === "plugins"
    ? {
      plugins: [
        { name: "auth", options: { keys: [{ key: BENCH_KEY, name: "bench" }] } },
        {
          name: "rate_limit",
          options: { default: { requests_per_minute: 1_000_000_000, concurrent: 100_000 } },
        },
        "metrics",
        "logging",
      ],
    }
    : {};
  return {
    name: variant === "warning" ? "llmstream" : `llmstream-${variant}`,
    async start(context) {
      const spec = `${context.runDir}/llmstream.json`;
      Deno.writeTextFileSync(
        spec,
        JSON.stringify(
          {
            models: { bench: { servers: [context.upstreamUrl], strategy: "round_robin" } },
            limits: { max_body_bytes: 16 * 1024 * 1024 },
            ...plugins,
          },
          null,
          2,
        ),
      );
      const port = freePort();
      const commit = await commandText([
        "git",
        "-C",
        context.repoDir,
        "rev-parse",
        "--short",
        "HEAD",
      ]);
      const dirty = await commandText(["git", "-C", context.repoDir, "status", "--porcelain"]);
      const level = variant === "info" || variant === "plugins" ? "info" : "warning";
      const workers = variant === "w2" ? 2 : 1;
      const pinned = variant === "w1" || variant === "w2"
        ? { ...context, cpus: ALL_CPUS }
        : context;
      return launch(pinned, {
        name: `llmstream-${variant}`,
        argv: llmstreamArgs(context.repoDir, { spec, port, level, workers }),
        port,
      }, {
        version: `${commit}${dirty ? "+dirty" : ""}, deno ${Deno.version.deno}`,
        ...(variant === "plugins" && { headers: { authorization: `Bearer ${BENCH_KEY}` } }),
      });
    },
  };
}

/** nginx (Debian's package) as a plain reverse proxy with a keepalive upstream pool. */
const nginx: Peer = {
  name: "nginx",
  async start(context) {
    const binary = exists("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";
    const dir = `${context.runDir}/nginx`;
    Deno.mkdirSync(dir, { recursive: true });
    const port = freePort();
    const upstream = new URL(context.upstreamUrl).host;
    Deno.writeTextFileSync(
      `${dir}/nginx.conf`,
      `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 16m;
  client_body_buffer_size 256k;
  upstream llm { server ${upstream}; keepalive 1024; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://llm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
`,
    );
    const version = (await commandText([binary, "-v"])).replace(/^nginx version: /, "");
    return launch(context, {
      name: "nginx",
      argv: [binary, "-p", dir, "-e", `${dir}/error.log`, "-c", `${dir}/nginx.conf`],
      port,
    }, { version: `${version} (Debian), 1 worker` });
  },
};

/** The vLLM project's Rust router (`vllm-router` from PyPI). */
const vllmRouter: Peer = {
  name: "vllm-router",
  start(context) {
    const venv = `${context.cacheDir}/vllm-router`;
    const binary = `${venv}/bin/vllm-router`;
    if (!exists(binary)) throw new Error(`not installed (${binary} missing)`);
    const port = freePort();
    return launch(context, {
      name: "vllm-router",
      argv: [
        binary,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--worker-urls",
        context.upstreamUrl,
        "--policy",
        "round_robin",
        "--log-level",
        "warning",
        "--prometheus-host",
        "127.0.0.1",
        "--prometheus-port",
        String(freePort()),
        "--worker-startup-check-interval",
        "1",
      ],
      port,
    }, { version: pipVersion(venv, "vllm_router") });
  },
};

/** Portkey's gateway (`@portkey-ai/gateway` from npm) on Node. */
const portkey: Peer = {
  name: "portkey",
  async start(context) {
    const root = `${context.cacheDir}/portkey/node_modules/@portkey-ai/gateway`;
    if (!exists(`${root}/build/start-server.js`)) {
      throw new Error(`not installed (${root} missing)`);
    }
    const version = JSON.parse(Deno.readTextFileSync(`${root}/package.json`)).version as string;
    const node = (await commandText(["node", "--version"])).trim();
    const port = freePort();
    return launch(context, {
      name: "portkey",
      argv: [
        "node",
        "--import",
        `${context.repoDir}/bench/peers/bind_local.mjs`,
        `${root}/build/start-server.js`,
        `--port=${port}`,
        "--headless",
      ],
      env: { NODE_ENV: "production", TRUSTED_CUSTOM_HOSTS: "127.0.0.1" },
      port,
    }, {
      version: `${version}, node ${node}`,
      headers: {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": `${context.upstreamUrl}/v1`,
        authorization: "Bearer sk-bench",
      },
    });
  },
};

/** LiteLLM refuses to start without a strong master key (it checks only this key: no database). */
const MASTER_KEY = "sk-bench-7c1f0e9a4b2d4f6e8a0c3b5d7e9f1a2b";

/** LiteLLM's proxy (`litellm[proxy]` from PyPI), one uvicorn worker. */
const litellm: Peer = {
  name: "litellm",
  start(context) {
    const venv = `${context.cacheDir}/litellm`;
    if (!exists(`${venv}/bin/litellm`)) {
      throw new Error(`not installed (${venv}/bin/litellm missing)`);
    }
    const config = `${context.runDir}/litellm.yaml`;
    Deno.writeTextFileSync(
      config,
      `model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench
      api_base: ${context.upstreamUrl}/v1
      api_key: sk-bench
litellm_settings:
  telemetry: false
  turn_off_message_logging: true
general_settings:
  master_key: ${MASTER_KEY}
`,
    );
    const port = freePort();
    return launch(context, {
      name: "litellm",
      argv: [
        `${venv}/bin/litellm`,
        "--config",
        config,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--num_workers",
        "1",
      ],
      env: { LITELLM_LOCAL_MODEL_COST_MAP: "True", LITELLM_LOG: "ERROR", NO_DOCS: "True" },
      port,
    }, {
      version: pipVersion(venv, "litellm"),
      headers: { authorization: `Bearer ${MASTER_KEY}` },
      timeoutMs: 120_000,
    });
  },
};

/** Every contender, in table order. */
export const PEERS: readonly Peer[] = [
  direct,
  llmstream("warning"),
  llmstream("w1"),
  llmstream("w2"),
  nginx,
  vllmRouter,
  portkey,
  litellm,
];
