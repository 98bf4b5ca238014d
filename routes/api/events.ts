/**
 * GET /api/events: server-sent events of the trace, in batches, a few frames a second.
 *
 * @module
 */
import type { Handler } from "npm:hono@4.13.19";
import type { DashboardState } from "../../server/state.ts";

/** The event stream of one page (see EventHub.connect for its messages). */
export function events(state: DashboardState): Handler {
  return (c) =>
    new Response(state.hub.connect(c.req.header("last-event-id")), {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
      },
    });
}
