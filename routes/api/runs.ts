/**
 * POST /api/runs starts an experiment (JSON `{ experiment, size, iters }`); GET
 * /api/runs/:id returns its record with the timings once it is done.
 *
 * @module
 */
import type { Handler } from "npm:hono@4.13.19";
import { RunRequestError } from "../../server/runs.ts";
import type { DashboardState } from "../../server/state.ts";

/** POST /api/runs: 202 with the run's record; 400, 409 or 415 with `{ error }`. */
export function startRun(state: DashboardState): Handler {
  return async (c) => {
    if (!(c.req.header("content-type") ?? "").startsWith("application/json")) {
      return c.json({ error: "Cannot start a run: send the request as application/json" }, 415);
    }
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (e) {
      return c.json({
        error: `Cannot start a run: the body is not JSON (${e instanceof Error ? e.message : e})`,
      }, 400);
    }
    try {
      const run = state.runs.start(state.runs.validate(body));
      c.header("location", `/api/runs/${run.id}`);
      return c.json(run, 202);
    } catch (e) {
      if (e instanceof RunRequestError) return c.json({ error: e.message }, e.status);
      throw e;
    }
  };
}

/** GET /api/runs/:id: the run's record; 404 for an unknown id. */
export function getRun(state: DashboardState): Handler {
  return (c) => {
    const id = c.req.param("id") ?? "";
    const run = state.runs.get(id);
    return run ? c.json(run) : c.json({ error: `Cannot find run "${id}"` }, 404);
  };
}
