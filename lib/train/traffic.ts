/**
 * The gradient traffic of a training trace, set against the computation with `summarize`.
 *
 * @module
 */
import type { TraceEvent } from "../engine/engine.ts";
import { type CopySummary, summarize } from "../trace/summarize.ts";

/**
 * How long gradients were in flight, and how much of that time some device (or the copying
 * device itself) was computing. Gradient copies are those of products and column sums made
 * on a device (its gradients) and of sums made on the host (the totals sent back); other
 * copies (minibatches, logits, losses) are left out.
 */
export function gradientTraffic(events: readonly TraceEvent[]): CopySummary {
  const byId = new Map(events.map((e) => [e.id, e]));
  const isGradient = (e: TraceEvent) =>
    e.deps.some((id) => {
      const d = byId.get(id);
      return d !== undefined &&
        (d.device === "cpu" ? d.op === "add" : d.op === "mm" || d.op === "sum" ||
          // A replayed step's backward kernels are one segment (lib/capture/segments.ts).
          (d.op === "replay" && d.label === "backward"));
    });
  return summarize(events.filter((e) => e.lane !== "copy" || isGradient(e))).copy;
}
