import assert from "node:assert/strict";
import { postJson, waitFor } from "../support/stack.ts";
import { startSimServer } from "../../sim/server.ts";

// `deno compile` needs the `denort` runtime, which it downloads unless DENORT_BIN points to one.
// This machine cannot download it, so the test runs only where DENORT_BIN is set.
const denort = Deno.env.get("DENORT_BIN");
const reason = "DENORT_BIN is not set: deno compile cannot fetch its denort runtime here";
if (!denort) console.log(`compile_test: skipped (${reason})`);

Deno.test({
  name: "deno compile makes one binary with built-in strategies and reads dropped-in ones",
  ignore: !denort,
  async fn() {
    const root = new URL("../..", import.meta.url).pathname;
    const dir = await Deno.makeTempDir();
    const sims = [await startSimServer({ itlMs: 1 }), await startSimServer({ itlMs: 1 })];
    try {
      const build = await new Deno.Command(Deno.execPath(), {
        args: ["task", "compile", "--output", `${dir}/llmstream`],
        cwd: root,
        env: { DENORT_BIN: denort! },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
      await Deno.mkdir(`${dir}/strategies`);
      await Deno.writeTextFile(
        `${dir}/strategies/always_second.ts`,
        "export default function create() { return { pick: (servers) => servers[1] }; }\n",
      );
      await Deno.writeTextFile(
        `${dir}/spec.json`,
        JSON.stringify({
          models: {
            builtin: { servers: sims.map((sim) => sim.url), strategy: "round_robin" },
            dropped: { servers: sims.map((sim) => sim.url), strategy: "always_second" },
          },
        }),
      );
      const child = new Deno.Command(`${dir}/llmstream`, {
        args: ["--config", "spec.json", "--host", "127.0.0.1", "--port", "0"],
        cwd: dir,
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      let log = "";
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      await waitFor(async () => {
        const chunk = await reader.read();
        log += chunk.value ?? "";
        return chunk.done || /listening on http/.test(log);
      }, { timeoutMs: 20_000, what: "the binary to listen" });
      const url = /listening on "?(http:\/\/[^\s"]+)/.exec(log)![1]!;
      try {
        for (const model of ["builtin", "builtin", "dropped"]) {
          const response = await postJson(`${url}/v1/completions`, { model, prompt: "x" });
          assert.equal(response.status, 200);
          await response.body?.cancel();
        }
        assert.deepEqual(sims.map((sim) => sim.state().received), [1, 2]);
      } finally {
        child.kill("SIGTERM");
        await child.status;
        await reader.cancel();
      }
    } finally {
      await Promise.all(sims.map((sim) => sim.close()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
