/**
 * Device discovery, like d2l's `try_all_gpus()` and `try_gpu(i)`. Each device is a Worker
 * with its own GPUDevice, on one of two WebGPU implementations (backend.ts). With Dawn and
 * several physical adapters, there is one device per adapter; with one adapter (and always
 * with Deno's WebGPU, which cannot list adapters), autopar makes several logical devices on it.
 *
 * @module
 */
import { cpu, type Device } from "./device.ts";
import { WebGpuDevice } from "./webgpu_device.ts";
import { quietStderr } from "./quiet_stderr.ts";
import {
  adapterPlan,
  type BackendChoice,
  backendChoice,
  backendsToTry,
  DAWN_SPECIFIER,
  type WebGpuBackend,
} from "./backend.ts";

/**
 * Options of {@link tryAllGpus}.
 *
 * @example
 * ```ts
 * import { tryAllGpus, type TryAllGpusOptions } from "./discovery.ts";
 * const options: TryAllGpusOptions = { count: 2, backend: "auto" };
 * const devices = await tryAllGpus(options);
 * console.log(devices.map((d) => d.name)); // ["gpu:0", "gpu:1"] ([] without WebGPU)
 * ```
 */
export interface TryAllGpusOptions {
  /**
   * How many devices to make. With several physical adapters (Dawn), devices go to them in
   * turn; with one, they are logical devices on it.
   * @default {AUTOPAR_DEVICES, else one per physical adapter when there are several, else 2}
   */
  count?: number;
  /**
   * The WebGPU implementation: "deno" (navigator.gpu), "dawn" (npm:webgpu) or "auto", which
   * tries Dawn and falls back to Deno's, saying why in one line.
   * @default {AUTOPAR_WEBGPU, else "auto"}
   */
  backend?: BackendChoice;
}

/**
 * The exact command that installs a lavapipe Dawn accepts (Mesa 25 from bookworm-backports);
 * Debian 12's own Mesa 22.3.6 is refused.
 */
export const MESA_INSTALL_COMMAND =
  "echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list && apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers";

/**
 * Whether Mesa's Vulkan software driver (lavapipe) is there for the Vulkan loader: its ICD
 * file in the standard places, or in VK_ICD_FILENAMES / VK_DRIVER_FILES when they are set.
 * Without it, Deno's WebGPU reaches llvmpipe through GL, where all devices share one pool.
 */
export function lavapipeInstalled(): boolean {
  const given = Deno.env.get("VK_DRIVER_FILES") || Deno.env.get("VK_ICD_FILENAMES");
  const files = given
    ? given.split(":")
    : ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"].flatMap((dir) => {
      try {
        return [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`);
      } catch {
        return [];
      }
    });
  return files.some((f) => /lvp_icd/.test(f) && exists(f));
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The fix to suggest when `backend` could not start with `reason`. */
export function backendFix(backend: WebGpuBackend, reason: string): string {
  if (backend === "deno") return "run Deno 2 (npm install -g deno@2.9.6)";
  if (/ArrayDynamicIndexing|no suitable backends|vulkan|adapter/i.test(reason)) {
    return `install a Vulkan driver Dawn accepts: ${MESA_INSTALL_COMMAND}`;
  }
  return `check that ${DAWN_SPECIFIER} can be downloaded and run with -A, or use AUTOPAR_WEBGPU=deno`;
}

/** The devices started so far, the backend they run on, and where they are coming from. */
let started: Promise<WebGpuDevice | undefined>[] = [];
let startedBackend: WebGpuBackend | undefined;
let planned:
  | Promise<{ backend: WebGpuBackend; adapters: (string | undefined)[] } | undefined>
  | undefined;

/**
 * Destroys every WebGPU device and stops its Worker, freeing their memory; tensors on them
 * are gone. Devices are made anew by the next `tryAllGpus()`, on any backend.
 *
 * @example
 * ```ts
 * import { closeDevices, tryAllGpus } from "./discovery.ts";
 * const before = await tryAllGpus({ count: 1 });
 * await closeDevices(); // their Workers are gone, and the tensors on them
 * const after = await tryAllGpus({ count: 1 }); // new devices, with the same names
 * console.log(after.map((d) => d.name), after[0] === before[0]); // ["gpu:0"] false
 * ```
 */
export function closeDevices(): Promise<void> {
  const devices = started;
  started = [];
  startedBackend = undefined;
  planned = undefined;
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

/**
 * The device count asked for: AUTOPAR_DEVICES, or `undefined` when it is unset. Throws a
 * RangeError for a bad value.
 */
export function deviceCountFromEnv(): number | undefined {
  const env = Deno.env.get("AUTOPAR_DEVICES");
  if (env === undefined || env === "") return undefined;
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
 * Finds the backend that starts and the adapters its devices open, starting device 0 on the
 * way (kept when it runs on the adapter the plan gives it). Resolves to `undefined` when no
 * backend has an adapter; throws an Error naming the fix when an explicitly chosen backend
 * cannot start.
 */
async function plan(
  choice: BackendChoice,
  count: number | undefined,
): Promise<{ backend: WebGpuBackend; adapters: (string | undefined)[] } | undefined> {
  for (const backend of backendsToTry(choice)) {
    if (backend === "deno" && (typeof navigator === "undefined" || !("gpu" in navigator))) {
      continue; // "in": no GPU instance on this thread
    }
    threadsPerDevice ??= splitSoftwareThreads(count ?? 2);
    const first = WebGpuDevice.start(0, { backend, threads: threadsPerDevice });
    let device: WebGpuDevice;
    try {
      device = await first;
    } catch (e) {
      const reason = e instanceof Error ? e.message.split("\n")[0] : String(e);
      // Deno's WebGPU without an adapter is a machine without a GPU, not a fault.
      if (backend === "deno" && /returned null/.test(reason)) continue;
      if (choice !== "auto") {
        throw new Error(
          `Cannot start WebGPU backend "${backend}": ${reason}. To fix: ${
            backendFix(backend, reason)
          }`,
          { cause: e },
        );
      }
      const next = backendsToTry(choice)[backendsToTry(choice).indexOf(backend) + 1];
      if (next) {
        console.error(
          `autopar: ${backend} could not start (${reason}); using ${next}. To fix: ${
            backendFix(backend, reason)
          }`,
        );
      }
      continue;
    }
    const { adapters, physical } = adapterPlan(device.listed, count);
    startedBackend = backend;
    if (physical > 1) {
      // Device 0 opened the default adapter; each device now opens the one it is given.
      await device.close();
    } else started = [first];
    return { backend, adapters };
  }
  // No backend has an adapter: tryAllGpus() resolves to [], like d2l's without GPUs.
  return undefined;
}

/**
 * All WebGPU devices, like `d2l.try_all_gpus()`, each in its own Worker: with Dawn and
 * several physical adapters, one device per adapter; otherwise `count` logical devices on
 * the one adapter. Resolves to `[]` when there is no WebGPU adapter. Throws a RangeError for
 * a bad count or backend name, and an Error naming the fix when the chosen backend cannot
 * start. Once devices run on one backend, asking for the other needs `closeDevices()` first.
 *
 * @example
 * ```ts
 * import { tryAllGpus } from "./discovery.ts";
 * const devices = await tryAllGpus({ count: 2 });
 * console.log(devices.map((d) => `${d.name}: ${d.info.adapter} (${d.info.backend})`));
 * // on a software adapter: ["gpu:0: llvmpipe: Mesa 25.0.7 … (dawn)", "gpu:1: llvmpipe: … (dawn)"]
 * ```
 */
export async function tryAllGpus(options: TryAllGpusOptions = {}): Promise<Device[]> {
  const quiet = quietStderr();
  try {
    return await findDevices(options);
  } finally {
    quiet();
  }
}

async function findDevices(options: TryAllGpusOptions): Promise<Device[]> {
  const asked = options.count ?? deviceCountFromEnv();
  if (asked !== undefined && (!Number.isInteger(asked) || asked < 1)) {
    throw new RangeError(`Cannot make ${asked} devices: count must be a whole number >= 1`);
  }
  const choice = backendChoice(options.backend, Deno.env.get("AUTOPAR_WEBGPU"));
  if (startedBackend !== undefined && choice !== "auto" && choice !== startedBackend) {
    throw new Error(
      `Cannot start devices on "${choice}": they already run on "${startedBackend}"; call closeDevices() first`,
    );
  }
  planned ??= plan(choice, asked);
  let p;
  try {
    p = await planned;
  } catch (e) {
    planned = undefined; // a later call may ask for another backend
    throw e;
  }
  if (!p) {
    planned = undefined;
    return [];
  }
  const count = asked ?? p.adapters.length;
  for (let i = started.length; i < count; i++) {
    const adapter = p.adapters[i % p.adapters.length];
    started.push(
      WebGpuDevice.start(i, { backend: p.backend, adapter, threads: threadsPerDevice }).catch(
        () => undefined,
      ),
    );
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
  const devices = await tryAllGpus(
    started.length > 0 ? { count: started.length } : {},
  );
  return devices[i] ?? cpu();
}
