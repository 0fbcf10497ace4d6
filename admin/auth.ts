/**
 * Who may use the admin API. With a token (the spec's `admin.token`, else the environment variable
 * `LLMSTREAM_ADMIN_TOKEN`), every call needs `Authorization: Bearer <token>`, compared in constant
 * time (both sides hashed with SHA-256, then every byte compared). Without a token, only clients
 * on loopback are answered.
 *
 * @module
 */
import { digestsEqual, sha256 } from "../common/digest.ts";
import { HttpError } from "../common/errors.ts";
import type { Gateway } from "../gateway/gateway.ts";

/** The environment variable read for the token when the spec sets none. */
export const ADMIN_TOKEN_ENV = "LLMSTREAM_ADMIN_TOKEN";

/** Options for {@link AdminAuth}. */
export interface AdminAuthOptions {
  /** Reads environment variables (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
}

/** Where the admin token comes from. */
export type AdminTokenSource = "spec" | "env" | "none";

/** Checks admin callers against the token in force. */
export class AdminAuth {
  readonly #gateway: Gateway;
  readonly #envToken: string | undefined;
  #digest: { token: string; digest: Uint8Array } | undefined;

  /**
   * Creates the check; the spec's token is read on every call, so reloads change it.
   *
   * @param gateway The running gateway (its spec's `admin.token`).
   * @param options Environment reader.
   */
  constructor(gateway: Gateway, options: AdminAuthOptions = {}) {
    this.#gateway = gateway;
    const env = options.env ?? ((name: string) => Deno.env.get(name));
    this.#envToken = env(ADMIN_TOKEN_ENV) || undefined;
  }

  /** Where the token in force comes from. */
  get source(): AdminTokenSource {
    if (this.#gateway.spec.admin?.token !== undefined) return "spec";
    return this.#envToken === undefined ? "none" : "env";
  }

  /**
   * Lets a request through or throws: 401 for a missing or wrong token, 403 for a client not on
   * loopback when no token is set.
   *
   * @param request The client's request.
   * @param remoteAddr The client's address (`undefined` counts as not loopback).
   * @throws HttpError 401 or 403.
   */
  check(request: Request, remoteAddr: Deno.Addr | undefined): void {
    const token = this.#gateway.spec.admin?.token ?? this.#envToken;
    if (token === undefined) {
      if (isLoopback(remoteAddr)) return;
      throw new HttpError(
        403,
        "permission_error",
        `The admin API answers only clients on loopback while no admin token is set; set ` +
          `admin.token in the spec or ${ADMIN_TOKEN_ENV} to use it from "${hostOf(remoteAddr)}"`,
        { code: "admin_loopback_only" },
      );
    }
    const header = request.headers.get("authorization") ?? "";
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    const challenge = { "www-authenticate": 'Bearer realm="llmstream-admin"' };
    if (!match) {
      throw new HttpError(
        401,
        "authentication_error",
        "The admin API needs a bearer token: send the header Authorization: Bearer <token>",
        { code: "missing_admin_token", headers: challenge },
      );
    }
    if (!this.#matches(token, match[1]!)) {
      throw new HttpError(401, "authentication_error", "The admin token is not valid", {
        code: "invalid_admin_token",
        headers: challenge,
      });
    }
  }

  #matches(token: string, given: string): boolean {
    if (this.#digest?.token !== token) this.#digest = { token, digest: sha256(token) };
    return digestsEqual(this.#digest.digest, sha256(given));
  }
}

/**
 * Compares two tokens in constant time: both are hashed with SHA-256, so the comparison takes
 * the same time whatever their lengths and wherever they differ.
 *
 * @param expected The configured token.
 * @param given The token a client sent.
 * @returns Whether they are equal.
 */
export function tokensMatch(expected: string, given: string): boolean {
  return digestsEqual(sha256(expected), sha256(given));
}

/**
 * Tells whether a client address is on loopback (127.0.0.0/8, `::1`, `::ffff:127.x.x.x`).
 *
 * @param addr The client's address.
 * @returns True for loopback TCP clients; false for anything else or no address.
 */
export function isLoopback(addr: Deno.Addr | undefined): boolean {
  if (!addr || (addr.transport !== "tcp" && addr.transport !== "udp")) return false;
  const host = addr.hostname.toLowerCase().replace(/^\[|\]$/g, "");
  if (host === "::1" || host === "0:0:0:0:0:0:0:1") return true;
  const v4 = host.startsWith("::ffff:") ? host.slice(7) : host;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

function hostOf(addr: Deno.Addr | undefined): string {
  if (!addr) return "an unknown address";
  return addr.transport === "tcp" || addr.transport === "udp" ? addr.hostname : addr.transport;
}
