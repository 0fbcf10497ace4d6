import assert from "node:assert/strict";
import { loadSpecFile } from "../../config/load.ts";
import { type AdminStack, ask, withAdminStack } from "../support/admin_stack.ts";
import { postJson, totalInFlight, waitFor } from "../support/stack.ts";

/** A commented YAML spec, as one would keep it in git. */
function yamlSpec(urls: string[]): string {
  Deno.env.set("LLMSTREAM_TEST_SECOND_SERVER", urls[1]!);
  return `# LLMStream spec: the fleet, reviewed in git.
models:
  # The support bot's model.
  gpt-4: # keep this name
    servers: ["${urls[0]}"] # the big box
    strategy: round_robin
  gpt-3.5-turbo:
    servers:
      - \${LLMSTREAM_TEST_SECOND_SERVER}   # from the environment
    strategy: least_connection
metrics_update_interval: 10 # seconds
`;
}

async function errorOf(response: Response): Promise<{ message: string; code: string }> {
  const body = await response.json();
  assert.equal(typeof body.error.message, "string");
  return body.error;
}

async function fileMatchesRunning(stack: AdminStack): Promise<void> {
  const fromFile = await loadSpecFile(stack.path);
  assert.deepEqual(fromFile.spec, stack.gateway.spec);
}

Deno.test("the original README's admin calls work as written and end in the file", async () => {
  await withAdminStack({ spec: yamlSpec }, async (stack) => {
    const list = await stack.admin("GET", "/admin/models");
    assert.equal(list.status, 200);
    assert.deepEqual(Object.keys((await list.json()).models), ["gpt-4", "gpt-3.5-turbo"]);

    const created = await stack.admin("POST", "/admin/models", {
      model_name: "gpt-neo",
      servers: ["http://node5:8000", "http://node6:8000"],
      strategy: "least_connection",
    });
    assert.equal(created.status, 201);
    assert.equal(created.headers.get("x-llmstream-persisted"), "true");
    assert.equal(created.headers.get("location"), "/admin/models/gpt-neo");
    const body = await created.json();
    assert.equal(body.persisted, true);
    assert.deepEqual(body.model.servers, [
      { url: "http://node5:8000", weight: 1 },
      { url: "http://node6:8000", weight: 1 },
    ]);

    const updated = await stack.admin("PUT", "/admin/models/gpt-4", {
      servers: ["http://node3:8000", "http://node4:8000"],
      strategy: "round_robin",
    });
    assert.equal(updated.status, 200);
    assert.equal((await updated.json()).model.strategy, "round_robin");
    assert.deepEqual(stack.gateway.routes.get("gpt-4")!.endpoints.map((e) => e.url), [
      "http://node3:8000",
      "http://node4:8000",
    ]);

    const deleted = await stack.admin("DELETE", "/admin/models/gpt-4");
    assert.equal(deleted.status, 200);
    assert.deepEqual(await deleted.json(), { deleted: "gpt-4", persisted: true });
    assert.equal(stack.gateway.routes.has("gpt-4"), false);
    assert.equal((await ask(stack, "gpt-4")).status, 404);
    await fileMatchesRunning(stack);
  });
});

Deno.test("every endpoint answers with the right status and an OpenAI-shaped error", async () => {
  await withAdminStack({ spec: yamlSpec }, async (stack) => {
    const cases: [string, string, unknown, number, string?][] = [
      ["GET", "/admin/models/gpt-4", undefined, 200],
      ["GET", "/admin/models/gpt-5", undefined, 404, "model_not_found"],
      ["PUT", "/admin/models/gpt-5", { strategy: "random" }, 404, "model_not_found"],
      ["DELETE", "/admin/models/gpt-5", undefined, 404, "model_not_found"],
      ["POST", "/admin/models", { model_name: "gpt-4", servers: [] }, 409, "model_exists"],
      ["POST", "/admin/models", "{not json", 400, "invalid_json"],
      ["POST", "/admin/models", "[1, 2]", 400, "invalid_json"],
      ["POST", "/admin/models", { servers: [] }, 422, "invalid_body"],
      ["POST", "/admin/models", { model_name: "x", servers: ["ftp://a"] }, 422, "invalid_spec"],
      ["POST", "/admin/models", { model_name: "x", servers: [], colour: 1 }, 422, "invalid_spec"],
      ["PUT", "/admin/models/gpt-4", {}, 422, "invalid_body"],
      ["PUT", "/admin/models/gpt-4", { strategy: "fastest" }, 422, "invalid_spec"],
      ["PUT", "/admin/models/gpt-4", { model_name: "gpt-5" }, 422, "invalid_body"],
      ["POST", "/admin/models/gpt-4/servers", { url: "http://n7:1", weight: 2 }, 201],
      ["POST", "/admin/models/gpt-4/servers", { url: "http://n7:1/" }, 409, "server_exists"],
      ["POST", "/admin/models/gpt-4/servers", { url: "http://n8:1", weight: -1 }, 422],
      ["POST", "/admin/models/gpt-5/servers", { url: "http://n8:1" }, 404, "model_not_found"],
      ["GET", "/admin/models/gpt-4/servers", undefined, 200],
      ["DELETE", "/admin/models/gpt-4/servers?url=http://n9:1", undefined, 404, "server_not_found"],
      ["DELETE", "/admin/models/gpt-4/servers", undefined, 400, "missing_parameter"],
      ["DELETE", `/admin/models/gpt-4/servers?url=${encodeURIComponent("http://n7:1")}`, "", 200],
      ["GET", "/admin/servers", undefined, 200],
      ["GET", "/admin/nothing", undefined, 404, "unknown_path"],
      ["PATCH", "/admin/models", undefined, 405, "method_not_allowed"],
    ];
    for (const [method, path, body, status, code] of cases) {
      const response = await stack.admin(method, path, body === "" ? undefined : body);
      const what = `${method} ${path}`;
      assert.equal(response.status, status, `${what}: ${await response.clone().text()}`);
      if (code) assert.equal((await errorOf(response)).code, code, what);
      else await response.body?.cancel();
    }
    const invalid = await stack.admin("POST", "/admin/models", {
      model_name: "x",
      servers: ["http://ok:1", "ftp://a"],
    });
    assert.match((await errorOf(invalid)).message, /models\."x"\.servers\[1\]: expected an http/);
    const unknown = await stack.admin("GET", "/admin/models/gpt-5");
    assert.match((await errorOf(unknown)).message, /Unknown model "gpt-5": available models are/);
    assert.equal(stack.gateway.spec.models["gpt-4"]!.servers.length, 1);
    await fileMatchesRunning(stack);
  });
});

Deno.test("model names with / and . work URL-encoded, and unencoded where unambiguous", async () => {
  await withAdminStack({ spec: yamlSpec }, async (stack) => {
    const name = "meta-llama/Llama-3.1-8B-Instruct";
    const encoded = encodeURIComponent(name);
    const [first, second] = stack.sims.map((sim) => sim.url);
    const created = await stack.admin("POST", "/admin/models", {
      model_name: name,
      servers: [first],
    });
    assert.equal(created.status, 201);
    assert.equal(created.headers.get("location"), `/admin/models/${encoded}`);
    assert.equal((await ask(stack, name)).sim, 0);
    assert.equal((await stack.admin("GET", `/admin/models/${encoded}`)).status, 200);
    assert.equal((await (await stack.admin("GET", `/admin/models/${name}`)).json()).name, name);
    const added = await stack.admin("POST", `/admin/models/${encoded}/servers`, { url: second });
    assert.equal(added.status, 201);
    const removed = await stack.admin(
      "DELETE",
      `/admin/models/${name}/servers?url=${encodeURIComponent(first!)}`,
    );
    assert.equal(removed.status, 200);
    assert.equal((await ask(stack, name)).sim, 1);
    assert.equal((await stack.admin("DELETE", `/admin/models/${encoded}`)).status, 200);
    await fileMatchesRunning(stack);
  });
});

Deno.test("YAML write-back keeps comments, key order, ${VAR} and every untouched line", async () => {
  await withAdminStack({ spec: yamlSpec }, async (stack) => {
    const before = await Deno.readTextFile(stack.path);
    const response = await stack.admin("POST", "/admin/models/gpt-3.5-turbo/servers", {
      url: "http://node9:8000",
      weight: 2,
    });
    assert.equal(response.status, 201);
    await stack.admin("POST", "/admin/models", { model_name: "gpt-neo", servers: [] });
    const after = await Deno.readTextFile(stack.path);
    for (const line of before.split("\n")) assert.ok(after.includes(line), `lost line: ${line}`);
    assert.match(after, /- \$\{LLMSTREAM_TEST_SECOND_SERVER\} {3}# from the environment\n/);
    assert.match(after, /- url: http:\/\/node9:8000\n {8}weight: 2\n/);
    assert.ok(after.indexOf("gpt-neo:") > after.indexOf("gpt-3.5-turbo:"));
    assert.ok(after.indexOf("gpt-neo:") < after.indexOf("metrics_update_interval"));
    assert.doesNotMatch(after, new RegExp(stack.sims[1]!.url));
    await fileMatchesRunning(stack);
  });
});

Deno.test("JSON specs stay JSON with their indentation", async () => {
  const spec = (urls: string[]) =>
    JSON.stringify({ models: { "gpt-4": { servers: [urls[0]], strategy: "random" } } }, null, 4) +
    "\n";
  await withAdminStack({ spec, file: "config.json" }, async (stack) => {
    const response = await stack.admin("POST", "/admin/models", {
      model_name: "gpt-neo",
      servers: [{ url: stack.sims[1]!.url, weight: 3 }],
      strategy: "least_connection",
    });
    assert.equal(response.status, 201);
    const text = await Deno.readTextFile(stack.path);
    assert.ok(text.endsWith("}\n"));
    assert.match(text, /^ {4}"models": \{\n {8}"gpt-4": \{\n/m);
    assert.match(text, /\n {8}"gpt-neo": \{\n {12}"servers": \[\n/);
    assert.equal(JSON.parse(text).models["gpt-neo"].servers[0].weight, 3);
    await fileMatchesRunning(stack);
    assert.equal((await ask(stack, "gpt-neo")).sim, 1);
  });
});

Deno.test("50 concurrent admin changes leave a valid file equal to the running config", async () => {
  await withAdminStack({ spec: yamlSpec }, async (stack) => {
    const calls = Array.from(
      { length: 50 },
      (_, i) =>
        i % 2 === 0
          ? stack.admin("POST", "/admin/models", {
            model_name: `model-${i}`,
            servers: [`http://node${i}:8000`],
          })
          : stack.admin("POST", "/admin/models/gpt-4/servers", { url: `http://extra${i}:8000` }),
    );
    const responses = await Promise.all(calls);
    for (const response of responses) {
      assert.equal(response.status, 201, await response.clone().text());
      await response.body?.cancel();
    }
    await fileMatchesRunning(stack);
    assert.equal(Object.keys(stack.gateway.spec.models).length, 27);
    assert.equal(stack.gateway.spec.models["gpt-4"]!.servers.length, 26);
    const text = await Deno.readTextFile(stack.path);
    assert.match(text, /^# LLMStream spec: the fleet, reviewed in git\.$/m);
    assert.match(text, /# The support bot's model\./);
  });
});

Deno.test("GET /admin/servers shows live state, and removed servers finish their streams", async () => {
  await withAdminStack({ spec: yamlSpec }, async (stack) => {
    const gate = stack.sims[0]!.gate();
    const stream = await postJson(`${stack.url}/v1/chat/completions`, {
      model: "gpt-4",
      messages: [{ role: "user", content: "a long answer" }],
      max_tokens: 20,
      stream: true,
    });
    const reader = stream.body!.getReader();
    await reader.read();
    const first = stack.sims[0]!.url;
    const removed = await stack.admin(
      "DELETE",
      `/admin/models/gpt-4/servers?url=${encodeURIComponent(first)}`,
    );
    assert.equal(removed.status, 200);
    await stack.admin("POST", "/admin/models/gpt-4/servers", { url: stack.sims[1]!.url });
    const { servers } = await (await stack.admin("GET", "/admin/servers")).json();
    const old = servers.find((server: { url: string }) => server.url === first);
    assert.equal(old.in_flight, 1);
    assert.equal(old.in_config, false);
    assert.equal(old.requests, 1);
    assert.equal(old.healthy, true);
    const kept = servers.find((server: { url: string }) => server.url === stack.sims[1]!.url);
    assert.deepEqual(kept.models.map((use: { model: string }) => use.model).sort(), [
      "gpt-3.5-turbo",
      "gpt-4",
    ]);
    for (const use of kept.models) {
      assert.equal(use.weight, 1);
      assert.ok(use.current_weight > 0, `current weight of ${use.model}: ${use.current_weight}`);
    }
    assert.equal((await ask(stack, "gpt-4")).sim, 1);
    gate.open();
    let rest = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      rest += new TextDecoder().decode(chunk.value);
    }
    assert.match(rest, /data: \[DONE\]\n\n$/);
    await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
  });
});
