/**
 * The WebGPU implementations a device Worker can run on: Deno's built-in `navigator.gpu`
 * ("deno") or Dawn, Chrome's WebGPU, through its Node binding on npm ("dawn"). This module
 * only names them and parses the user's choice; the Worker loads them (see gpu_loader.ts).
 *
 * @module
 */

/**
 * A WebGPU implementation.
 *
 * @example
 * ```ts
 * import type { WebGpuBackend } from "./backend.ts";
 * import { tryGpu } from "./discovery.ts";
 * const { backend } = (await tryGpu()).info;
 * const webgpu = backend === "deno" || backend === "dawn" ? backend as WebGpuBackend : undefined;
 * console.log(webgpu); // "dawn" ("deno" where Dawn cannot start, undefined without WebGPU)
 * ```
 */
export type WebGpuBackend = "deno" | "dawn";

/**
 * What a user may ask for: a backend, or "auto" for the one measured to be better.
 *
 * @example
 * ```ts
 * import type { BackendChoice } from "./backend.ts";
 * import { tryAllGpus } from "./discovery.ts";
 * const backend: BackendChoice = "auto"; // Dawn, else Deno's WebGPU; AUTOPAR_WEBGPU sets it too
 * const devices = await tryAllGpus({ count: 1, backend });
 * console.log(devices.length); // 1 (0 without WebGPU)
 * ```
 */
export type BackendChoice = "auto" | WebGpuBackend;

/** Every choice, for messages. */
export const BACKEND_CHOICES: readonly BackendChoice[] = ["auto", "deno", "dawn"];

/** The Dawn build autopar loads, by full specifier so that import by URL needs no import map. */
export const DAWN_SPECIFIER = "npm:webgpu@0.6.2";

/**
 * The order "auto" tries backends in: Dawn first. Its waits have no 10 ms floor (Deno's map
 * loop sleeps 10 ms before it looks again): on lavapipe, bench/backends.ts measured readbacks
 * 18x and small ops 1.8x faster, while Deno's backend led by 5-19% on a few figures, most of
 * which swapped places between runs (README, "Backends"). When Dawn cannot load, "auto" falls
 * back to Deno's.
 */
export const AUTO_ORDER: readonly WebGpuBackend[] = ["dawn", "deno"];

/**
 * Parses a backend choice from an option or from AUTOPAR_WEBGPU (option first). Throws a
 * RangeError that names the valid values for anything else.
 */
export function backendChoice(option?: string, env?: string): BackendChoice {
  const fromOption = option !== undefined;
  const value = option ?? (env === undefined || env === "" ? "auto" : env);
  if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  const where = fromOption ? `backend "${value}"` : `AUTOPAR_WEBGPU="${value}"`;
  throw new RangeError(
    `Cannot use ${where}: it must be one of ${BACKEND_CHOICES.map((c) => `"${c}"`).join(", ")}`,
  );
}

/** The backends to try for a choice, in order. */
export function backendsToTry(choice: BackendChoice): readonly WebGpuBackend[] {
  return choice === "auto" ? AUTO_ORDER : [choice];
}

/** One adapter as a backend lists it. */
export interface AdapterListing {
  /** The driver's name for the device, for example "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
  name: string;
  /** The native API under WebGPU, for example "vulkan". */
  api: string;
}

/**
 * Parses the adapter list of dawn.node's refusal of an adapter name it does not have: lines
 * like ` * backend: 'vulkan', name: 'NVIDIA H200'` (google/dawn, src/dawn/node/binding/GPU.cpp).
 */
export function parseDawnAdapterList(message: string): AdapterListing[] {
  const out: AdapterListing[] = [];
  for (const m of message.matchAll(/^\s*\* backend: '([^']*)', name: '(.*)'\s*$/gm)) {
    out.push({ api: m[1], name: m[2] });
  }
  return out;
}

/** Software adapters run "GPU" work on the CPU. */
export function isSoftwareName(name: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|softpipe|software/i.test(name);
}

/**
 * Which adapter each of `count` devices opens: one device per physical adapter when there
 * are several (software adapters are left out when a hardware one is there), round-robin
 * when more devices are asked for than there are adapters, and logical devices on the one
 * adapter when there is only one. Adapters are named by the substring Dawn matches, so two
 * adapters of the same name cannot be told apart: they count once (see the README).
 * `undefined` means the backend's default adapter.
 */
export function adapterPlan(
  listed: readonly AdapterListing[],
  count: number | undefined,
): { adapters: (string | undefined)[]; physical: number } {
  const hardware = listed.filter((a) => !isSoftwareName(a.name));
  const usable = [...new Set((hardware.length > 0 ? hardware : listed).map((a) => a.name))];
  if (usable.length <= 1) {
    return {
      adapters: Array.from({ length: count ?? 2 }, () => usable[0]),
      physical: usable.length,
    };
  }
  const n = count ?? usable.length;
  return {
    adapters: Array.from({ length: n }, (_, i) => usable[i % usable.length]),
    physical: usable.length,
  };
}
