/**
 * The admin REST API: list, add, change and remove models and their servers at runtime, and show
 * the servers' live state. Every change goes through the spec store, so it is validated as a file
 * would be, written back to the spec file and put in force, or refused with nothing changed.
 *
 * | method | path                                 | body                                    |
 * | ------ | ------------------------------------ | --------------------------------------- |
 * | GET    | `/admin/models`                      |                                         |
 * | POST   | `/admin/models`                      | `{model_name, servers, strategy?, ...}` |
 * | GET    | `/admin/models/{name}`               |                                         |
 * | PUT    | `/admin/models/{name}`               | `{servers?, strategy?, ...}`            |
 * | DELETE | `/admin/models/{name}`               |                                         |
 * | GET    | `/admin/models/{name}/servers`       |                                         |
 * | POST   | `/admin/models/{name}/servers`       | `{url, weight?}`                        |
 * | DELETE | `/admin/models/{name}/servers?url=U` |                                         |
 * | GET    | `/admin/servers`                     |                                         |
 *
 * @module
 */
import { z } from "zod";
import type { Spec } from "../config/schema.ts";
import type { SpecStore, UpdateResult } from "../config/store.ts";
import { HttpError } from "../common/errors.ts";
import type { Gateway } from "../gateway/gateway.ts";
import type { RouteHandler } from "../gateway/server.ts";
import { AdminAuth } from "./auth.ts";
import { jsonResponse, PERSISTED_HEADER, readBody, storeFailure } from "./http.ts";
import { parseSpecDocument, type SpecDocument } from "./spec_document.ts";
import { type ModelView, serverViews } from "./views.ts";

const createBody = z.object({ model_name: z.string().min(1) }).catchall(z.unknown());
const updateBody = z.record(z.string(), z.unknown()).refine(
  (fields) => Object.keys(fields).length > 0,
  "give at least one field to change, e.g. servers or strategy",
);
const serverBody = z.object({ url: z.string().min(1) }).catchall(z.unknown());

/** Options for {@link createAdminRoutes}. */
export interface AdminRoutesOptions {
  /** The spec store every change goes through. */
  store: SpecStore;
  /** Who may call (default: a check reading `admin.token` and `LLMSTREAM_ADMIN_TOKEN`). */
  auth?: AdminAuth;
}

type Target =
  | { kind: "models" | "servers" }
  | { kind: "model" | "model_servers"; name: string };

const METHODS: Record<Target["kind"], readonly string[]> = {
  models: ["GET", "POST"],
  servers: ["GET"],
  model: ["GET", "PUT", "DELETE"],
  model_servers: ["GET", "POST", "DELETE"],
};

/**
 * Creates the admin API's route handler: it answers every path under `/admin` (after checking
 * the caller) and leaves the rest to the gateway.
 *
 * @param gateway The running gateway.
 * @param options The spec store and the caller check.
 * @returns A handler for `startGateway(gateway, { routes: [handler] })`.
 * @example
 * ```ts
 * const routes = createAdminRoutes(gateway, { store });
 * startGateway(gateway, { port: 8000, routes: [routes] });
 * ```
 */
export function createAdminRoutes(gateway: Gateway, options: AdminRoutesOptions): RouteHandler {
  const auth = options.auth ?? new AdminAuth(gateway);
  const api = new AdminApi(gateway, options.store);
  return (context) => {
    const { request, path } = context;
    if (path !== "/admin" && !path.startsWith("/admin/")) return undefined;
    auth.check(request, context.remoteAddr);
    return api.handle(request, path);
  };
}

class AdminApi {
  readonly #gateway: Gateway;
  readonly #store: SpecStore;

  constructor(gateway: Gateway, store: SpecStore) {
    this.#gateway = gateway;
    this.#store = store;
  }

  async handle(request: Request, path: string): Promise<Response> {
    const target = this.#resolve(path);
    const allowed = METHODS[target.kind];
    if (!allowed.includes(request.method)) {
      throw new HttpError(
        405,
        "invalid_request_error",
        `Method "${request.method}" is not allowed on "${path}": use ${allowed.join(", ")}`,
        { code: "method_not_allowed", headers: { allow: allowed.join(", ") } },
      );
    }
    const method = request.method;
    switch (target.kind) {
      case "servers":
        return jsonResponse({ servers: serverViews(this.#gateway) }, 200);
      case "models":
        return method === "GET"
          ? jsonResponse({ models: this.#gateway.spec.models }, 200)
          : await this.#createModel(request);
      case "model":
        if (method === "GET") return jsonResponse(this.#model(target.name), 200);
        return method === "PUT"
          ? await this.#updateModel(request, target.name)
          : await this.#deleteModel(target.name);
      case "model_servers":
        if (method === "GET") {
          return jsonResponse({ servers: this.#model(target.name).servers }, 200);
        }
        return method === "POST"
          ? await this.#addServer(request, target.name)
          : await this.#removeServer(request, target.name);
    }
  }

  async #createModel(request: Request): Promise<Response> {
    const { model_name: name, ...model } = await readBody(request, createBody);
    const result = await this.#change((doc, spec) => {
      if (Object.hasOwn(spec.models, name)) {
        throw new HttpError(
          409,
          "invalid_request_error",
          `Model "${name}" already exists: change it with PUT /admin/models/${
            encodeURIComponent(name)
          }`,
          { code: "model_exists", param: "model_name" },
        );
      }
      doc.setModel(name, model);
    });
    return this.#answer(result, 201, { model: this.#model(name, result.loaded.spec) }, {
      location: `/admin/models/${encodeURIComponent(name)}`,
    });
  }

  async #updateModel(request: Request, name: string): Promise<Response> {
    const { model_name: rename, ...fields } = await readBody(request, updateBody);
    if (rename !== undefined && rename !== name) {
      throw new HttpError(
        422,
        "invalid_request_error",
        `Renaming model "${name}" to "${String(rename)}" is not supported: add the new model and ` +
          "delete the old one",
        { code: "invalid_body", param: "model_name" },
      );
    }
    const result = await this.#change((doc, spec) => {
      this.#known(spec, name);
      for (const [key, value] of Object.entries(fields)) {
        doc.setModelKey(name, key, value === null ? undefined : value);
      }
    });
    return this.#answer(result, 200, { model: this.#model(name, result.loaded.spec) });
  }

  async #deleteModel(name: string): Promise<Response> {
    const result = await this.#change((doc, spec) => {
      this.#known(spec, name);
      doc.deleteModel(name);
    });
    return this.#answer(result, 200, { deleted: name });
  }

  async #addServer(request: Request, name: string): Promise<Response> {
    const { url, ...rest } = await readBody(request, serverBody);
    const result = await this.#change((doc, spec) => {
      const model = this.#known(spec, name);
      const wanted = normalizeUrl(url);
      if (model.servers.some((server) => server.url === wanted)) {
        throw new HttpError(
          409,
          "invalid_request_error",
          `Server "${wanted}" is already a server of model "${name}"`,
          { code: "server_exists", param: "url" },
        );
      }
      doc.appendServer(name, Object.keys(rest).length === 0 ? url : { url, ...rest });
    });
    return this.#answer(result, 201, { model: this.#model(name, result.loaded.spec) });
  }

  async #removeServer(request: Request, name: string): Promise<Response> {
    const url = new URL(request.url).searchParams.get("url");
    if (!url) {
      throw new HttpError(
        400,
        "invalid_request_error",
        `Name the server to remove: DELETE /admin/models/${
          encodeURIComponent(name)
        }/servers?url=...`,
        { code: "missing_parameter", param: "url" },
      );
    }
    const result = await this.#change((doc, spec) => {
      const model = this.#known(spec, name);
      const wanted = normalizeUrl(url);
      const index = model.servers.findIndex((server) => server.url === wanted);
      if (index < 0) {
        const urls = model.servers.map((server) => `"${server.url}"`).join(", ") || "(none)";
        throw new HttpError(
          404,
          "not_found_error",
          `Server "${wanted}" is not a server of model "${name}": its servers are ${urls}`,
          { code: "server_not_found", param: "url" },
        );
      }
      doc.deleteServer(name, index);
    });
    return this.#answer(result, 200, { model: this.#model(name, result.loaded.spec) });
  }

  /** Runs an edit of the raw spec through the store; store failures become HTTP errors. */
  async #change(edit: (doc: SpecDocument, spec: Spec) => void): Promise<UpdateResult> {
    try {
      return await this.#store.update(({ text, format, spec }) => {
        const doc = parseSpecDocument(text, format);
        edit(doc, spec);
        return doc.toString();
      });
    } catch (error) {
      throw storeFailure(error);
    }
  }

  #answer(
    result: UpdateResult,
    status: number,
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Response {
    return jsonResponse(
      { ...body, persisted: result.persisted, ...(result.note && { note: result.note }) },
      status,
      { ...headers, [PERSISTED_HEADER]: String(result.persisted) },
    );
  }

  /** A model as a spec has it, with its name; 404 when unknown. */
  #model(name: string, spec: Spec = this.#gateway.spec): ModelView {
    return { name, ...this.#known(spec, name) };
  }

  #known(spec: Spec, name: string): Spec["models"][string] {
    const model = Object.hasOwn(spec.models, name) ? spec.models[name] : undefined;
    if (model) return model;
    const available = Object.keys(spec.models).map((known) => `"${known}"`).join(", ");
    throw new HttpError(
      404,
      "not_found_error",
      `Unknown model "${name}": available models are ${available || "(none)"}`,
      { code: "model_not_found" },
    );
  }

  /** Maps a path to a target; model names may be URL-encoded and may contain `/` and `.`. */
  #resolve(path: string): Target {
    if (path === "/admin/models") return { kind: "models" };
    if (path === "/admin/servers") return { kind: "servers" };
    const prefix = "/admin/models/";
    if (path.startsWith(prefix)) {
      const rest = path.slice(prefix.length);
      const name = decode(rest);
      if (Object.hasOwn(this.#gateway.spec.models, name)) return { kind: "model", name };
      if (rest.endsWith("/servers")) {
        return { kind: "model_servers", name: decode(rest.slice(0, -8)) };
      }
      return { kind: "model", name };
    }
    throw new HttpError(404, "not_found_error", `Unknown path "${path}"`, {
      code: "unknown_path",
    });
  }
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(
      400,
      "invalid_request_error",
      `The path "${segment}" is not valid URL encoding`,
      {
        code: "invalid_path",
      },
    );
  }
}

/** A server URL as the spec stores it: trimmed, without trailing slashes. */
function normalizeUrl(url: string): string {
  return url.trim().replace(/\/+$/, "");
}
