/**
 * What a device can do, and the copies that follow from it: the one place that reads a
 * device's capabilities (and, for a device that states none, its kind). Tensor and the engine
 * ask here instead of branching on `Device.kind`.
 *
 * @module
 */
import { type Device, type DeviceCapabilities, HOST_CAPABILITIES } from "./device.ts";

/**
 * The capabilities of `device`: the ones it states, or for a device that states none, what
 * its kind implies (a "cpu" device is host memory; anything else a WebGPU-like device).
 *
 * @example
 * ```ts
 * import { cpu } from "./device.ts";
 * import { capabilitiesOf } from "./capabilities.ts";
 * console.log(capabilitiesOf(cpu()).hostVisible); // true
 * ```
 */
export function capabilitiesOf(device: Device): DeviceCapabilities {
  if (device.capabilities) return device.capabilities;
  if (device.kind === "cpu") return HOST_CAPABILITIES;
  const { maxBufferSize, maxStorageBufferBindingSize } = device.info;
  return {
    hostVisible: false,
    readback: true,
    timestamps: device.info.features.includes("timestamp-query"),
    programs: device.kind === "webgpu",
    target: "wgsl",
    limits: { maxBufferSize, maxStorageBufferBindingSize },
  };
}

/**
 * Whether `device`'s tensors' values are readable in this process without a copy.
 *
 * @example
 * ```ts
 * import { cpu } from "./device.ts";
 * import { isHostVisible } from "./capabilities.ts";
 * console.log(isHostVisible(cpu())); // true
 * ```
 */
export function isHostVisible(device: Device): boolean {
  return capabilitiesOf(device).hostVisible;
}

/** The steps of a copy from one device to another (see {@link copyRoute}). */
export interface CopyRoute {
  /** First read the values back to the host (the source holds values of its own). */
  readonly read: boolean;
  /** Then write host values to the target (the target holds values of its own). */
  readonly write: boolean;
}

/**
 * How to copy a tensor from `from` to `to` (two different devices): read back from a device
 * that holds values of its own, then write to a target that does. Throws a TypeError when
 * `from` holds values of its own and cannot copy them to the host.
 *
 * @example
 * ```ts
 * import { cpu, type Device } from "./device.ts";
 * import { copyRoute } from "./capabilities.ts";
 * const gpu: Device = {
 *   name: "gpu:9",
 *   kind: "webgpu",
 *   index: 9,
 *   info: { ...cpu().info, backend: "deno", features: [] },
 * };
 * console.log(copyRoute(gpu, cpu())); // { read: true, write: false }
 * console.log(copyRoute(cpu(), gpu)); // { read: false, write: true }
 * console.log(copyRoute(gpu, gpu)); // { read: true, write: true }
 * ```
 */
export function copyRoute(from: Device, to: Device): CopyRoute {
  const source = capabilitiesOf(from);
  if (!source.hostVisible && !source.readback) {
    throw new TypeError(
      `Cannot copy a tensor from ${from.name} to ${to.name}: ${from.name} cannot copy to the host`,
    );
  }
  const read = !source.hostVisible;
  // Between two host-visible devices the target's lane still takes a write, as it always has.
  const write = !capabilitiesOf(to).hostVisible || !read;
  return { read, write };
}
