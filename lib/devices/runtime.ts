/**
 * The device contract: what the engine needs of a device, and nothing more. The engine
 * sends batches of commands (run a kernel, write, read back, free), in order; the device
 * runs them in order and reports back, asynchronously, which ops completed or failed and the
 * bytes of each readback. A WebGPU device (webgpu_device.ts, a Worker) and the host
 * (host_runtime.ts, the kernels' CPU twins) each implement it; a new kind of device is one
 * file that does and registers itself with {@link registerRuntime}.
 *
 * @module
 */
import type { Device } from "./device.ts";
import type { Command, FromWorker } from "./protocol.ts";

/**
 * What a device reports: a batch's completion (and failures), a readback, a failed readback,
 * or that it is gone (every op sent and to come fails with its message).
 */
export type Report = Extract<FromWorker, { type: "done" | "read" | "read-failed" | "lost" }>;

/** See the module's documentation. */
export interface DeviceRuntime {
  /** The device this runtime runs. */
  readonly device: Device;
  /**
   * Sends one batch; it runs after every batch sent before. `timing`: time each op with
   * device timestamps where the device can.
   */
  send(batch: Command[], timing: boolean): void;
  /** Called with each report; the engine installs it. */
  onReport: (report: Report) => void;
  /** Whether work is in flight: a busy device keeps the process alive. */
  setBusy(busy: boolean): void;
  /** Stops the device; its buffers are gone. */
  close(): Promise<void>;
  /**
   * Why the device can run nothing more ("gpu:0 was closed by closeDevices()", "gpu:0 was
   * lost: ..."), or `undefined` while it works. Once set, it stays: the runtime reports
   * `lost` for what was in flight and for every later batch.
   */
  readonly lost: string | undefined;
}

const runtimes = new WeakMap<Device, DeviceRuntime>();

/** Makes `runtime` the one that runs `runtime.device`. */
export function registerRuntime(runtime: DeviceRuntime): void {
  runtimes.set(runtime.device, runtime);
}

/** The runtime of `device`, or `undefined` for a device no runtime runs. */
export function runtimeFor(device: Device): DeviceRuntime | undefined {
  return runtimes.get(device);
}

/** The runtime of `device`; throws a TypeError for a device no runtime runs. */
export function runtimeOf(device: Device): DeviceRuntime {
  const runtime = runtimes.get(device);
  if (!runtime) throw new TypeError(`Cannot run ops on ${device.name}: no runtime runs it`);
  return runtime;
}
