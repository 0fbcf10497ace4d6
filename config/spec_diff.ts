/**
 * Describes the difference between two specs in one readable line, for the log line written on
 * every config change. Secrets (the admin token) are named, never shown.
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";
import type { ModelSpec, Spec } from "./schema.ts";

/**
 * Describes what changed between two specs.
 *
 * @param before The spec in force.
 * @param after The new spec.
 * @returns E.g. `added model "gpt-neo"; model "gpt-4": servers +http://c:8000, strategy
 *   round_robin -> least_connection`, or `no change`.
 * @example
 * ```ts
 * logger.info("Config changed: {summary}", { summary: describeSpecChange(old, next) });
 * ```
 */
export function describeSpecChange(before: Spec, after: Spec): string {
  const parts: string[] = [];
  const names = new Set([...Object.keys(before.models), ...Object.keys(after.models)]);
  for (const name of names) {
    const old = before.models[name];
    const next = after.models[name];
    if (!old && next) parts.push(`added model "${name}" (${serverList(next)})`);
    else if (old && !next) parts.push(`removed model "${name}"`);
    else if (old && next && !isDeepStrictEqual(old, next)) {
      parts.push(`model "${name}": ${describeModelChange(old, next)}`);
    }
  }
  const { models: _a, admin: oldAdmin, ...oldRest } = before;
  const { models: _b, admin: newAdmin, ...newRest } = after;
  for (const key of new Set([...Object.keys(oldRest), ...Object.keys(newRest)])) {
    const old = (oldRest as Record<string, unknown>)[key];
    const next = (newRest as Record<string, unknown>)[key];
    if (!isDeepStrictEqual(old, next)) parts.push(`${key} ${short(old)} -> ${short(next)}`);
  }
  if (oldAdmin?.token !== newAdmin?.token) parts.push("admin token changed");
  return parts.length === 0 ? "no change" : parts.join("; ");
}

function describeModelChange(old: ModelSpec, next: ModelSpec): string {
  const parts: string[] = [];
  const oldUrls = new Map(old.servers.map((server) => [server.url, server]));
  const newUrls = new Map(next.servers.map((server) => [server.url, server]));
  const servers = [
    ...[...newUrls.keys()].filter((url) => !oldUrls.has(url)).map((url) => `+${url}`),
    ...[...oldUrls.keys()].filter((url) => !newUrls.has(url)).map((url) => `-${url}`),
    ...[...newUrls].filter(([url, server]) =>
      oldUrls.has(url) && !isDeepStrictEqual(oldUrls.get(url), server)
    ).map(([url, server]) => `~${url} ${short(server)}`),
  ];
  if (servers.length > 0) parts.push(`servers ${servers.join(" ")}`);
  for (const key of new Set([...Object.keys(old), ...Object.keys(next)])) {
    if (key === "servers") continue;
    const before = (old as Record<string, unknown>)[key];
    const after = (next as Record<string, unknown>)[key];
    if (!isDeepStrictEqual(before, after)) parts.push(`${key} ${short(before)} -> ${short(after)}`);
  }
  return parts.join(", ") || "server order";
}

function serverList(model: ModelSpec): string {
  return model.servers.map((server) => server.url).join(", ") || "no servers";
}

function short(value: unknown): string {
  if (value === undefined) return "(none)";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
