/**
 * Copies between devices, routed by what the devices can do (devices/capabilities.ts): a
 * device that holds values of its own is read back to the host first, a target that holds
 * values of its own is written to from the host. Tensor's `to()` calls this; nothing above
 * the devices chooses a copy by the kind of device.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { copyRoute } from "../devices/capabilities.ts";
import type { Engine } from "./engine.ts";
import type { TensorRecord } from "./records.ts";

/** How {@link submitCopy} queues a copy. */
export interface CopyOptions {
  /**
   * Ops submitted later may run before the copy has landed (PyTorch's `non_blocking`).
   * @default {false}
   */
  nonBlocking?: boolean;
  /** The label of the copy's ops in the trace ("gpu:0->cpu"). */
  label?: string;
}

/**
 * Queues a copy of `rec` to `target` (another device) on `e` and returns the copy's record at
 * once. Throws a TypeError, before anything is queued, when the source cannot copy to the
 * host.
 *
 * @example
 * ```ts
 * import { cpu } from "../devices/device.ts";
 * import { engine } from "./engine.ts";
 * import { submitCopy } from "./copies.ts";
 * const e = engine();
 * const x = e.hostTensor(new Float32Array([1, 2]), [2]);
 * try {
 *   submitCopy(e, x, cpu());
 * } catch (err) {
 *   console.log(err instanceof RangeError); // true: it is on the host already
 * }
 * ```
 */
export function submitCopy(
  e: Engine,
  rec: TensorRecord,
  target: Device,
  options: CopyOptions = {},
): TensorRecord {
  if (rec.device === target) {
    throw new RangeError(
      `Cannot copy t${rec.id} to ${target.name}: it is on ${target.name} already`,
    );
  }
  const route = copyRoute(rec.device, target);
  const blocking = !options.nonBlocking;
  let staged = rec;
  if (route.read) {
    [staged] = e.submit({
      name: "copy",
      kind: "read",
      device: rec.device,
      inputs: [rec],
      outputShapes: [rec.shape],
      // A staging copy on its way to another device is ours alone (handed over, not copied).
      internal: route.write,
      label: options.label,
      blocking: blocking && !route.write,
    });
    if (!route.write) return staged;
  }
  const [out] = e.submit({
    name: "copy",
    kind: "write",
    device: target,
    inputs: [staged],
    outputShapes: [rec.shape],
    label: options.label,
    blocking,
  });
  if (staged !== rec) e.dispose(staged);
  return out;
}
