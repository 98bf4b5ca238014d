/**
 * Live figures over a sliding window of finished trace events: GFLOP/s on compute lanes,
 * bytes/s on copy lanes, and how much of the copy time overlapped computation.
 *
 * @module
 */
import type { TraceEvent } from "../lib/trace/trace.ts";
import { intersection, measure, union } from "../lib/trace/intervals.ts";

/** Rates of the window ending at `now`. */
export interface WindowRates {
  gflops: number;
  bytesPerSec: number;
  /** Share of copy time during which some compute lane was busy; null without copies. */
  overlap: number | null;
}

/**
 * The rates of the `windowMs` before `now`: each event counts in proportion to the part
 * of it inside the window.
 *
 * @example
 * ```ts
 * import { windowRates } from "./live_stats.ts";
 * const mm = { id: 1, op: "mm", device: "gpu:0", lane: "compute" as const, queued: 0,
 *   start: 0, end: 1000, flops: 2e9, deps: [] };
 * console.log(windowRates([mm], 1000, 1000).gflops); // 2
 * ```
 */
export function windowRates(
  events: readonly TraceEvent[],
  now: number,
  windowMs: number,
): WindowRates {
  const from = now - windowMs;
  let flops = 0;
  let bytes = 0;
  const compute: [number, number][] = [];
  const copy: [number, number][] = [];
  for (const e of events) {
    const s = Math.max(e.start, from);
    const t = Math.min(e.end, now);
    if (t <= s && !(e.end === e.start && e.end > from && e.end <= now)) continue;
    const share = e.end > e.start ? (t - s) / (e.end - e.start) : 1;
    if (e.lane === "compute") {
      flops += (e.flops ?? 0) * share;
      if (t > s) compute.push([s, t]);
    } else if (e.lane === "copy") {
      bytes += (e.bytes ?? 0) * share;
      if (t > s) copy.push([s, t]);
    }
  }
  const copies = union(copy);
  const copyTime = measure(copies);
  return {
    gflops: flops / 1e9 / (windowMs / 1000),
    bytesPerSec: bytes / (windowMs / 1000),
    overlap: copyTime > 0 ? intersection(copies, union(compute)) / copyTime : null,
  };
}
