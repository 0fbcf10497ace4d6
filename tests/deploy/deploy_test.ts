/**
 * The deployment files agree with each other and with the CLI: the container runs `main.ts` with
 * flags it takes, the Deployment's port, probes and scrape annotations point where the gateway
 * serves, the spec comes from the ConfigMap key the `--config` path names (mounted as a folder,
 * so its symlink swap reaches the pod), it validates, and its Redis URL names the Redis Service.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { CLI_OPTIONS } from "../../main.ts";
import { loadSpecText } from "../../config/load.ts";

const DEPLOY = new URL("../../deploy/", import.meta.url);

/** What the test reads of Kubernetes objects: zod keeps the shape honest at this JSON edge. */
const portRef = z.union([z.string(), z.number()]);
const probe = z.object({ httpGet: z.object({ path: z.string(), port: portRef }).optional() });
const container = z.object({
  name: z.string(),
  args: z.array(z.string()).default([]),
  ports: z.array(z.object({ name: z.string(), containerPort: z.number() })),
  env: z.array(z.object({ name: z.string(), value: z.string().optional() })).default([]),
  resources: z.object({ limits: z.object({ cpu: z.string() }).optional() }).optional(),
  readinessProbe: probe.optional(),
  livenessProbe: probe.optional(),
  lifecycle: z.object({
    preStop: z.object({ exec: z.object({ command: z.array(z.string()) }) }),
  }).optional(),
  volumeMounts: z.array(z.object({
    name: z.string(),
    mountPath: z.string(),
    subPath: z.string().optional(),
  })).default([]),
});
const deployment = z.object({
  kind: z.literal("Deployment"),
  metadata: z.object({ name: z.string() }),
  spec: z.object({
    replicas: z.number(),
    selector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
    template: z.object({
      metadata: z.object({
        labels: z.record(z.string(), z.string()),
        annotations: z.record(z.string(), z.string()).default({}),
      }),
      spec: z.object({
        terminationGracePeriodSeconds: z.number().optional(),
        containers: z.array(container),
        volumes: z.array(z.object({
          name: z.string(),
          configMap: z.object({ name: z.string() }).optional(),
        })).default([]),
      }),
    }),
  }),
});
const service = z.object({
  kind: z.literal("Service"),
  metadata: z.object({ name: z.string() }),
  spec: z.object({
    selector: z.record(z.string(), z.string()),
    ports: z.array(z.object({ name: z.string(), port: z.number(), targetPort: portRef })),
  }),
});
const configMap = z.object({
  kind: z.literal("ConfigMap"),
  metadata: z.object({ name: z.string() }),
  data: z.record(z.string(), z.string()),
});

async function objects(): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const entry of Deno.readDir(new URL("k8s/", DEPLOY))) {
    const text = await Deno.readTextFile(new URL(`k8s/${entry.name}`, DEPLOY));
    for (const document of parseAllDocuments(text)) {
      assert.deepEqual(document.errors, [], entry.name);
      out.push(document.toJS() as Record<string, unknown>);
    }
  }
  return out;
}

function flagsOf(args: string[]) {
  return parseArgs({ args, options: CLI_OPTIONS, strict: true, allowPositionals: false }).values;
}

function named<T extends { metadata: { name: string } }>(list: T[], name: string): T {
  const found = list.find((item) => item.metadata.name === name);
  assert.ok(found, `no object named "${name}"`);
  return found;
}

Deno.test("deploy: the Dockerfile runs main.ts on the tested Deno with flags the CLI takes", async () => {
  const text = await Deno.readTextFile(new URL("Dockerfile", DEPLOY));
  const from = /^FROM denoland\/deno:(\S+)$/m.exec(text);
  assert.equal(from?.[1], Deno.version.deno, "the image's Deno is the one tests run on");
  const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(text)![1]!) as string[];
  assert.deepEqual(entrypoint.slice(0, 2), ["deno", "run"]);
  assert.equal(entrypoint.at(-1), "main.ts");
  const cmd = JSON.parse(/^CMD (.+)$/m.exec(text)![1]!) as string[];
  const flags = flagsOf(cmd);
  assert.equal(flags.port, /^EXPOSE (\d+)$/m.exec(text)![1]);
  assert.match(text, /deno cache main\.ts workers\/worker_main\.ts/);
});

Deno.test("deploy: Deployment, Service, probes, annotations and ConfigMap agree", async () => {
  const all = await objects();
  const deployments = all.filter((o) => o["kind"] === "Deployment").map((o) => deployment.parse(o));
  const services = all.filter((o) => o["kind"] === "Service").map((o) => service.parse(o));
  const maps = all.filter((o) => o["kind"] === "ConfigMap").map((o) => configMap.parse(o));
  const gateway = named(deployments, "llmstream");
  const pod = gateway.spec.template;
  assert.ok(gateway.spec.replicas >= 2, "several replicas");
  for (const [label, value] of Object.entries(gateway.spec.selector.matchLabels)) {
    assert.equal(pod.metadata.labels[label], value, "the selector matches the pods");
  }
  const main = pod.spec.containers[0]!;
  const flags = flagsOf(main.args);
  const http = main.ports.find((port) => port.name === "http")!;
  assert.equal(String(http.containerPort), flags.port, "--port is the container port");

  // Probes and scrape annotations.
  assert.equal(main.readinessProbe?.httpGet?.path, "/ready");
  assert.equal(main.livenessProbe?.httpGet?.path, "/health");
  for (const probe of [main.readinessProbe!, main.livenessProbe!]) {
    assert.ok([http.name, http.containerPort].includes(probe.httpGet!.port));
  }
  assert.equal(pod.metadata.annotations["prometheus.io/scrape"], "true");
  assert.equal(pod.metadata.annotations["prometheus.io/port"], flags.port);

  // The Service sends to the pods' http port.
  const front = named(services, "llmstream");
  assert.deepEqual(front.spec.selector, gateway.spec.selector.matchLabels);
  assert.ok([http.name, http.containerPort].includes(front.spec.ports[0]!.targetPort));

  // The spec: --config names a key of the ConfigMap mounted as a folder (no subPath: the
  // kubelet's `..data` swap only reaches folder mounts).
  const configPath = flags.config!;
  const mount = main.volumeMounts.find((m) => configPath.startsWith(`${m.mountPath}/`))!;
  assert.ok(mount, "the --config file is on a mount");
  assert.equal(mount.subPath, undefined);
  const volume = pod.spec.volumes.find((v) => v.name === mount.name)!;
  const map = named(maps, volume.configMap!.name);
  const key = configPath.slice(mount.mountPath.length + 1);
  assert.ok(Object.hasOwn(map.data, key), `ConfigMap key "${key}"`);
  const env = new Map(main.env.flatMap((e) => e.value === undefined ? [] : [[e.name, e.value]]));
  const loaded = await loadSpecText(map.data[key]!, {
    format: "yaml",
    env: (name) => env.get(name),
  });

  // Workers fit the CPU limit; the grace period covers preStop and the spec's drain.
  const workers = Number(flags.workers);
  assert.ok(workers >= 1 && workers <= Number(main.resources!.limits!.cpu), "--workers <= CPUs");
  const preStop = Number(main.lifecycle?.preStop.exec.command.at(-1) ?? 0);
  assert.ok(
    pod.spec.terminationGracePeriodSeconds! > preStop + loaded.spec.shutdown.drain_timeout,
    "the grace period outlasts the drain",
  );

  // Metrics are served where Prometheus scrapes; rate limits use the Redis Service.
  const plugins = new Map(loaded.spec.plugins.map((plugin) => [plugin.name, plugin.options]));
  assert.ok(plugins.has("metrics"));
  assert.equal(
    pod.metadata.annotations["prometheus.io/path"],
    (plugins.get("metrics")?.["path"] as string | undefined) ?? "/metrics",
  );
  const limits = plugins.get("rate_limit")!;
  assert.equal(limits["store"], "redis");
  const redisUrl = new URL(String(limits["redis_url"]));
  const redis = named(services, redisUrl.hostname);
  assert.equal(String(redis.spec.ports[0]!.port), redisUrl.port);
  const redisPods = named(deployments, redisUrl.hostname);
  assert.deepEqual(redis.spec.selector, redisPods.spec.selector.matchLabels);
});
