/**
 * How the engine runs ops, and the environment variables that set it.
 *
 * @module
 */

/**
 * How the engine runs ops.
 *
 * @example
 * ```ts
 * import { configureEngine } from "./configure.ts";
 * import type { EngineMode } from "./engine.ts";
 * import { ones } from "../tensor/creation.ts";
 * const mode: EngineMode = "serial"; // each op runs to completion before the next
 * configureEngine({ mode });
 * console.log(await ones([2]).add(1).data()); // Float32Array [2, 2]: the same values
 * configureEngine({ mode: "parallel" });
 * ```
 */
export type EngineMode = "parallel" | "serial";

/**
 * Options of `configureEngine`.
 *
 * @example
 * ```ts
 * import { configureEngine } from "./configure.ts";
 * import type { EngineOptions } from "./engine.ts";
 * const options: EngineOptions = { maxOpsInFlight: 64, maxBytesInFlight: 2 ** 28 };
 * configureEngine(options);
 * try {
 *   configureEngine({ maxOpsInFlight: 0 });
 * } catch (e) {
 *   console.log((e as RangeError).message); // "Cannot set maxOpsInFlight to 0: it must be >= 1"
 * }
 * ```
 */
export interface EngineOptions {
  /**
   * "serial" runs each op to completion before the next (like MXNet's NaiveEngine).
   * @default {AUTOPAR_ENGINE, else "parallel"}
   */
  mode?: EngineMode;
  /**
   * Most ops in flight on one device. Completion is detected once per batch, no sooner than
   * about 11.5 ms on Deno's WebGPU, so small ops need many in flight.
   * @default {256}
   */
  maxOpsInFlight?: number;
  /**
   * Most bytes of outputs in flight on one device (one op may exceed it alone).
   * @default {1 GiB}
   */
  maxBytesInFlight?: number;
  /**
   * Time compute passes and copies with device timestamps (adapters with "timestamp-query"),
   * while someone observes `trace$()`.
   * @default {AUTOPAR_DEVICE_TIMING, else true}
   */
  deviceTiming?: boolean;
}

/** AUTOPAR_DEVICE_TIMING: 1 (the default) or 0. Throws a RangeError for anything else. */
export function deviceTimingFromEnv(): boolean {
  const v = Deno.env.get("AUTOPAR_DEVICE_TIMING");
  if (v === undefined || v === "" || v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new RangeError(`Cannot use AUTOPAR_DEVICE_TIMING="${v}": it must be 1 or 0`);
}

/** AUTOPAR_ENGINE: "parallel" (the default) or "serial". Throws a RangeError for anything else. */
export function engineModeFromEnv(): EngineMode {
  const v = Deno.env.get("AUTOPAR_ENGINE");
  if (v === undefined || v === "" || v === "parallel") return "parallel";
  if (v === "serial") return "serial";
  throw new RangeError(`Cannot use AUTOPAR_ENGINE="${v}": it must be "parallel" or "serial"`);
}
