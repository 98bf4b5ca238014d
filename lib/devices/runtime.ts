/**
 * The device contract: what the engine needs of a device, and nothing more. The engine
 * sends batches of commands (run a kernel, write, read back, free), in order; the device
 * runs them in order and reports back, asynchronously, which ops completed or failed and the
 * bytes of each readback. A WebGPU device (webgpu_device.ts, a Worker) and the host
 * (host_runtime.ts, the kernels' CPU twins) each implement it; a new kind of device is one
 * file that does and registers itself with {@link registerRuntime}. What a device can do
 * (host-visible memory, readback, timestamps, device programs, limits) it states in
 * `Device.capabilities`; tests/devices/conformance_test.ts is what every backend is held to.
 *
 * @module
 */
import type { Device } from "./device.ts";
import type { Command, FromWorker } from "./protocol.ts";
import type { HostStore } from "./host_store.ts";

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
  /**
   * Ops are sent to it in the order they were submitted, each only once the ones before it
   * have been sent, even when a later one is ready first: a communication stream, whose
   * collectives must run in the same order on every rank. Else any op whose inputs are ready.
   */
  readonly inOrder?: boolean;
  /**
   * Host-visible runtimes only: the engine's store of host values, handed over before the
   * first batch. Such a runtime reads its inputs from it and puts its outputs in it.
   */
  useHostStore?(store: HostStore): void;
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
