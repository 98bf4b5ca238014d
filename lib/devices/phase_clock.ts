/**
 * Where a device Worker's time goes, phase by phase, for the op-path profile
 * (bench/op_profile.ts). Off unless AUTOPAR_PROFILE is set: then each phase's time is
 * summed, and the Worker prints the sums when it closes.
 *
 * @module
 */

/** Sums of milliseconds by phase, and counts of ops and batches. */
export interface PhaseTotals {
  /** ms by phase name. */
  ms: Record<string, number>;
  /** Ops encoded (a replayed segment counts its kernels). */
  ops: number;
  /** Kernels encoded as parts of replayed segments (their time is the phase "replay"). */
  replayed: number;
  /** Batches (command buffers) submitted. */
  batches: number;
}

/**
 * Sums phase times when enabled; `mark(phase)` charges the time since the last mark.
 *
 * @example
 * ```ts
 * import { PhaseClock } from "./phase_clock.ts";
 * const clock = new PhaseClock(true);
 * clock.start();
 * clock.mark("encode");
 * console.log(Object.keys(clock.totals.ms)); // ["encode"]
 * ```
 */
export class PhaseClock {
  /** What has been summed so far. */
  readonly totals: PhaseTotals = { ms: {}, ops: 0, replayed: 0, batches: 0 };
  #last = 0;

  /** A clock that sums when `enabled` (by default, when AUTOPAR_PROFILE is set). */
  constructor(readonly enabled: boolean = profiling()) {}

  /** Starts timing from now. */
  start(): void {
    if (this.enabled) this.#last = performance.now();
  }

  /** Charges the time since the last mark (or start) to `phase`. */
  mark(phase: string): void {
    if (!this.enabled) return;
    const now = performance.now();
    this.totals.ms[phase] = (this.totals.ms[phase] ?? 0) + now - this.#last;
    this.#last = now;
  }
}

function profiling(): boolean {
  try {
    return (globalThis as { Deno?: typeof Deno }).Deno?.env.get("AUTOPAR_PROFILE") !== undefined;
  } catch {
    return false;
  }
}
