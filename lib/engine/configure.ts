/**
 * {@link configureEngine}: the engine's settings, changed at run time.
 *
 * @module
 */
import { engine } from "./engine.ts";
import type { EngineOptions } from "./options.ts";

/**
 * Changes how the engine runs ops; takes effect for ops submitted afterwards. Throws a
 * RangeError for a bad value.
 *
 * @example
 * ```ts
 * import { configureEngine } from "./configure.ts";
 * configureEngine({ mode: "serial" });
 * configureEngine({ mode: "parallel" });
 * configureEngine({ deviceTiming: false }); // events keep the batch's times
 * configureEngine({ deviceTiming: true });
 * try {
 *   configureEngine({ mode: "eager" as "serial" });
 * } catch (e) {
 *   console.log(String(e));
 *   // RangeError: Cannot use engine mode "eager": use "parallel" or "serial"
 * }
 * ```
 */
export function configureEngine(options: EngineOptions): void {
  const e = engine();
  if (options.mode !== undefined) {
    if (options.mode !== "serial" && options.mode !== "parallel") {
      throw new RangeError(`Cannot use engine mode "${options.mode}": use "parallel" or "serial"`);
    }
    e.setMode(options.mode);
  }
  for (const key of ["maxOpsInFlight", "maxBytesInFlight"] as const) {
    const v = options[key];
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v < 1) {
      throw new RangeError(`Cannot set ${key} to ${v}: it must be >= 1`);
    }
    e[key] = v;
  }
  if (options.deviceTiming !== undefined) {
    if (typeof options.deviceTiming !== "boolean") {
      throw new RangeError(
        `Cannot set deviceTiming to ${options.deviceTiming}: it must be a boolean`,
      );
    }
    e.deviceTiming = options.deviceTiming;
  }
}
