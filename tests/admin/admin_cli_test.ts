import assert from "node:assert/strict";
import { loadSpecFile } from "../../config/load.ts";
import { ORIGINAL_CONFIG } from "../support/original_config.ts";
import { spawnMain } from "../support/main_process.ts";

/** The original README's four admin curls, with their bodies as written. */
async function readmeCurls(url: string): Promise<Response[]> {
  const json = { "Content-Type": "application/json" };
  const responses = [
    await fetch(`${url}/admin/models`, { method: "GET" }),
    await fetch(`${url}/admin/models`, {
      method: "POST",
      headers: json,
      body: `{
    "model_name": "gpt-neo",
    "servers": ["http://node5:8000", "http://node6:8000"],
    "strategy": "least_connection"
  }`,
    }),
    await fetch(`${url}/admin/models/gpt-4`, {
      method: "PUT",
      headers: json,
      body: `{
    "servers": ["http://node3:8000", "http://node4:8000"],
    "strategy": "round_robin"
  }`,
    }),
    await fetch(`${url}/admin/models/gpt-4`, { method: "DELETE" }),
  ];
  for (const response of responses) await response.body?.cancel();
  return responses;
}

Deno.test("the original README's admin curls work on `deno task start --config`", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/config.json`;
  await Deno.writeTextFile(path, ORIGINAL_CONFIG);
  const main = await spawnMain(["--config", path]);
  try {
    const statuses = (await readmeCurls(main.url)).map((response) => response.status);
    assert.deepEqual(statuses, [200, 201, 200, 200]);
    const text = await Deno.readTextFile(path);
    assert.match(text, /^ {2}"models": \{$/m);
    const { spec } = await loadSpecFile(path);
    assert.deepEqual(Object.keys(spec.models), ["gpt-3.5-turbo", "gpt-neo"]);
    assert.equal(spec.models["gpt-neo"]!.strategy, "least_connection");
    const models = await (await fetch(`${main.url}/v1/models`)).json();
    assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["gpt-3.5-turbo", "gpt-neo"]);
  } finally {
    assert.equal((await main.stop()).code, 0);
    await Deno.remove(dir, { recursive: true });
  }
  assert.match(main.log(), /Admin API changes are written back to/);
  assert.match(main.log(), /no token .* answers only clients on loopback/);
  assert.match(main.log(), /Config changed by the admin API .*: removed model "gpt-4"/);
});

Deno.test("--no-write-back and demo mode keep admin changes in memory", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/config.json`;
  await Deno.writeTextFile(path, ORIGINAL_CONFIG);
  for (const args of [["--config", path, "--no-write-back"], []]) {
    const main = await spawnMain(args);
    try {
      const responses = await readmeCurls(main.url);
      assert.deepEqual(responses.map((response) => response.status), [200, 201, 200, 200]);
      for (const response of responses.slice(1)) {
        assert.equal(response.headers.get("x-llmstream-persisted"), "false");
      }
      assert.equal(await Deno.readTextFile(path), ORIGINAL_CONFIG);
    } finally {
      assert.equal((await main.stop()).code, 0);
    }
    assert.match(
      main.log(),
      /Admin API changes stay in memory: (write-back is off|there is no spec)/,
    );
  }
  await Deno.remove(dir, { recursive: true });
});
