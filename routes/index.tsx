/**
 * The page, rendered on the server: live figures, the task stream, and the experiment
 * buttons with the timings table (the latest timings show without JavaScript too).
 *
 * @module
 */
import type { Handler } from "npm:hono@4.13.19";
import { renderToString } from "npm:preact-render-to-string@6.8.2";
import type { VNode } from "npm:preact@10.29.8";
import { Island } from "../components/Island.tsx";
import type { DeviceSummary } from "../components/protocol.ts";
import { LiveFigures } from "../islands/LiveFigures.tsx";
import { RunPanel } from "../islands/RunPanel.tsx";
import { TaskStream } from "../islands/TaskStream.tsx";
import type { DashboardState } from "../server/state.ts";

/** GET /: the whole page. */
export function page(state: DashboardState): Handler {
  return (c) => {
    const html = renderToString(<Page state={state} />);
    return c.html(`<!DOCTYPE html>${html}`);
  };
}

function Page({ state }: { state: DashboardState }): VNode {
  const { hub, runs } = state;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>autopar dashboard</title>
        <link rel="stylesheet" href="/static/dashboard.css" />
      </head>
      <body>
        <header>
          <h1>autopar: automatic parallelism, live</h1>
          <p>{hub.devices.map(describe).join(" · ") || "no device"}</p>
        </header>
        <Island name="LiveFigures" component={LiveFigures} props={{ initial: hub.stats() }} />
        <Island name="TaskStream" component={TaskStream} props={{ window: 10_000 }} />
        <Island
          name="RunPanel"
          component={RunPanel}
          props={{ limits: runs.limits, timings: hub.timings(), run: runs.latest() ?? null }}
        />
        <footer>
          The chapter "Automatic Parallelism" of Dive into Deep Learning, run by autopar.{" "}
          <a href="/api/trace.json">Chrome trace of the latest run</a>
        </footer>
        <script type="module" src="/islands/client.js"></script>
      </body>
    </html>
  );
}

function describe(d: DeviceSummary): string {
  const threads = d.threads ? `, ${d.threads} thread${d.threads === 1 ? "" : "s"}` : "";
  return `${d.name}: ${d.adapter} (${d.software ? "software" : "hardware"}${threads})`;
}
