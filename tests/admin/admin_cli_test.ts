import assert from "node:assert/strict";
import { loadSpecFile } from "../../config/load.ts";
import { ORIGINAL_CONFIG } from "../support/original_config.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

interface Main {
  url: string;
  log(): string;
  stop(): Promise<Deno.CommandStatus>;
}

/** Starts main.ts on a free port and resolves once it logs that it listens. */
async function startMain(args: string[]): Promise<Main> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, "-A", MAIN, "--host", "127.0.0.1", "--port", "0", ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { LLMSTREAM_ADMIN_TOKEN: "" },
  }).spawn();
  let log = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const drained = (async () => {
    for (;;) {
      const chunk = await reader.read().catch(() => ({ done: true, value: "" }));
      if (chunk.done) break;
      log += chunk.value;
    }
  })();
  const deadline = Date.now() + 30_000;
  let match: RegExpExecArray | null = null;
  while (!(match = /listening on "?(http:\/\/[^\s"]+)/.exec(log))) {
    if (Date.now() > deadline) throw new Error(`main.ts did not start:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    url: match[1]!,
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await child.stderr.cancel();
      const status = await child.status;
      await drained;
      return status;
    },
  };
}

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
  const main = await startMain(["--config", path]);
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
    const main = await startMain(args);
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
