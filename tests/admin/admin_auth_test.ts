import assert from "node:assert/strict";
import { isLoopback, tokensMatch } from "../../admin/auth.ts";
import { handleRequest, startGateway } from "../../gateway/server.ts";
import { ask, withAdminStack } from "../support/admin_stack.ts";

const TOKEN = "s3cret-admin-token";

function spec(urls: string[]): string {
  Deno.env.set("LLMSTREAM_TEST_ADMIN_TOKEN", TOKEN);
  return `models:
  gpt-4:
    servers: ["${urls[0]}"]
admin:
  token: \${LLMSTREAM_TEST_ADMIN_TOKEN} # from the environment, never in git
`;
}

function plainSpec(urls: string[]): string {
  return `models:\n  gpt-4:\n    servers: ["${urls[0]}"]\n`;
}

Deno.test("with a token in the spec: 401 without it or with a wrong one, 200 with it", async () => {
  await withAdminStack({ spec }, async (stack) => {
    const cases: [HeadersInit, number, string?][] = [
      [{}, 401, "missing_admin_token"],
      [{ authorization: `Basic ${btoa(`admin:${TOKEN}`)}` }, 401, "missing_admin_token"],
      [{ authorization: "Bearer wrong" }, 401, "invalid_admin_token"],
      [{ authorization: `Bearer ${TOKEN}x` }, 401, "invalid_admin_token"],
      [{ authorization: `Bearer ${TOKEN}` }, 200],
      [{ authorization: `bearer  ${TOKEN}` }, 200],
    ];
    for (const [headers, status, code] of cases) {
      const response = await stack.admin("GET", "/admin/models", undefined, headers);
      assert.equal(response.status, status, JSON.stringify(headers));
      if (code) {
        assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="llmstream-admin"');
        const { error } = await response.json();
        assert.equal(error.type, "authentication_error");
        assert.equal(error.code, code);
      } else {
        await response.body?.cancel();
      }
    }
    // Unknown admin paths ask for the token too: nothing is told to strangers.
    assert.equal((await stack.admin("GET", "/admin/nothing")).status, 401);
    // Inference needs no admin token, and admin calls never reach a server.
    assert.equal((await ask(stack, "gpt-4")).status, 200);
    const received = stack.sims.map((sim) => sim.state().received);
    const created = await stack.admin(
      "POST",
      "/admin/models",
      { model_name: "gpt-neo", servers: [stack.sims[1]!.url] },
      { authorization: `Bearer ${TOKEN}` },
    );
    assert.equal(created.status, 201);
    await created.body?.cancel();
    assert.deepEqual(stack.sims.map((sim) => sim.state().received), received);
    // The written-back file keeps the reference, never the secret.
    const text = await Deno.readTextFile(stack.path);
    assert.match(text, /token: \$\{LLMSTREAM_TEST_ADMIN_TOKEN\} # from the environment/);
    assert.doesNotMatch(text, new RegExp(TOKEN));
  });
});

Deno.test("LLMSTREAM_ADMIN_TOKEN is the token when the spec sets none", async () => {
  const env = (name: string) => name === "LLMSTREAM_ADMIN_TOKEN" ? "from-env" : undefined;
  await withAdminStack({ spec: plainSpec, control: { env } }, async (stack) => {
    assert.equal((await stack.admin("GET", "/admin/servers")).status, 401);
    const ok = await stack.admin("GET", "/admin/servers", undefined, {
      authorization: "Bearer from-env",
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  });
});

Deno.test("with no token, only loopback clients are answered", async () => {
  await withAdminStack({ spec: plainSpec, control: { env: () => undefined } }, async (stack) => {
    const loopback = await stack.admin("GET", "/admin/models");
    assert.equal(loopback.status, 200);
    await loopback.body?.cancel();
    // The gateway's own handler, given a client address that is not loopback.
    const remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "10.1.2.3", port: 40000 };
    const routes = [stack.control.routes];
    for (const addr of [remoteAddr, undefined]) {
      const response = await handleRequest(
        stack.gateway,
        new Request("http://gateway/admin/models"),
        addr ? { routes, remoteAddr: addr } : { routes },
      );
      assert.equal(response.status, 403);
      const { error } = await response.json();
      assert.equal(error.code, "admin_loopback_only");
      assert.match(error.message, /set admin\.token in the spec or LLMSTREAM_ADMIN_TOKEN/);
    }
  });
});

/**
 * A non-loopback IPv4 address of this machine, if it has one. `Deno.networkInterfaces()` needs a
 * permission the test task does not grant, so a child `deno eval` (which has it) asks.
 */
function externalAddress(): string | undefined {
  const script = "console.log(JSON.stringify(Deno.networkInterfaces()" +
    ".filter((nic) => nic.family === 'IPv4' && !nic.address.startsWith('127.'))" +
    ".map((nic) => nic.address)))";
  const output = new Deno.Command(Deno.execPath(), { args: ["eval", script], stderr: "null" })
    .outputSync();
  if (!output.success) return undefined;
  const addresses: unknown = JSON.parse(new TextDecoder().decode(output.stdout));
  return Array.isArray(addresses) && typeof addresses[0] === "string" ? addresses[0] : undefined;
}

const external = externalAddress();

Deno.test({
  name: "with no token, a client on a real non-loopback address gets 403",
  ignore: external === undefined,
  async fn() {
    await withAdminStack({ spec: plainSpec, control: { env: () => undefined } }, async (stack) => {
      const wide = startGateway(stack.gateway, {
        hostname: "0.0.0.0",
        port: 0,
        routes: [stack.control.routes],
      });
      try {
        const far = await fetch(`http://${external}:${wide.port}/admin/models`);
        assert.equal(far.status, 403);
        assert.equal((await far.json()).error.code, "admin_loopback_only");
        const near = await fetch(`http://127.0.0.1:${wide.port}/admin/models`);
        assert.equal(near.status, 200);
        await near.body?.cancel();
        // Inference is not the admin API: it answers on any address.
        const models = await fetch(`http://${external}:${wide.port}/v1/models`);
        assert.equal(models.status, 200);
        await models.body?.cancel();
      } finally {
        await wide.close();
      }
    });
  },
});

Deno.test("tokens are compared by their SHA-256 digests; loopback is 127/8 and ::1", () => {
  assert.equal(tokensMatch("abc", "abc"), true);
  assert.equal(tokensMatch("abc", "abd"), false);
  assert.equal(tokensMatch("abc", "abcd"), false);
  assert.equal(tokensMatch("abc", ""), false);
  const tcp = (hostname: string): Deno.NetAddr => ({ transport: "tcp", hostname, port: 1 });
  for (const host of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]) {
    assert.equal(isLoopback(tcp(host)), true, host);
  }
  for (const host of ["10.0.0.1", "192.0.2.2", "::", "::ffff:10.0.0.1", "1270.0.0.1", "fe80::1"]) {
    assert.equal(isLoopback(tcp(host)), false, host);
  }
  assert.equal(isLoopback(undefined), false);
});
