/**
 * The trace event: one span of work as plain serialisable data. The engine emits them; the
 * dashboard, the summaries and the exporters (lib/trace/) only read them. Defined here, in
 * the engine, so that the engine imports nothing from the layers that read it.
 *
 * @module
 */

/**
 * One span of work. Times are ms on the main thread's `performance.now()` clock; with device
 * timing, `start`/`end` of compute passes and copies are their device timestamps put on that
 * clock.
 *
 * @example
 * ```ts
 * import type { TraceEvent } from "./trace_event.ts";
 * import { trace$ } from "../trace/trace.ts";
 * import { ones } from "../tensor/creation.ts";
 * import { synchronize } from "./sync.ts";
 * const events: TraceEvent[] = [];
 * const sub = trace$().subscribe((e) => events.push(e));
 * ones([2, 2]).add(1);
 * await synchronize();
 * sub.unsubscribe();
 * const [made, add] = events;
 * console.log(add.op, add.device, add.lane, add.shape); // "add" "cpu" "host" [2, 2]
 * console.log(add.deps[0] === made.id, add.end >= add.start); // true true
 * ```
 */
export interface TraceEvent {
  /** The op's id (benchmark spans get ids of their own). */
  id: number;
  /** The op's name, for example "mm" or "copy". */
  op: string;
  /** The device's name ("gpu:0", "cpu"). */
  device: string;
  /** Which of the device's in-order lanes ran it. */
  lane: "compute" | "copy" | "host";
  /** When the op was created. */
  queued: number;
  /** When it started. */
  start: number;
  /** When it ended. */
  end: number;
  /** Device timestamps (ns, the device's own clock), when the adapter has "timestamp-query". */
  gpuStart?: number;
  /** The end, on the same clock as `gpuStart`. */
  gpuEnd?: number;
  /** The shape of the op's first output. */
  shape?: readonly number[];
  /** Bytes it produced (copies: bytes moved). */
  bytes?: number;
  /** Floating-point operations, where known. */
  flops?: number;
  /** Ids of the ops that produced this op's inputs. */
  deps: number[];
  /** A free-form label, for example "gpu:0->cpu". */
  label?: string;
  /**
   * A replayed segment's kernels, in order: each kernel's op, or for a fused kernel the ops
   * it computes (`"fused(mul, add, tanh)"`).
   */
  kernels?: string[];
  /** The failure's message, when the op failed. */
  error?: string;
}
