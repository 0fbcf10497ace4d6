import assert from "node:assert/strict";
import { postJson } from "../support/stack.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

function command(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  });
}

/** Starts main.ts and resolves with its URL once it logs that it listens. */
async function startMain(
  args: string[],
): Promise<{ url: string; child: Deno.ChildProcess; log: () => string }> {
  const child = command(["--host", "127.0.0.1", "--port", "0", ...args]).spawn();
  let log = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const deadline = Date.now() + 30_000;
  for (;;) {
    const match = /listening on "?(http:\/\/[^\s"]+)/.exec(log);
    if (match) {
      // Keep draining stdout so the child never blocks on a full pipe.
      (async () => {
        for (;;) {
          const chunk = await reader.read().catch(() => ({ done: true, value: "" }));
          if (chunk.done) break;
          log += chunk.value;
        }
      })();
      return { url: match[1]!, child, log: () => log };
    }
    if (Date.now() > deadline) throw new Error(`main.ts did not start:\n${log}`);
    const chunk = await reader.read();
    if (chunk.done) throw new Error(`main.ts exited before listening:\n${log}`);
    log += chunk.value;
  }
}

async function stop(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
  child.kill("SIGTERM");
  await child.stderr.cancel();
  return await child.status;
}

Deno.test("with no --config the demo fleet answers the original README's examples", async () => {
  const { url, child, log } = await startMain([]);
  try {
    assert.match(log(), /Demo mode: 4 simulated vLLM servers/);
    assert.match(log(), /--config/);
    const chat = await postJson(`${url}/v1/chat/completions`, {
      model: "gpt-3.5-turbo",
      messages: [{ role: "user", content: "Hello, how are you?" }],
      max_tokens: 100,
      temperature: 0.7,
    });
    assert.equal(chat.status, 200);
    const chatBody = await chat.json();
    assert.equal(chatBody.object, "chat.completion");
    assert.equal(typeof chatBody.choices[0].message.content, "string");
    const completion = await postJson(`${url}/v1/completions`, {
      model: "gpt-4",
      prompt: "Write a story about AI",
      max_tokens: 200,
      temperature: 0.7,
    });
    assert.equal(completion.status, 200);
    assert.equal((await completion.json()).object, "text_completion");
    const stream = await postJson(`${url}/v1/chat/completions`, {
      model: "gpt-4",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 5,
      stream: true,
    });
    assert.match(await stream.text(), /data: \[DONE\]/);
    const models = await (await fetch(`${url}/v1/models`)).json();
    assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["gpt-3.5-turbo", "gpt-4"]);
    // The demo's gpt-4 routes by cached prefix.
    const gpt4 = await (await fetch(`${url}/admin/models/gpt-4`)).json();
    assert.equal(gpt4.strategy, "cache_aware", JSON.stringify(gpt4));
  } finally {
    const status = await stop(child);
    assert.equal(status.code, 0);
  }
});

Deno.test("--help prints the options and exits 0", async () => {
  const output = await command(["--help"]).output();
  assert.equal(output.code, 0);
  const text = new TextDecoder().decode(output.stdout);
  for (const flag of ["--config", "--host", "--port", "--help"]) {
    assert.match(text, new RegExp(flag));
  }
});

Deno.test("an invalid spec stops start-up with exit 1 and every problem named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/bad.yaml`,
      `models:\n  gpt-4:\n    servers: ["http://a:1"]\n    strategy: fastest\nmetrics_update_interval: -1\n`,
    );
    const output = await command(["--config", `${dir}/bad.yaml`, "--port", "0"]).output();
    assert.equal(output.code, 1);
    const text = new TextDecoder().decode(output.stderr);
    assert.match(text, /models\."gpt-4"\.strategy: unknown strategy "fastest"; available: /);
    assert.match(text, /metrics_update_interval: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--config serves a YAML spec and a bad --port is refused", async () => {
  const dir = await Deno.makeTempDir();
  const { startSimServer } = await import("../../sim/server.ts");
  const sim = await startSimServer({ itlMs: 1, ttftMs: 1 });
  try {
    await Deno.writeTextFile(
      `${dir}/spec.yaml`,
      `models:\n  local:\n    servers: ["${sim.url}"]\n    strategy: least_connection\n`,
    );
    const { url, child } = await startMain(["--config", `${dir}/spec.yaml`]);
    try {
      const response = await postJson(`${url}/v1/completions`, { model: "local", prompt: "x" });
      assert.equal(response.status, 200);
      await response.body?.cancel();
      assert.equal(sim.state().received, 1);
    } finally {
      assert.equal((await stop(child)).code, 0);
    }
    const bad = await command(["--port", "http"]).output();
    assert.equal(bad.code, 2);
  } finally {
    await sim.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM refuses new connections, lets a stream in flight finish, and exits 0", async () => {
  const dir = await Deno.makeTempDir();
  const { startSimServer } = await import("../../sim/server.ts");
  const sim = await startSimServer({ itlMs: 40, ttftMs: 1 });
  try {
    await Deno.writeTextFile(
      `${dir}/spec.yaml`,
      `models:\n  m:\n    servers: ["${sim.url}"]\nshutdown:\n  drain_timeout: 20\n`,
    );
    const { url, child, log } = await startMain(["--config", `${dir}/spec.yaml`]);
    const response = await postJson(`${url}/v1/completions`, {
      model: "m",
      prompt: "x",
      max_tokens: 25,
      stream: true,
    });
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = (await reader.read()).value ?? "";
    child.kill("SIGTERM");
    const exited = child.status;
    // The listener closes: a new connection is refused while the stream goes on.
    const { waitFor } = await import("../support/stack.ts");
    await waitFor(async () => {
      try {
        const probe = await fetch(`${url}/health`, { headers: { connection: "close" } });
        await probe.body?.cancel();
        return false;
      } catch {
        return true;
      }
    }, { what: "new connections to be refused" });
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += chunk.value;
    }
    assert.match(text, /data: \[DONE\]\n\n$/);
    await child.stderr.cancel();
    assert.equal((await exited).code, 0);
    assert.match(log(), /refusing new connections/);
  } finally {
    await sim.close();
    await Deno.remove(dir, { recursive: true });
  }
});
