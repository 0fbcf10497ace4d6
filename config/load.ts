/**
 * Loads a spec: reads YAML or JSON (by file extension), substitutes `${VAR}` references, validates
 * with zod and resolves every model's strategy. All problems are reported together.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { type Spec, specSchema } from "./schema.ts";
import { StrategyCatalog } from "../strategies/loader.ts";
import type { StrategyFactory } from "../strategies/types.ts";
import { PluginCatalog } from "../plugins/loader.ts";
import type { PluginFactory } from "../plugins/types.ts";
import { errorLine } from "../common/errors.ts";

/** A spec that failed to load; `problems` lists every one, each starting with its path. */
export class SpecError extends Error {
  /** One line per problem, e.g. `models."gpt-4".strategy: unknown strategy "fastest"; ...`. */
  readonly problems: readonly string[];

  /**
   * Creates a spec error.
   *
   * @param source Where the spec came from (a path or "embedded demo spec").
   * @param problems One line per problem.
   */
  constructor(source: string, problems: readonly string[]) {
    super(`Invalid spec ${source}:\n  ${problems.join("\n  ")}`);
    this.name = "SpecError";
    this.problems = problems;
  }
}

/** A validated spec with each model's strategy factory resolved. */
export interface LoadedSpec {
  /** The validated spec. */
  readonly spec: Spec;
  /** Strategy factory per model name. */
  readonly factories: ReadonlyMap<string, StrategyFactory>;
  /** Plugin factory per entry of `spec.plugins`, in the same order. */
  readonly plugins: readonly PluginFactory[];
}

/** Options for {@link loadSpecFile} and {@link loadSpecText}. */
export interface LoadSpecOptions {
  /** Reads environment variables for `${VAR}`; defaults to `Deno.env.get`. */
  env?: (name: string) => string | undefined;
  /** Where strategy names are looked up; defaults to a catalog including the spec's folder. */
  catalog?: StrategyCatalog;
}

/**
 * Reads, validates and resolves a spec file.
 *
 * @param path Path to a `.yaml`, `.yml` or `.json` file.
 * @param options Environment and strategy catalog.
 * @returns The loaded spec.
 * @throws SpecError listing every problem.
 */
export async function loadSpecFile(
  path: string,
  options: LoadSpecOptions = {},
): Promise<LoadedSpec> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new SpecError(`"${path}"`, [`cannot read the file: ${errorLine(error)}`]);
  }
  const format = /\.json$/i.test(path) ? "json" : "yaml";
  return await loadSpecText(text, { ...options, format, source: path });
}

/** Options for {@link loadSpecText}. */
export interface LoadSpecTextOptions extends LoadSpecOptions {
  /** `json` or `yaml` (YAML also reads JSON). */
  format: "json" | "yaml";
  /** A path, for messages and for resolving relative strategy paths. */
  source?: string;
}

/**
 * Validates and resolves a spec given as text.
 *
 * @param text The spec's text.
 * @param options Format, source and environment.
 * @returns The loaded spec.
 * @throws SpecError listing every problem.
 */
export async function loadSpecText(
  text: string,
  options: LoadSpecTextOptions,
): Promise<LoadedSpec> {
  const source = options.source ? `"${options.source}"` : "(embedded)";
  let raw: unknown;
  try {
    raw = options.format === "json" ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new SpecError(source, [
      `cannot parse ${options.format.toUpperCase()}: ${errorLine(error)}`,
    ]);
  }
  const problems: string[] = [];
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const substituted = substituteEnv(raw, env, [], problems);
  const parsed = specSchema.safeParse(substituted);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...describeIssue(issue, []));
  }
  const baseDir = options.source ? dirname(options.source) : Deno.cwd();
  const catalog = options.catalog ?? new StrategyCatalog({ dirs: [`${baseDir}/strategies`] });
  const factories = new Map<string, StrategyFactory>();
  await Promise.all(
    strategyRefs(parsed.success ? parsed.data : substituted).map(async ([name, ref]) => {
      try {
        factories.set(name, await catalog.resolve(ref, baseDir));
      } catch (error) {
        problems.push(`${formatPath(["models", name, "strategy"])}: ${errorLine(error)}`);
      }
    }),
  );
  if (parsed.success) {
    for (const [name, model] of Object.entries(parsed.data.models)) {
      const factory = factories.get(name);
      try {
        factory?.({
          model: name,
          options: model.strategy_options,
          metricsInterval: parsed.data.metrics_update_interval,
        });
      } catch (error) {
        problems.push(`${formatPath(["models", name, "strategy_options"])}: ${errorLine(error)}`);
      }
    }
  }
  const plugins: PluginFactory[] = [];
  if (parsed.success) {
    const pluginCatalog = new PluginCatalog({ dirs: [`${baseDir}/plugins`] });
    for (const [index, plugin] of parsed.data.plugins.entries()) {
      try {
        plugins.push(await pluginCatalog.resolve(plugin.name, baseDir));
      } catch (error) {
        problems.push(`${formatPath(["plugins", index, "name"])}: ${errorLine(error)}`);
      }
    }
  }
  if (!parsed.success || problems.length > 0) throw new SpecError(source, problems.sort());
  return { spec: parsed.data, factories, plugins };
}

/** Each model's strategy reference, read from a validated or a raw (invalid) spec. */
function strategyRefs(spec: unknown): [string, string][] {
  const models = (spec as { models?: unknown } | null)?.models;
  if (models === null || typeof models !== "object") return [];
  return Object.entries(models).flatMap(([name, model]) => {
    const ref = (model as { strategy?: unknown } | null)?.strategy ?? "round_robin";
    return typeof ref === "string" && ref !== "" ? [[name, ref] as [string, string]] : [];
  });
}

/** Replaces `${VAR}` in every string of a parsed spec; a missing variable is a problem. */
function substituteEnv(
  value: unknown,
  env: (name: string) => string | undefined,
  path: (string | number)[],
  problems: string[],
): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_match, name: string) => {
      const found = env(name);
      if (found === undefined) {
        problems.push(`${formatPath(path)}: environment variable "${name}" is not set`);
        return "";
      }
      return found;
    });
  }
  if (Array.isArray(value)) {
    return value.map((item, index) => substituteEnv(item, env, [...path, index], problems));
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map((
        [key, item],
      ) => [key, substituteEnv(item, env, [...path, key], problems)]),
    );
  }
  return value;
}

/**
 * Describes a zod issue as `path: message` lines, naming the allowed keys for unknown ones. For a
 * union (a server as a string or an object), the branch matching the value's type explains.
 */
function describeIssue(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[]): string[] {
  const fullPath = [...prefix, ...issue.path];
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    const branch = issue.errors.find((issues) =>
      !issues.some((inner) => inner.code === "invalid_type" && inner.path.length === 0)
    );
    if (branch) return branch.flatMap((inner) => describeIssue(inner, fullPath));
  }
  const path = formatPath(fullPath);
  if (issue.code === "unrecognized_keys") {
    const allowed = allowedKeys(fullPath);
    const keys = issue.keys.map((key) => `"${key}"`).join(", ");
    return [
      `${path}: unknown key${issue.keys.length > 1 ? "s" : ""} ${keys}` +
      (allowed ? `; allowed: ${allowed.join(", ")}` : ""),
    ];
  }
  return [`${path}: ${issue.message}`];
}

/** The keys the schema allows at a path, found by walking the schema. */
function allowedKeys(path: readonly PropertyKey[]): string[] | undefined {
  let schema: z.ZodType = specSchema;
  for (const key of path) {
    schema = unwrap(schema);
    if (schema instanceof z.ZodObject) schema = schema.shape[String(key)] as z.ZodType;
    else if (schema instanceof z.ZodRecord) schema = schema.valueType as z.ZodType;
    else if (schema instanceof z.ZodArray) schema = schema.element as z.ZodType;
    else return undefined;
    if (!schema) return undefined;
  }
  schema = unwrap(schema);
  if (schema instanceof z.ZodUnion) {
    schema = schema.options.find((option) => option instanceof z.ZodObject) as z.ZodType;
  }
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : undefined;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  while (
    current instanceof z.ZodDefault || current instanceof z.ZodOptional ||
    current instanceof z.ZodPrefault
  ) {
    current = current.unwrap() as z.ZodType;
  }
  return current;
}

/**
 * Formats a path the way messages show it: `models."gpt-4".servers[0].url`.
 *
 * @param path Keys and indices.
 * @returns The formatted path, or `spec` for the root.
 */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "spec";
  let out = "";
  path.forEach((key, position) => {
    if (typeof key === "number") out += `[${key}]`;
    else if (position === 1 && path[0] === "models") out += `."${String(key)}"`;
    else out += position === 0 ? String(key) : `.${String(key)}`;
  });
  return out;
}

function dirname(path: string): string {
  const cut = path.lastIndexOf("/");
  if (cut < 0) return Deno.cwd();
  return cut === 0 ? "/" : path.slice(0, cut);
}
