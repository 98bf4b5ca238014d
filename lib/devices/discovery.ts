/**
 * Device discovery, like d2l's `try_all_gpus()` and `try_gpu(i)`. Deno gives one adapter;
 * autopar makes several logical devices on it, each in its own Worker.
 *
 * @module
 */
import { cpu, type Device } from "./device.ts";
import { WebGpuDevice } from "./webgpu_device.ts";

/** Options of {@link tryAllGpus}. */
export interface TryAllGpusOptions {
  /**
   * How many logical devices to make on the adapter.
   * @default {the environment variable AUTOPAR_DEVICES, else 2}
   */
  count?: number;
}

const started: Promise<WebGpuDevice | undefined>[] = [];

/**
 * Destroys every WebGPU device and stops its Worker, freeing their memory; tensors on them
 * are gone. Devices are made anew by the next `tryAllGpus()`.
 */
export function closeDevices(): Promise<void> {
  const devices = started.splice(0);
  threadsPerDevice = undefined;
  return Promise.all(devices).then((ds) => Promise.all(ds.map((d) => d?.close()))).then(() => {});
}

// Ending with Workers that still hold a GPU device lets Deno tear them down while the
// process runs its exit handlers, which crashed now and then. When the loop first runs dry,
// the devices are closed (destroyed, their Workers stopped and their threads gone) while the
// process still lives.
globalThis.addEventListener("beforeunload", () => {
  if (started.length > 0) closeDevices();
}, { once: true });
let threadsPerDevice: number | undefined;

/** The default device count: AUTOPAR_DEVICES, else 2. Throws a RangeError for a bad value. */
export function defaultDeviceCount(): number {
  const env = Deno.env.get("AUTOPAR_DEVICES");
  if (env === undefined || env === "") return 2;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Cannot use AUTOPAR_DEVICES="${env}": it must be a whole number >= 1`);
  }
  return n;
}

/**
 * Splits the cores among devices for a software adapter: LP_NUM_THREADS =
 * max(1, floor(cores / devices)), set before the first adapter is requested. A value the
 * user set is kept. Real GPUs ignore the variable.
 */
function splitSoftwareThreads(count: number): number {
  // Mesa's Vulkan driver probes for a Wayland display and complains on every adapter
  // request when XDG_RUNTIME_DIR is unset (headless machines, CI).
  if (Deno.env.get("XDG_RUNTIME_DIR") === undefined) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  const given = Number(Deno.env.get("LP_NUM_THREADS"));
  if (Number.isInteger(given) && given > 0) return given;
  const threads = Math.max(1, Math.floor(navigator.hardwareConcurrency / count));
  Deno.env.set("LP_NUM_THREADS", String(threads));
  return threads;
}

/**
 * All WebGPU devices, like `d2l.try_all_gpus()`: `count` logical devices on the adapter
 * Deno gives, each in its own Worker. Resolves to `[]` when there is no WebGPU adapter.
 * Throws a RangeError for a count that is not a whole number >= 1.
 *
 * @example
 * ```ts
 * import { tryAllGpus } from "./discovery.ts";
 * const devices = await tryAllGpus({ count: 2 });
 * console.log(devices.map((d) => `${d.name}: ${d.info.adapter}`));
 * ```
 */
export async function tryAllGpus(options: TryAllGpusOptions = {}): Promise<Device[]> {
  const count = options.count ?? defaultDeviceCount();
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(`Cannot make ${count} devices: count must be a whole number >= 1`);
  }
  if (typeof navigator === "undefined" || !("gpu" in navigator)) return []; // "in": no GPU instance on this thread
  threadsPerDevice ??= splitSoftwareThreads(count);

  for (let i = started.length; i < count; i++) {
    started.push(WebGpuDevice.start(i, threadsPerDevice).catch(() => undefined));
  }
  const devices = await Promise.all(started.slice(0, count));
  const found: Device[] = [];
  for (const d of devices) {
    if (!d) break;
    found.push(d);
  }
  return found;
}

/**
 * The i-th WebGPU device, like `d2l.try_gpu(i)`; the host `cpu()` when there is none.
 *
 * @example
 * ```ts
 * import { tryGpu } from "./discovery.ts";
 * const device = await tryGpu();
 * console.log(device.name); // "gpu:0", or "cpu" without WebGPU
 * ```
 */
export async function tryGpu(i = 0): Promise<Device> {
  if (!Number.isInteger(i) || i < 0) {
    throw new RangeError(`Cannot pick device ${i}: the index must be a whole number >= 0`);
  }
  const devices = await tryAllGpus({ count: Math.max(started.length, defaultDeviceCount()) });
  return devices[i] ?? cpu();
}
