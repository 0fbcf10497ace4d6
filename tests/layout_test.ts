/**
 * The tree keeps its shape: imports between the product's folders run one way (no circles), the
 * plugin and strategy contracts do not reach into the gateway, no folder grows past 15 files, and
 * file names are snake_case with no `index.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
/** The product's folders, each above the ones it may import (see DEVELOPERS.md). */
const LAYERS: readonly (readonly string[])[] = [
  ["main.ts"],
  ["workers"],
  ["admin"],
  ["gateway"],
  ["fleet"],
  ["upstream", "scrape", "config"],
  ["plugins", "strategies"],
  ["common"],
];
const IMPORT = /(?:from|import)\s*\(?\s*"(\.\.?\/[^"]+)"/g;

async function sourceFiles(dir: URL, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = prefix + entry.name;
    if (entry.isDirectory) {
      out.push(...await sourceFiles(new URL(`${entry.name}/`, dir), `${path}/`));
    } else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

function topOf(path: string): string {
  return path.includes("/") ? path.slice(0, path.indexOf("/")) : path;
}

async function folderImports(): Promise<Map<string, Set<string>>> {
  const edges = new Map<string, Set<string>>();
  for (const folder of LAYERS.flat()) {
    const files = folder.endsWith(".ts")
      ? [folder]
      : (await sourceFiles(new URL(`${folder}/`, ROOT))).map((file) => `${folder}/${file}`);
    for (const file of files) {
      const text = await Deno.readTextFile(new URL(file, ROOT));
      for (const match of text.matchAll(IMPORT)) {
        const target = new URL(match[1]!, new URL(file, ROOT)).pathname.slice(ROOT.pathname.length);
        const from = topOf(file);
        const to = topOf(target);
        if (from === to) continue;
        if (!edges.has(from)) edges.set(from, new Set());
        edges.get(from)!.add(`${to}\t${file}`);
      }
    }
  }
  return edges;
}

Deno.test("layout: imports between folders run one way, downwards", async () => {
  const rank = new Map<string, number>();
  LAYERS.forEach((layer, index) => layer.forEach((folder) => rank.set(folder, index)));
  const upward: string[] = [];
  for (const [from, targets] of await folderImports()) {
    for (const entry of targets) {
      const [to, file] = entry.split("\t") as [string, string];
      if (to === "sim" && from === "main.ts") continue; // the demo fleet
      const target = rank.get(to);
      if (target === undefined || target <= rank.get(from)!) upward.push(`${file} -> ${to}/`);
    }
  }
  assert.deepEqual(upward, [], "imports that run up or sideways between folders");
});

Deno.test("layout: plugins and strategies see contracts, not the gateway", async () => {
  for (const folder of ["plugins", "strategies"]) {
    for (const file of await sourceFiles(new URL(`${folder}/`, ROOT))) {
      const text = await Deno.readTextFile(new URL(`${folder}/${file}`, ROOT));
      for (const match of text.matchAll(IMPORT)) {
        assert.ok(
          !/\.\.\/(gateway|fleet|admin|config\/(store|load))/.test(match[1]!),
          `${folder}/${file} imports "${match[1]}"`,
        );
      }
    }
  }
});

Deno.test("layout: folders stay small and names are snake_case", async () => {
  const crowded: string[] = [];
  const badNames: string[] = [];
  async function walk(dir: URL, path: string): Promise<void> {
    let files = 0;
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith(".") || ["node_modules", "dist", "results"].includes(entry.name)) {
        continue;
      }
      if (entry.isDirectory) await walk(new URL(`${entry.name}/`, dir), `${path}${entry.name}/`);
      else if (entry.name.endsWith(".ts")) {
        files++;
        if (entry.name === "index.ts" || !/^_?[a-z0-9]+(_[a-z0-9]+)*\.ts$/.test(entry.name)) {
          badNames.push(path + entry.name);
        }
      }
    }
    if (path !== "" && files > 15) crowded.push(`${path} (${files} files)`);
  }
  await walk(ROOT, "");
  assert.deepEqual(crowded, [], "folders over 15 source files");
  assert.deepEqual(badNames, [], "file names that are not snake_case");
});
