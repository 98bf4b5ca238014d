/**
 * The device contract: a name, a kind and what is known about the hardware. The host
 * (`cpu()`) runs the kernels' CPU twins; WebGPU devices run WGSL in a Worker each.
 *
 * @module
 */

/**
 * What is known about a device's hardware.
 *
 * @example
 * ```ts
 * import { cpu, type DeviceInfo } from "./device.ts";
 * const info: DeviceInfo = cpu().info;
 * console.log(info.backend, info.adapter, info.software); // "host" "host CPU" true
 * ```
 */
export interface DeviceInfo {
  /** The WebGPU implementation ("deno": navigator.gpu; "dawn": npm:webgpu), or "host". */
  backend: "deno" | "dawn" | "host";
  /** The adapter's description (for the host: "host CPU"). */
  adapter: string;
  /** True for software adapters such as Mesa llvmpipe, which run "GPU" work on the CPU. */
  software: boolean;
  /** Threads the device computes with, when known (LP_NUM_THREADS on llvmpipe). */
  threads?: number;
  /** WebGPU features of the adapter, for example "timestamp-query". */
  features: readonly string[];
  /** The largest buffer, in bytes. */
  maxBufferSize: number;
  /** The largest storage binding, in bytes: the largest tensor a kernel can read. */
  maxStorageBufferBindingSize: number;
}

/**
 * A place where tensors live and ops run.
 *
 * @example
 * ```ts
 * import { cpu, type Device } from "./device.ts";
 * const device: Device = cpu();
 * console.log(device.name, device.kind, device.index); // "cpu" "cpu" 0
 * ```
 */
export interface Device {
  /** "gpu:0", "gpu:1", ... or "cpu". */
  readonly name: string;
  /** "webgpu" for a WebGPU device in a Worker, "cpu" for the host. */
  readonly kind: "webgpu" | "cpu";
  /** Position among devices of its kind. */
  readonly index: number;
  /** What is known about its hardware, and the backend that runs it. */
  readonly info: DeviceInfo;
}

const HOST: Device = Object.freeze({
  name: "cpu",
  kind: "cpu",
  index: 0,
  info: Object.freeze({
    backend: "host",
    adapter: "host CPU",
    software: true,
    threads: 1,
    features: [],
    maxBufferSize: 2 ** 31 - 1,
    maxStorageBufferBindingSize: 2 ** 31 - 1,
  }),
});

/**
 * The host device, like `torch.device("cpu")`: ops on it run the kernels' CPU twins on the
 * main thread.
 *
 * @example
 * ```ts
 * import { cpu } from "./device.ts";
 * console.log(cpu().name); // "cpu"
 * ```
 */
export function cpu(): Device {
  return HOST;
}
