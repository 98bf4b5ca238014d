/**
 * Backpressure as a live figure: how many producers have items left to make and wait
 * because a consumer still holds what they emitted. Dashboards poll it; nothing else reads it.
 *
 * @module
 */

let waiting = 0;

/**
 * Producers (`produce`) waiting on backpressure right now.
 *
 * @example
 * ```ts
 * import { producersWaiting } from "./backpressure.ts";
 * console.log(producersWaiting()); // 0
 * ```
 */
export function producersWaiting(): number {
  return waiting;
}

/** Counts one producer into (`true`) or out of (`false`) the waiting ones. */
export function countWaiting(on: boolean): void {
  waiting += on ? 1 : -1;
}
