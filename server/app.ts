/**
 * The dashboard as a Hono app: routes/ mounted on an event hub and a run manager. Tests call
 * its `fetch` with a Request; `serve.ts` puts it on a socket.
 *
 * @module
 */
import { Hono } from "npm:hono@4.13.19";
import { merge } from "npm:rxjs@7.8.2";
import { trace$ } from "../lib/trace/trace.ts";
import type { Device } from "../lib/devices/device.ts";
import type { DeviceSummary } from "../components/protocol.ts";
import { labelsOf } from "../components/timings.ts";
import { guard, type GuardOptions } from "../routes/_middleware.ts";
import { page } from "../routes/index.tsx";
import { events } from "../routes/api/events.ts";
import { getRun, startRun } from "../routes/api/runs.ts";
import { chromeTrace } from "../routes/api/trace_json.ts";
import { bundleIslands } from "./bundle.ts";
import { EventHub, type EventHubOptions } from "./event_hub.ts";
import { RunManager } from "./runs.ts";
import type { TraceFollower } from "./trace_follower.ts";
import type { DashboardState } from "./state.ts";

/** Options of {@link createDashboard}. */
export interface DashboardOptions extends GuardOptions {
  /** The devices experiments run on ([GPU1, GPU2]); empty runs them on the host. */
  devices: readonly Device[];
  /** Options of the event hub (frame rate, history). */
  hub?: Omit<EventHubOptions, "devices">;
  /**
   * Training digits per epoch of a "train" run.
   * @default {8000}
   */
  trainSamples?: number;
  /**
   * Makes the islands' browser bundle.
   * @default {bundleIslands}
   */
  bundle?: () => Promise<string>;
  /**
   * The ranks of a distributed job, followed on NATS: their events stream beside the local
   * engine's, one lane per rank and device. The dashboard closes it with itself.
   * @default {undefined: the local engine only}
   */
  follow?: TraceFollower;
}

/** A dashboard: its request handler and what it holds. */
export interface Dashboard {
  /** Answers one request. */
  fetch(request: Request): Promise<Response>;
  readonly state: DashboardState;
  /** Waits for the running experiment, then stops the hub and ends every event stream. */
  close(): Promise<void>;
}

/**
 * Makes the dashboard. Call `close()` when done: the hub holds a timer and a subscription.
 *
 * @example
 * ```ts
 * import { cpu } from "../lib/devices/device.ts";
 * import { createDashboard } from "./app.ts";
 * const dashboard = createDashboard({ devices: [cpu()] });
 * const response = await dashboard.fetch(new Request("http://127.0.0.1:8000/"));
 * console.log(response.status); // 200
 * await response.body?.cancel();
 * await dashboard.close();
 * ```
 */
export function createDashboard(options: DashboardOptions): Dashboard {
  const devices: DeviceSummary[] = options.devices.map((d) => ({
    name: d.name,
    adapter: d.info.adapter,
    software: d.info.software,
    threads: d.info.threads,
    maxStorageBufferBindingSize: d.info.maxStorageBufferBindingSize,
  }));
  const local = options.hub?.source ?? trace$();
  const source = options.follow ? merge(local, options.follow.events$) : local;
  const hub = new EventHub({ ...options.hub, source, devices });
  const runs = new RunManager({
    devices: options.devices,
    trainSamples: options.trainSamples,
    onChange: (run) => {
      if (run.status === "running") hub.clearTimings(labelsOf(run.experiment));
      hub.setRun(run);
    },
  });
  let bundle: Promise<string> | undefined;
  const state: DashboardState = {
    hub,
    runs,
    islandsBundle: () => bundle ??= (options.bundle ?? bundleIslands)(),
  };
  const css = Deno.readTextFile(new URL("../static/dashboard.css", import.meta.url));

  const app = new Hono();
  app.use("*", guard(options));
  app.get("/", page(state));
  app.get("/api/events", events(state));
  app.post("/api/runs", startRun(state));
  app.get("/api/runs/:id", getRun(state));
  app.get("/api/trace.json", chromeTrace(state));
  app.get("/islands/client.js", async (c) => {
    c.header("cache-control", "no-cache");
    return c.body(await state.islandsBundle(), 200, {
      "content-type": "text/javascript; charset=utf-8",
    });
  });
  app.get("/static/dashboard.css", async (c) => {
    return c.body(await css, 200, { "content-type": "text/css; charset=utf-8" });
  });
  app.onError((e, c) => c.json({ error: `Cannot answer ${c.req.path}: ${e.message}` }, 500));

  return {
    fetch: async (request) => await app.fetch(request),
    state,
    close: async () => {
      await runs.idle();
      hub.close();
      await options.follow?.close();
    },
  };
}
