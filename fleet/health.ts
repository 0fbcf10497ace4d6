/**
 * Active health checks: every server's health path (default `/health`) every `interval` seconds,
 * each with a timeout. A server turns unhealthy after `unhealthy_threshold` failed checks in a row
 * and healthy again after `healthy_threshold` passing ones; an unhealthy server gets no traffic.
 * Transitions are logged once each.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { FleetSource } from "./fleet.ts";
import { errorLine } from "../common/errors.ts";

const logger = getLogger(["llmstream", "health"]);

interface Track {
  failures: number;
  successes: number;
  running: boolean;
  controller?: AbortController;
}

/** Runs active health checks for the gateway's servers. */
export class HealthChecker {
  #gateway: FleetSource;
  #timer: ReturnType<typeof setInterval> | undefined;
  #interval = 0;
  #tracks = new Map<string, Track>();
  #unsubscribe: () => void;
  #checks = 0;

  /**
   * Starts checking, following config changes.
   *
   * @param gateway The running gateway.
   */
  constructor(gateway: FleetSource) {
    this.#gateway = gateway;
    this.#configure();
    this.#unsubscribe = gateway.onApply(() => this.#configure());
  }

  /** Checks completed so far. */
  get checks(): number {
    return this.#checks;
  }

  /** Stops checking and aborts checks under way. */
  stop(): void {
    this.#unsubscribe();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const track of this.#tracks.values()) track.controller?.abort();
  }

  #configure(): void {
    const settings = this.#gateway.spec.health_checks;
    const urls = new Set<string>();
    for (const route of this.#gateway.routes.values()) {
      for (const endpoint of route.endpoints) urls.add(endpoint.url);
    }
    for (const [url, track] of this.#tracks) {
      if (!urls.has(url)) {
        track.controller?.abort();
        this.#tracks.delete(url);
      }
    }
    for (const url of urls) {
      if (!this.#tracks.has(url)) {
        this.#tracks.set(url, { failures: 0, successes: 0, running: false });
      }
    }
    if (!settings.enabled) {
      for (const url of urls) this.#gateway.pool.get(url)!.healthy = true;
      if (this.#timer !== undefined) clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    if (this.#timer === undefined || this.#interval !== settings.interval) {
      if (this.#timer !== undefined) clearInterval(this.#timer);
      this.#interval = settings.interval;
      this.#timer = setInterval(() => this.#tick(), settings.interval * 1000);
      this.#tick();
    }
  }

  #tick(): void {
    for (const [url, track] of this.#tracks) {
      if (!track.running) void this.#check(url, track);
    }
  }

  async #check(url: string, track: Track): Promise<void> {
    const settings = this.#gateway.spec.health_checks;
    track.running = true;
    const controller = new AbortController();
    track.controller = controller;
    const timer = setTimeout(() => controller.abort(), settings.timeout * 1000);
    let problem: string | undefined;
    try {
      const response = await fetch(url + settings.path, { signal: controller.signal });
      await response.body?.cancel();
      if (!response.ok) problem = `HTTP ${response.status}`;
    } catch (error) {
      problem = controller.signal.aborted
        ? `no answer within ${settings.timeout} s`
        : errorLine(error);
    } finally {
      clearTimeout(timer);
      track.running = false;
    }
    if (this.#tracks.get(url) !== track || this.#timer === undefined) return;
    this.#checks++;
    const server = this.#gateway.pool.get(url);
    if (!server) return;
    if (problem === undefined) {
      track.failures = 0;
      track.successes++;
      if (!server.healthy && track.successes >= settings.healthy_threshold) {
        server.healthy = true;
        logger.info("Server {url} is healthy again; it gets traffic", { url });
      }
    } else {
      track.successes = 0;
      track.failures++;
      if (server.healthy && track.failures >= settings.unhealthy_threshold) {
        server.healthy = false;
        logger.warn("Server {url} failed {count} health checks ({problem}); it gets no traffic", {
          url,
          count: track.failures,
          problem,
        });
      }
    }
  }
}
