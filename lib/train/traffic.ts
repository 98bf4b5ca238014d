/**
 * The gradient traffic of a training trace, set against the computation with `summarize`.
 *
 * @module
 */
import type { TraceEvent } from "../engine/engine.ts";
import { type CopySummary, summarize } from "../trace/summarize.ts";

/**
 * How long gradients were in flight, and how much of that time some device (or the copying
 * device itself) was computing. Gradient copies are those of what a backward pass made
 * (trace label "backward": a device's gradients, a replayed backward segment, and the sums
 * DataParallel makes on the host from backward's gradient hook); other copies (minibatches,
 * logits, losses) are left out.
 */
export function gradientTraffic(events: readonly TraceEvent[]): CopySummary {
  const byId = new Map(events.map((e) => [e.id, e]));
  const isGradient = (e: TraceEvent) => e.deps.some((id) => byId.get(id)?.label === "backward");
  return summarize(events.filter((e) => e.lane !== "copy" || isGradient(e))).copy;
}
