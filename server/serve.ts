/**
 * Serves the dashboard on a socket: loopback by default, islands bundled at start.
 *
 * @module
 */
import type { Device } from "../lib/devices/device.ts";
import { createDashboard, type Dashboard, type DashboardOptions } from "./app.ts";
import { TraceFollower, type TraceFollowerOptions } from "./trace_follower.ts";

/** Options of {@link serveDashboard}. */
export interface ServeDashboardOptions extends Partial<DashboardOptions> {
  /**
   * Port to listen on; 0 picks a free one.
   * @default {8000}
   */
  port?: number;
  /**
   * Address to listen on. Anything but loopback also lets the page be reached by any host
   * name (the Host check is off).
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The devices; `[]` runs experiments on the host. */
  devices: readonly Device[];
  /**
   * Follow the trace of distributed jobs on this NATS server (one job, or all): one lane
   * per rank and device beside the local ones.
   * @default {undefined: the local engine only}
   */
  nats?: TraceFollowerOptions;
}

/** A running dashboard server. */
export interface DashboardServer {
  /** The page's address, such as "http://127.0.0.1:8000/". */
  readonly url: string;
  readonly dashboard: Dashboard;
  /** Resolves once the server has shut down. */
  readonly finished: Promise<void>;
  /** Ends every event stream, waits for a running experiment, and stops listening. */
  shutdown(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

/**
 * Bundles the islands (and connects to the NATS server given as `nats`), then listens.
 * Throws when the port is taken, the bundle fails or the NATS server cannot be reached.
 *
 * @example
 * ```ts ignore
 * import { tryAllGpus } from "../mod.ts";
 * import { serveDashboard } from "./serve.ts";
 * const server = await serveDashboard({ devices: await tryAllGpus(), port: 0 });
 * console.log(server.url); // "http://127.0.0.1:<port>/"
 * await server.shutdown();
 * ```
 */
export async function serveDashboard(options: ServeDashboardOptions): Promise<DashboardServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  const loopback = LOOPBACK.has(hostname);
  const follow = options.follow ??
    (options.nats ? await TraceFollower.connect(options.nats) : undefined);
  const dashboard = createDashboard({
    ...options,
    follow,
    allowedHosts: options.allowedHosts ?? (loopback ? undefined : null),
  });
  try {
    await dashboard.state.islandsBundle();
  } catch (e) {
    await dashboard.close();
    throw e;
  }
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      port: options.port ?? 8000,
      hostname,
      onListen: resolve,
    }, dashboard.fetch);
  } catch (e) {
    await dashboard.close();
    throw e;
  }
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const shutdown = async () => {
    await dashboard.close();
    await server.shutdown();
  };
  return { url: `http://${host}:${addr.port}/`, dashboard, finished: server.finished, shutdown };
}
