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
  /**
   * The WebGPU implementation ("deno": navigator.gpu; "dawn": npm:webgpu), "host", or the
   * name another backend gives itself.
   */
  backend: "deno" | "dawn" | "host" | (string & Record<never, never>);
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

/** Sizes a device can hold, in bytes. */
export interface DeviceLimits {
  /** The largest buffer. */
  readonly maxBufferSize: number;
  /** The largest storage binding: the largest tensor a kernel can read. */
  readonly maxStorageBufferBindingSize: number;
}

/**
 * What a device can do. The engine and Tensor choose copies, waits and trace lanes from
 * these, never from {@link Device.kind}, so a new backend is one file that states them.
 *
 * @example
 * ```ts
 * import { cpu, type DeviceCapabilities } from "./device.ts";
 * const caps: DeviceCapabilities = cpu().capabilities!;
 * console.log(caps.hostVisible, caps.target); // true "cpu"
 * ```
 */
export interface DeviceCapabilities {
  /**
   * Its tensors' values live in this process's memory, readable without a copy (the host and
   * its lanes). A device without it holds values of its own: reading them takes a "read"
   * command, giving them to it a "write" command.
   */
  readonly hostVisible: boolean;
  /** It can copy a tensor's values to the host (the "read" command). */
  readonly readback: boolean;
  /** It can time each op with device timestamps (WebGPU's "timestamp-query"). */
  readonly timestamps: boolean;
  /** It runs device programs ("define"/"exec": the segments of a captured step). */
  readonly programs: boolean;
  /** The kernel code it runs: "wgsl", "cpu" (the CPU twins), or a target of KernelSpec.targets. */
  readonly target: string;
  /** Sizes it can hold. */
  readonly limits: DeviceLimits;
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
  /**
   * "webgpu" for a WebGPU device in a Worker, "cpu" for the host (another backend may name
   * its own). Informative: what a device can do is in {@link Device.capabilities}.
   */
  readonly kind: "webgpu" | "cpu" | (string & Record<never, never>);
  /** Position among devices of its kind. */
  readonly index: number;
  /** What is known about its hardware, and the backend that runs it. */
  readonly info: DeviceInfo;
  /**
   * What it can do. Every device autopar makes states them; one that does not is taken as its
   * kind implies (capabilities.ts).
   */
  readonly capabilities?: DeviceCapabilities;
}

const HOST_LIMITS: DeviceLimits = Object.freeze({
  maxBufferSize: 2 ** 31 - 1,
  maxStorageBufferBindingSize: 2 ** 31 - 1,
});

/** What the host and its lanes can do: host memory, the CPU twins, nothing more. */
export const HOST_CAPABILITIES: DeviceCapabilities = Object.freeze({
  hostVisible: true,
  readback: true,
  timestamps: false,
  programs: false,
  target: "cpu",
  limits: HOST_LIMITS,
});

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
    ...HOST_LIMITS,
  }),
  capabilities: HOST_CAPABILITIES,
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
