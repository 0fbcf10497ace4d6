/**
 * Renders the Grafana dashboard without Grafana: writes `docs/grafana/llmstream-dashboard.json`
 * from the panel definitions, runs a scripted minute of traffic through a real gateway with the
 * metrics plugin, scrapes `/metrics` every second, evaluates each panel's PromQL over the scrapes,
 * draws the panels as inline SVG in an HTML page and screenshots it with headless Chromium.
 *
 * Usage (from the repository root; needs `chromium`, e.g. `apt-get install -y chromium`):
 *
 *     deno run -A docs/render/render_dashboard.ts [--seconds 60] [--json-only]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dashboardJson } from "./dashboard_json.ts";
import { dashboardHtml } from "./page.ts";
import { PANELS } from "./panels.ts";
import { runScenario } from "./scenario.ts";

const OUT_DIR = new URL("../grafana/", import.meta.url);
const WIDTH = 1800;
/** `$__rate_interval` for a 1 s scrape interval: Grafana uses four scrape intervals. */
const WINDOW_S = 4;

async function main(args: string[]): Promise<void> {
  const flags = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "60" },
      "json-only": { type: "boolean", default: false },
      chromium: { type: "string", default: "chromium" },
    },
  }).values;
  await Deno.mkdir(OUT_DIR, { recursive: true });
  const jsonPath = new URL("llmstream-dashboard.json", OUT_DIR);
  await Deno.writeTextFile(jsonPath, JSON.stringify(dashboardJson(PANELS), null, 2) + "\n");
  console.log(`Wrote ${jsonPath.pathname}`);
  if (flags["json-only"]) return;

  const seconds = Number(flags.seconds);
  const startMs = Date.now();
  const { scrapes, events } = await runScenario({
    seconds,
    onScrape: (scrape) => {
      if (Math.round(scrape.t) % 10 === 0) console.log(`t=${Math.round(scrape.t)} s`);
    },
  });
  const caption = `Simulated fleet, ${scrapes.length} scrapes at 1 s; events: ` +
    events.map((event) => `${Math.round(event.t)} s ${event.text}`).join("; ");
  const html = dashboardHtml({
    panels: PANELS,
    scrapes,
    windowS: WINDOW_S,
    startMs,
    caption,
    width: WIDTH,
  });
  const work = await Deno.makeTempDir({ prefix: "llmstream-render-" });
  const htmlPath = `${work}/dashboard.html`;
  await Deno.writeTextFile(htmlPath, html);
  const pngPath = new URL("llmstream-dashboard.png", OUT_DIR).pathname;
  const height = Number(/height:(\d+)px;position/.exec(html)?.[1] ?? 1400);
  const output = await new Deno.Command(flags.chromium, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--hide-scrollbars",
      `--user-data-dir=${work}/profile`,
      `--screenshot=${pngPath}`,
      `--window-size=${WIDTH},${height}`,
      `file://${htmlPath}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`chromium failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  await Deno.remove(`${work}/profile`, { recursive: true });
  console.log(`Wrote ${pngPath} (page kept at ${htmlPath})`);
  for (const event of events) console.log(`${event.t.toFixed(1)} s: ${event.text}`);
}

if (import.meta.main) await main(Deno.args);
