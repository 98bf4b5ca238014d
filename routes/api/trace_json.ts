/**
 * GET /api/trace.json: the Chrome trace (chrome://tracing, ui.perfetto.dev) of the latest
 * run's trace events.
 *
 * @module
 */
import type { Handler } from "npm:hono@4.13.19";
import { exportChromeTrace } from "../../lib/trace/chrome_trace.ts";
import type { DashboardState } from "../../server/state.ts";

/** The trace as a download; 404 before the first run, 409 while it runs. */
export function chromeTrace(state: DashboardState): Handler {
  return (c) => {
    const run = state.runs.latest();
    if (!run) return c.json({ error: "Cannot export a trace: no run has started yet" }, 404);
    if (run.status === "running") {
      return c.json(
        { error: `Cannot export the trace of run ${run.id}: it is still running` },
        409,
      );
    }
    c.header("content-disposition", `attachment; filename="autopar-${run.id}-trace.json"`);
    return c.json(exportChromeTrace(state.runs.latestEvents()));
  };
}
