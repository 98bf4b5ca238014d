/**
 * Interval arithmetic over spans of time (ms), the one copy that summaries, the dashboard's
 * live figures and the experiments share: unions, their length and their intersections.
 *
 * @example
 * ```ts
 * import { intersection, measure, union } from "./intervals.ts";
 * const a = union([[0, 2], [1, 3], [5, 6]]);
 * console.log(a, measure(a), intersection(a, union([[2, 5.5]]))); // [[0, 3], [5, 6]] 4 1.5
 * ```
 *
 * @module
 */

/** A span `[start, end]`. */
export type Interval = [start: number, end: number];

/** The union of spans as sorted, disjoint intervals; empty spans are dropped. */
export function union(spans: Iterable<readonly [number, number]>): Interval[] {
  const sorted = [...spans].filter(([a, b]) => b > a).sort((p, q) => p[0] - q[0]);
  const out: Interval[] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** The union of `{ start, end }` spans (trace events), as {@link union}. */
export function unionOfSpans(spans: Iterable<{ start: number; end: number }>): Interval[] {
  return union([...spans].map((s) => [s.start, s.end] as const));
}

/** The total length of sorted, disjoint intervals. */
export function measure(u: readonly Interval[]): number {
  return u.reduce((t, [a, b]) => t + b - a, 0);
}

/** The intervals covered by both of two unions. */
export function intersect(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (let i = 0, j = 0; i < a.length && j < b.length;) {
    const s = Math.max(a[i][0], b[j][0]);
    const e = Math.min(a[i][1], b[j][1]);
    if (e > s) out.push([s, e]);
    if (a[i][1] < b[j][1]) i++;
    else j++;
  }
  return out;
}

/** The length of the intersection of two unions. */
export function intersection(a: readonly Interval[], b: readonly Interval[]): number {
  return measure(intersect(a, b));
}
