import assert from "node:assert/strict";
import { loadSpecFile, loadSpecText, SpecError } from "../../config/load.ts";
import { ORIGINAL_CONFIG } from "../support/original_config.ts";

async function problemsOf(text: string, format: "json" | "yaml" = "yaml"): Promise<string[]> {
  try {
    await loadSpecText(text, { format, env: () => undefined });
  } catch (error) {
    assert.ok(error instanceof SpecError, String(error));
    return [...error.problems];
  }
  throw new Error("expected the spec to be refused");
}

Deno.test("the original config.json loads unchanged", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/config.json`, ORIGINAL_CONFIG);
    const { spec, factories } = await loadSpecFile(`${dir}/config.json`);
    assert.deepEqual(Object.keys(spec.models), ["gpt-3.5-turbo", "gpt-4"]);
    assert.deepEqual(spec.models["gpt-4"]!.servers, [
      { url: "http://node3:8000", weight: 1 },
      { url: "http://node4:8000", weight: 1 },
    ]);
    assert.equal(spec.models["gpt-4"]!.strategy, "real_time_metrics");
    assert.equal(spec.metrics_update_interval, 10);
    assert.equal(factories.size, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("YAML specs load, with weights, upstream_model and fractional intervals", async () => {
  const { spec } = await loadSpecText(
    `# comment
models:
  llama:
    servers:
      - http://a:8000/
      - { url: "http://b:8000", weight: 3 }
    strategy: random
    upstream_model: meta-llama/Llama-3.1-8B-Instruct
metrics_update_interval: 0.25
`,
    { format: "yaml" },
  );
  assert.deepEqual(spec.models["llama"]!.servers, [
    { url: "http://a:8000", weight: 1 },
    { url: "http://b:8000", weight: 3 },
  ]);
  assert.equal(spec.models["llama"]!.upstream_model, "meta-llama/Llama-3.1-8B-Instruct");
  assert.equal(spec.metrics_update_interval, 0.25);
});

Deno.test("an unknown strategy is refused with the available list", async () => {
  const problems = await problemsOf(`models:
  gpt-4:
    servers: ["http://a:1"]
    strategy: fastest
`);
  assert.equal(problems.length, 1);
  assert.match(
    problems[0]!,
    /^models\."gpt-4"\.strategy: unknown strategy "fastest"; available: cache_aware, least_connection, power_of_two, random, real_time_metrics, round_robin, weighted_round_robin$/,
  );
});

Deno.test("several problems are reported together, each with its path", async () => {
  const problems = await problemsOf(
    JSON.stringify({
      models: {
        "gpt-4": {
          servers: ["ftp://x", { url: "http://ok:1", weight: -2 }],
          strategy: "nope",
          colour: "red",
        },
      },
      metrics_update_interval: "often",
      extra: 1,
    }),
    "json",
  );
  const text = problems.join("\n");
  assert.match(text, /models\."gpt-4"\.servers\[0\]: .*http/);
  assert.match(text, /models\."gpt-4"\.servers\[1\]\.weight: /);
  assert.match(text, /models\."gpt-4"\.strategy: unknown strategy "nope"/);
  assert.match(text, /models\."gpt-4": unknown key "colour"; allowed: servers, strategy/);
  assert.match(text, /metrics_update_interval: .*number/);
  assert.match(text, /spec: unknown key "extra"; allowed: models, metrics_update_interval/);
  assert.equal(problems.length, 6);
});

Deno.test("${VAR} references are filled from the environment; a missing one is an error", async () => {
  const env = new Map([["HOST_A", "http://10.0.0.1:8000"]]);
  const { spec } = await loadSpecText(
    `models:\n  m:\n    servers: ["\${HOST_A}"]\n`,
    { format: "yaml", env: (name) => env.get(name) },
  );
  assert.equal(spec.models["m"]!.servers[0]!.url, "http://10.0.0.1:8000");
  const problems = await problemsOf(`models:\n  m:\n    servers: ["\${MISSING_HOST}"]\n`);
  assert.deepEqual(problems.filter((p) => p.includes("MISSING_HOST")), [
    'models."m".servers[0]: environment variable "MISSING_HOST" is not set',
  ]);
});

Deno.test("unparseable files and bad strategy options are refused", async () => {
  const yaml = await problemsOf("models: [unclosed");
  assert.match(yaml[0]!, /^cannot parse YAML/);
  const json = await problemsOf("{", "json");
  assert.match(json[0]!, /^cannot parse JSON/);
  const options = await problemsOf(`models:
  m:
    servers: ["http://a:1"]
    strategy: real_time_metrics
    strategy_options: { power: -1 }
`);
  assert.match(options[0]!, /^models\."m"\.strategy_options: strategy option "power"/);
  await assert.rejects(loadSpecFile("/nonexistent/spec.yaml"), /cannot read the file/);
});
