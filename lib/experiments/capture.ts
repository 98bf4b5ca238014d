/**
 * Collects the trace events of a piece of work, and reads simple facts off them: busy time
 * per lane, time several lanes were busy at once, the most spans open at once.
 *
 * @module
 */
import type { TraceEvent } from "../engine/engine.ts";
import { trace$ } from "../trace/trace.ts";

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
export function unionOf(spans: readonly { start: number; end: number }[]): [number, number][] {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  const out: [number, number][] = [];
  for (const { start, end } of sorted) {
    const last = out[out.length - 1];
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else out.push([start, end]);
  }
  return out;
}

/** ms covered by the union of the spans. */
export function busyMs(spans: readonly { start: number; end: number }[]): number {
  return unionOf(spans).reduce((a, [s, e]) => a + e - s, 0);
}

/** ms covered by every one of the span sets at once. */
export function bothBusyMs(
  ...sets: readonly (readonly { start: number; end: number }[])[]
): number {
  let common = unionOf(sets[0] ?? []);
  for (const set of sets.slice(1)) {
    const other = unionOf(set);
    const next: [number, number][] = [];
    for (const [s1, e1] of common) {
      for (const [s2, e2] of other) {
        const [s, e] = [Math.max(s1, s2), Math.min(e1, e2)];
        if (e > s) next.push([s, e]);
      }
    }
    common = next;
  }
  return common.reduce((a, [s, e]) => a + e - s, 0);
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
