import assert from "node:assert/strict";
import { type AdminStack, ask, waitForChange, withAdminStack } from "../support/admin_stack.ts";
import { postJson, totalInFlight, waitFor } from "../support/stack.ts";

const WATCH = { watch: true, debounceMs: 50 };

function spec(urls: string[], server = 0, extra = ""): string {
  return `# Hand-edited spec.
models:
  gpt-4:
    servers: ["${urls[server]}"]
${extra}metrics_update_interval: 10
`;
}

function urlsOf(stack: AdminStack): string[] {
  return stack.sims.map((sim) => sim.url);
}

/** Waits for the file change after the first `skip` outcomes to be applied. */
function applied(stack: AdminStack, skip: number) {
  return waitForChange(stack, (c) => c.source === "file" && c.outcome === "applied", {
    skip,
    what: "the edit to be applied",
  });
}

Deno.test("an editor's atomic save (rename over the file) is applied", async () => {
  await withAdminStack({ spec: (urls) => spec(urls), control: WATCH }, async (stack) => {
    const temp = `${stack.dir}/.config.yaml.swp`;
    await Deno.writeTextFile(temp, spec(urlsOf(stack), 1));
    await Deno.rename(temp, stack.path);
    const change = await applied(stack, 0);
    assert.match(change.summary, /model "gpt-4": servers \+http:\/\/127\.0\.0\.1:\d+ -http/);
    assert.equal((await ask(stack, "gpt-4")).sim, 1);
  });
});

Deno.test("an in-place write (as git checkout does) is applied", async () => {
  await withAdminStack({ spec: (urls) => spec(urls), control: WATCH }, async (stack) => {
    const extra = `  gpt-neo:\n    servers: ["${urlsOf(stack)[1]}"]\n`;
    await Deno.writeTextFile(stack.path, spec(urlsOf(stack), 0, extra));
    const change = await applied(stack, 0);
    assert.match(change.summary, /^added model "gpt-neo"/);
    assert.equal((await ask(stack, "gpt-neo")).sim, 1);
  });
});

Deno.test("an invalid edit is refused, the old config serves, the next valid edit applies", async () => {
  await withAdminStack({ spec: (urls) => spec(urls), control: WATCH }, async (stack) => {
    await Deno.writeTextFile(stack.path, spec(urlsOf(stack), 1).replace("servers", "servres"));
    const rejected = await waitForChange(stack, (c) => c.outcome === "rejected");
    assert.match(rejected.summary, /models\."gpt-4": unknown key "servres"/);
    assert.equal((await ask(stack, "gpt-4")).sim, 0);
    const skip = stack.changes.length;
    await Deno.writeTextFile(stack.path, spec(urlsOf(stack), 1));
    await applied(stack, skip);
    assert.equal((await ask(stack, "gpt-4")).sim, 1);
  });
});

Deno.test("a kubectl-style symlink swap of a mounted ConfigMap is applied", async () => {
  const prepare = async (dir: string, text: string): Promise<string> => {
    await Deno.mkdir(`${dir}/..2026_01_01_00_00_00.000000001`);
    await Deno.writeTextFile(`${dir}/..2026_01_01_00_00_00.000000001/config.yaml`, text);
    await Deno.symlink("..2026_01_01_00_00_00.000000001", `${dir}/..data`);
    await Deno.symlink("..data/config.yaml", `${dir}/config.yaml`);
    return `${dir}/config.yaml`;
  };
  await withAdminStack({ spec: (urls) => spec(urls), prepare, control: WATCH }, async (stack) => {
    // What the kubelet does: a new timestamped folder, a new link, renamed over `..data`.
    const next = "..2026_01_01_00_01_00.000000002";
    await Deno.mkdir(`${stack.dir}/${next}`);
    await Deno.writeTextFile(`${stack.dir}/${next}/config.yaml`, spec(urlsOf(stack), 1));
    await Deno.symlink(next, `${stack.dir}/..data_tmp`);
    await Deno.rename(`${stack.dir}/..data_tmp`, `${stack.dir}/..data`);
    await Deno.remove(`${stack.dir}/..2026_01_01_00_00_00.000000001`, { recursive: true });
    await applied(stack, 0);
    assert.equal((await ask(stack, "gpt-4")).sim, 1);
  });
});

Deno.test("the gateway's own write-backs do not reload the spec", async () => {
  await withAdminStack({ spec: (urls) => spec(urls), control: WATCH }, async (stack) => {
    const response = await stack.admin("POST", "/admin/models/gpt-4/servers", {
      url: urlsOf(stack)[1],
    });
    assert.equal(response.status, 201);
    await response.body?.cancel();
    // The rename of the write-back is seen, read, and found to be what is already in force.
    await waitForChange(stack, (c) => c.source === "file" && c.outcome === "unchanged", {
      what: "the watcher to look at the written file",
    });
    assert.equal(stack.changes[0]?.source, "api");
    assert.equal(
      stack.changes.filter((c) => c.source === "file" && c.outcome !== "unchanged").length,
      0,
    );
  });
});

Deno.test("a stream in flight survives a reload that removes its server", async () => {
  await withAdminStack({ spec: (urls) => spec(urls), control: WATCH }, async (stack) => {
    const gate = stack.sims[0]!.gate();
    const stream = await postJson(`${stack.url}/v1/chat/completions`, {
      model: "gpt-4",
      messages: [{ role: "user", content: "a long story" }],
      max_tokens: 20,
      stream: true,
    });
    const reader = stream.body!.getReader();
    const first = await reader.read();
    assert.equal(first.done, false);
    await Deno.writeTextFile(stack.path, spec(urlsOf(stack), 1));
    await applied(stack, 0);
    assert.equal(stack.gateway.pool.get(urlsOf(stack)[0]!)?.inFlight, 1);
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
