/**
 * Checks the project's own documentation: every relative link in README.md, DEVELOPERS.md and
 * docs/**\/*.md points at a file that exists, and a link with `#anchor` into a markdown file names
 * a heading of that file (by GitHub's slug). No network: external links are not checked.
 *
 * Run alone with `deno task docs:links`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** One markdown file, by its path relative to the root. */
interface Doc {
  readonly path: string;
  readonly text: string;
}

/** Lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): [number, string][] {
  const lines: [number, string][] = [];
  let fence: string | undefined;
  text.split("\n").forEach((line, index) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (marker !== undefined) {
      if (fence === undefined) fence = marker[0]!;
      else if (marker[0] === fence) fence = undefined;
      return;
    }
    if (fence === undefined) lines.push([index + 1, line]);
  });
  return lines;
}

/** GitHub's anchor for a heading's text: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // links and images keep their text
    .replace(/<[^>]+>/g, "") // inline HTML
    .replace(/[`*]/g, "")
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
}

/** Every anchor a markdown file offers: heading slugs (numbered when repeated) and HTML ids. */
function anchors(text: string): Set<string> {
  const found = new Set<string>();
  const seen = new Map<string, number>();
  for (const [, line] of proseLines(text)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading !== undefined) {
      const base = slug(heading);
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      found.add(count === 0 ? base : `${base}-${count}`);
    }
    for (const match of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) found.add(match[1]!);
  }
  return found;
}

/** The link targets of one line, code spans left out. */
function linkTargets(line: string): string[] {
  const prose = line.replace(/(`+)[^`]*?\1/g, "code");
  const targets: string[] = [];
  for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    targets.push(match[1]!);
  }
  const reference = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(prose);
  if (reference) targets.push(reference[1]!);
  return targets;
}

/**
 * Finds every broken relative link in a set of markdown files.
 *
 * @param docs The files to check.
 * @param exists Whether a path (relative to the root) names a file or folder.
 * @param readMarkdown Reads another markdown file a link points into (for its anchors).
 * @returns One line per broken link: `file:line: target (why)`.
 */
function brokenLinks(
  docs: readonly Doc[],
  exists: (path: string) => boolean,
  readMarkdown: (path: string) => string,
): string[] {
  const problems: string[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOf = (path: string): Set<string> => {
    let set = anchorCache.get(path);
    if (set === undefined) {
      set = anchors(readMarkdown(path));
      anchorCache.set(path, set);
    }
    return set;
  };
  for (const doc of docs) {
    for (const [number, line] of proseLines(doc.text)) {
      for (const target of linkTargets(line)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//")) continue;
        const hashAt = target.indexOf("#");
        const pathPart = hashAt < 0 ? target : target.slice(0, hashAt);
        const anchor = hashAt < 0 ? undefined : decodeURIComponent(target.slice(hashAt + 1));
        const file = pathPart === ""
          ? doc.path
          : normalize(join(dirname(doc.path), decodeURIComponent(pathPart.split("?")[0]!)));
        const where = `${doc.path}:${number}: ${target}`;
        if (file.startsWith("..")) {
          problems.push(`${where} (points outside the repository)`);
        } else if (!exists(file)) {
          problems.push(`${where} (no such file: ${file})`);
        } else if (anchor !== undefined && anchor !== "" && file.endsWith(".md")) {
          if (!anchorsOf(file).has(anchor)) problems.push(`${where} (no heading "#${anchor}")`);
        }
      }
    }
  }
  return problems;
}

/** README.md, DEVELOPERS.md and every markdown file under docs/, relative to the root. */
function projectDocs(): Doc[] {
  const paths = ["README.md", "DEVELOPERS.md"];
  const walk = (folder: string): void => {
    for (const entry of Deno.readDirSync(join(ROOT, folder))) {
      const path = join(folder, entry.name);
      if (entry.isDirectory) walk(path);
      else if (entry.isFile && entry.name.endsWith(".md")) paths.push(path);
    }
  };
  walk("docs");
  return paths.sort().map((path) => ({ path, text: Deno.readTextFileSync(join(ROOT, path)) }));
}

function existsOnDisk(path: string): boolean {
  try {
    Deno.statSync(join(ROOT, path));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test("every relative link in README.md, DEVELOPERS.md and docs/ resolves", () => {
  const docs = projectDocs();
  assert.deepEqual(docs.some((doc) => doc.path.startsWith("docs")), true, "docs/ holds no pages");
  const problems = brokenLinks(
    docs,
    existsOnDisk,
    (path) => Deno.readTextFileSync(join(ROOT, path)),
  );
  assert.deepEqual(problems, [], `broken links:\n${problems.join("\n")}`);
});

Deno.test("the link checker finds a missing file, a missing heading and ignores code", () => {
  const files = new Map<string, string>([
    ["README.md", "# Title\n\n## The spec\n\n## Rate limits (`rate_limit`)\n\n## The spec\n"],
    [
      join("docs", "a.md"),
      [
        "# A",
        "[ok](../README.md#the-spec) [ok](../README.md#the-spec-1)",
        "[ok](../README.md#rate-limits-rate_limit) [ok](#a) [web](https://example.com/x.md)",
        "[missing file](gone.md) [missing heading](../README.md#nope) [self](#b)",
        "`[in code](nowhere.md)`",
        "```",
        "[in a fence](nowhere.md)",
        "```",
        "[ref]: ../nowhere.md",
      ].join("\n"),
    ],
  ]);
  const docs = [...files].map(([path, text]) => ({ path, text }));
  const problems = brokenLinks(docs, (path) => files.has(path), (path) => files.get(path) ?? "");
  assert.deepEqual(problems, [
    `${join("docs", "a.md")}:4: gone.md (no such file: ${join("docs", "gone.md")})`,
    `${join("docs", "a.md")}:4: ../README.md#nope (no heading "#nope")`,
    `${join("docs", "a.md")}:4: #b (no heading "#b")`,
    `${join("docs", "a.md")}:9: ../nowhere.md (no such file: nowhere.md)`,
  ]);
});

Deno.test("heading slugs follow GitHub's rules", () => {
  assert.deepEqual(
    slug("GitOps: one spec, two ways to change it"),
    "gitops-one-spec-two-ways-to-change-it",
  );
  assert.deepEqual(slug("Rate limits (`rate_limit`)"), "rate-limits-rate_limit");
  assert.deepEqual(slug("How real_time_metrics works"), "how-real_time_metrics-works");
  assert.deepEqual(slug("A request's way"), "a-requests-way");
  assert.deepEqual(slug("[Link](x.md) and more"), "link-and-more");
});
