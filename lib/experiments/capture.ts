/**
 * Collects the trace events of a piece of work, and reads simple facts off them: busy time
 * per lane, time several lanes were busy at once, the most spans open at once.
 *
 * @module
 */
import type { TraceEvent } from "../engine/engine.ts";
import { trace$ } from "../trace/trace.ts";
import { intersect, measure, unionOfSpans } from "../trace/intervals.ts";

/** Runs `work` and returns its result with every trace event that finished meanwhile. */
export async function captureTrace<T>(
  work: () => Promise<T>,
): Promise<{ result: T; events: TraceEvent[] }> {
  const events: TraceEvent[] = [];
  const sub = trace$().subscribe((e) => events.push(e));
  try {
    const result = await work();
    return { result, events };
  } finally {
    sub.unsubscribe();
  }
}

/** The union of the spans, as sorted disjoint [start, end] intervals. */
export const unionOf = unionOfSpans;

/** ms covered by the union of the spans. */
export function busyMs(spans: readonly { start: number; end: number }[]): number {
  return measure(unionOfSpans(spans));
}

/** ms covered by every one of the span sets at once. */
export function bothBusyMs(
  ...sets: readonly (readonly { start: number; end: number }[])[]
): number {
  let common = unionOfSpans(sets[0] ?? []);
  for (const set of sets.slice(1)) common = intersect(common, unionOfSpans(set));
  return measure(common);
}

/** The most spans open at the same instant (a span open on [start, end)). */
export function maxOpen(spans: readonly { start: number; end: number }[]): number {
  const points = spans.flatMap((s) => [[s.start, 1], [s.end, -1]] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, d] of points) {
    open += d;
    most = Math.max(most, open);
  }
  return most;
}
