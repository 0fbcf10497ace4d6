import assert from "node:assert/strict";
import { postJson } from "../support/stack.ts";
import { startSimServer } from "../../sim/server.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
const KEY = "sk-secret-key-never-logged-42";

Deno.test("one JSON log line per request with tokens and a key hash, never the key", async () => {
  const dir = await Deno.makeTempDir();
  const sim = await startSimServer({ itlMs: 1, ttftMs: 1 });
  try {
    await Deno.writeTextFile(
      `${dir}/spec.yaml`,
      `models:\n  m:\n    servers: ["${sim.url}"]\nplugins:\n  - name: auth\n` +
        `    options: { keys: [{ key: "${KEY}", name: team }] }\n  - logging\n`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", CONFIG, "-A", MAIN, "--config", `${dir}/spec.yaml`, "--port", "0"]
        .concat(["--host", "127.0.0.1", "--log-format", "json"]),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines: Record<string, unknown>[] = [];
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let url = "";
    while (!url) {
      const chunk = await reader.read();
      if (chunk.done) throw new Error(`main.ts exited:\n${buffer}`);
      buffer += chunk.value;
      url = /listening on \\?"?(http:\/\/[^\s"\\]+)/.exec(buffer)?.[1] ?? "";
    }
    const headers = { authorization: `Bearer ${KEY}` };
    const plain = await postJson(`${url}/v1/completions`, {
      model: "m",
      prompt: "x",
      max_tokens: 3,
    }, headers);
    await plain.text();
    const streamed = await postJson(`${url}/v1/completions`, {
      model: "m",
      prompt: "x",
      max_tokens: 2,
      stream: true,
      stream_options: { include_usage: true },
    }, headers);
    await streamed.text();
    const refused = await postJson(`${url}/v1/completions`, { model: "m" }, {
      authorization: "Bearer sk-wrong-key-0000000",
    });
    await refused.text();
    child.kill("SIGTERM");
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer += chunk.value;
    }
    await child.stderr.cancel();
    assert.equal((await child.status).code, 0);
    assert.ok(!buffer.includes(KEY), "the key appears in the logs");
    assert.ok(!buffer.includes("sk-wrong-key"), "a wrong key appears in the logs");
    for (const line of buffer.split("\n").filter(Boolean)) lines.push(JSON.parse(line));
    const requests = lines.filter((line) => line["logger"] === "llmstream.request");
    assert.equal(requests.length, 3);
    const [first, second, third] = requests.map((line) =>
      line["properties"] as Record<string, unknown>
    );
    assert.equal(first!["status"], 200);
    assert.equal(first!["model"], "m");
    assert.equal(first!["server"], sim.url);
    assert.equal(first!["completionTokens"], 3);
    assert.equal(first!["attempts"], 1);
    assert.match(String(first!["keyHash"]), /^[0-9a-f]{12}$/);
    assert.equal(typeof first!["durationMs"], "number");
    assert.equal(typeof first!["requestId"], "string");
    assert.equal(second!["completionTokens"], 2);
    assert.equal(typeof second!["ttftMs"], "number");
    assert.equal(third!["status"], 401);
    assert.notEqual(third!["keyHash"], first!["keyHash"]);
    assert.ok(lines.some((line) => String(line["message"]).includes("listening on")));
  } finally {
    await sim.close();
    await Deno.remove(dir, { recursive: true });
  }
});
