import assert from "node:assert/strict";
import { startControlPlane } from "../../admin/control_plane.ts";
import { ask, withAdminStack } from "../support/admin_stack.ts";
import { startStack } from "../support/stack.ts";

function spec(urls: string[]): string {
  return `# The fleet.
models:
  gpt-4:
    servers:
      - ${urls[0]} # first box
metrics_update_interval: 10
`;
}

const NEO = { model_name: "gpt-neo", servers: ["http://node5:8000"], strategy: "random" };

Deno.test("a failed write leaves the old file, the old running config, and says so", async () => {
  await withAdminStack({ spec }, async (stack) => {
    const before = await Deno.readTextFile(stack.path);
    // Tests run as root, which permission bits do not stop; a directory where the store puts its
    // temporary file makes the write fail for anyone (open() gives EISDIR).
    const blocker = `${stack.dir}/.config.yaml.llmstream-${Deno.pid}.tmp`;
    await Deno.mkdir(blocker);
    await Deno.writeTextFile(`${blocker}/keep`, "");
    const response = await stack.admin("POST", "/admin/models", NEO);
    assert.equal(response.status, 503);
    const { error } = await response.json();
    assert.equal(error.code, "spec_write_failed");
    assert.match(error.message, /^The change was not applied: Writing ".*config\.yaml" failed/);
    assert.match(error.message, /the spec file and the running config are unchanged$/);
    assert.equal(await Deno.readTextFile(stack.path), before);
    assert.equal(stack.gateway.routes.has("gpt-neo"), false);
    assert.equal((await ask(stack, "gpt-neo")).status, 404);
    assert.equal((await ask(stack, "gpt-4")).status, 200);

    await Deno.remove(blocker, { recursive: true });
    const retried = await stack.admin("POST", "/admin/models", NEO);
    assert.equal(retried.status, 201);
    await retried.body?.cancel();
    assert.match(await Deno.readTextFile(stack.path), /gpt-neo:/);
    assert.deepEqual([...Deno.readDirSync(stack.dir)].map((entry) => entry.name), ["config.yaml"]);
  });
});

Deno.test("--no-write-back keeps changes in memory, and responses say so", async () => {
  await withAdminStack({ spec, control: { writeBack: false } }, async (stack) => {
    const before = await Deno.readTextFile(stack.path);
    const response = await stack.admin("POST", "/admin/models", NEO);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("x-llmstream-persisted"), "false");
    const body = await response.json();
    assert.equal(body.persisted, false);
    assert.match(body.note, /not saved: write-back is off \(--no-write-back\)/);
    assert.equal(await Deno.readTextFile(stack.path), before);
    assert.equal(stack.gateway.routes.has("gpt-neo"), true);
    // A later change builds on the one in memory.
    const added = await stack.admin("POST", "/admin/models/gpt-neo/servers", {
      url: "http://n6:1",
    });
    assert.equal((await added.json()).model.servers.length, 2);
  });
});

Deno.test("a read-only spec file keeps changes in memory, and responses say so", async () => {
  const prepare = async (dir: string, text: string): Promise<string> => {
    await Deno.writeTextFile(`${dir}/config.yaml`, text);
    await Deno.chmod(`${dir}/config.yaml`, 0o444);
    return `${dir}/config.yaml`;
  };
  await withAdminStack({ spec, prepare }, async (stack) => {
    assert.match(stack.control.store.memoryReason ?? "", /is read-only/);
    const before = await Deno.readTextFile(stack.path);
    const response = await stack.admin("DELETE", "/admin/models/gpt-4");
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      deleted: "gpt-4",
      persisted: false,
      note: `The change is in force but not saved: the spec file "${stack.path}" is read-only; ` +
        "a restart loses it",
    });
    assert.equal(await Deno.readTextFile(stack.path), before);
    assert.equal((await ask(stack, "gpt-4")).status, 404);
  });
});

Deno.test("demo mode (no spec file): admin changes live in memory", async () => {
  let control: Awaited<ReturnType<typeof startControlPlane>> | undefined;
  const stack = await startStack({
    sims: [{ itlMs: 1, ttftMs: 1 }],
    spec: (urls) => `models:\n  gpt-4:\n    servers: ["${urls[0]}"]\n`,
    routes: async (gateway, text) => {
      control = await startControlPlane(gateway, { text });
      return [control.routes];
    },
  });
  try {
    assert.equal(control!.watcher, undefined);
    const response = await fetch(`${stack.url}/admin/models`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...NEO, servers: [stack.sims[0]!.url] }),
    });
    assert.equal(response.status, 201);
    assert.match((await response.json()).note, /there is no spec file \(demo mode\)/);
    assert.equal((await ask(stack, "gpt-neo")).status, 200);
  } finally {
    await control?.close();
    await stack.close();
  }
});

Deno.test("an admin change never overwrites a hand edit that does not validate", async () => {
  await withAdminStack({ spec }, async (stack) => {
    const broken = (await Deno.readTextFile(stack.path)).replace(
      "gpt-4:",
      "gpt-4:\n    colour: red",
    );
    await Deno.writeTextFile(stack.path, broken);
    const refused = await stack.admin("POST", "/admin/models", NEO);
    assert.equal(refused.status, 409);
    const { error } = await refused.json();
    assert.equal(error.code, "spec_conflict");
    assert.match(error.message, /models\."gpt-4": unknown key "colour"/);
    assert.equal(await Deno.readTextFile(stack.path), broken);
    assert.equal((await ask(stack, "gpt-4")).status, 200);

    // Once the edit is valid, the admin change applies on top of it (nothing is lost).
    const fixed = broken.replace("    colour: red\n", "    strategy: random\n");
    await Deno.writeTextFile(stack.path, fixed);
    const created = await stack.admin("POST", "/admin/models", NEO);
    assert.equal(created.status, 201);
    await created.body?.cancel();
    assert.equal(stack.gateway.spec.models["gpt-4"]!.strategy, "random");
    const text = await Deno.readTextFile(stack.path);
    assert.match(text, /strategy: random\n/);
    assert.match(text, /gpt-neo:/);
    assert.equal(stack.changes.filter((change) => change.outcome === "applied").length, 2);
  });
});
