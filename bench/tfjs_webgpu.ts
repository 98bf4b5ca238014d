// tfjs-backend-webgpu 4.22 on the main thread, on one WebGPU runtime: Deno's navigator.gpu,
// or Dawn's put in its place (tfjs asks navigator.gpu for its adapter), so that a benchmark
// compares autopar and tfjs on the same runtime and adapter. Shared by bench/small_ops.ts and
// bench/fusion.ts.
//
// tfjs's CommonJS bundles, as bench/mlp.ts loads them.
import tfjsBundle from "npm:@tensorflow/tfjs@4.22.0/dist/tf.node.js";
import type * as TF from "npm:@tensorflow/tfjs-core@4.22.0";
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0/dist/tf-backend-webgpu.node.js";
import { DAWN_SPECIFIER, type WebGpuBackend } from "../lib/devices/backend.ts";

/** The GPU object tfjs ran on, and whether its device is really that backend's. */
export interface TfjsGpu {
  source: string;
  deviceClass: string;
  deviceIsDawn: boolean;
  deviceIsDeno: boolean;
}

/** tfjs, started on `backend`; throws when its device is not that backend's. */
export async function startTfjs(
  backend: WebGpuBackend,
): Promise<{ tf: typeof TF; adapter: string; gpu: TfjsGpu }> {
  const tf = tfjsBundle as unknown as typeof TF;
  const denoDevice = globalThis.GPUDevice;
  let dawnDevice: unknown;
  let source = "Deno's navigator.gpu";
  if (backend === "dawn") {
    const m = await import(DAWN_SPECIFIER) as {
      create(flags: string[]): GPU;
      globals: Record<string, unknown>;
    };
    Object.assign(globalThis, m.globals);
    Object.defineProperty(navigator, "gpu", { value: m.create([]), configurable: true });
    dawnDevice = m.globals.GPUDevice;
    source = `Dawn's GPU, create([]) of ${DAWN_SPECIFIER}, set as navigator.gpu`;
  }
  if (!(await tf.setBackend("webgpu"))) throw new Error("tf.setBackend('webgpu') failed");
  await tf.ready();
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const deviceIsDawn = typeof dawnDevice === "function" &&
    device instanceof (dawnDevice as typeof GPUDevice);
  const deviceIsDeno = device instanceof denoDevice;
  if (backend === "dawn" ? !deviceIsDawn || deviceIsDeno : !deviceIsDeno) {
    throw new Error(`tfjs's device is not ${backend}'s: it is a ${device.constructor.name}`);
  }
  // The adapter tfjs asked for: the same GPU object and options (see registerBackend).
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  return {
    tf,
    adapter: adapter?.info.description || adapter?.info.vendor || "unknown",
    gpu: { source, deviceClass: device.constructor.name, deviceIsDawn, deviceIsDeno },
  };
}
