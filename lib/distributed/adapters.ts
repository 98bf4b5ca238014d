/**
 * Which GPU each local process of a launch gets. autopar opens the default adapter of the
 * WebGPU backend (Dawn names adapters only by a substring of their name, so identical GPUs,
 * eight "NVIDIA H200", cannot be told apart that way). The handle that does tell them apart
 * is the PCI address, and Mesa's Vulkan device-select layer (an implicit layer shipped with
 * `mesa-vulkan-drivers`, over every Vulkan driver, NVIDIA's too) narrows what one process
 * sees to one address: `DRI_PRIME=pci-DDDD_BB_DD_F` picks it and
 * `MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE=1` hides the others (mesa
 * src/vulkan/device-select-layer/device_select_layer.c). On one adapter every child gets it;
 * on a software adapter (llvmpipe) the cores are split with LP_NUM_THREADS.
 *
 * @module
 */

/**
 * A GPU this process may open, found through its device node.
 *
 * @example
 * ```ts
 * import type { LocalGpu } from "./adapters.ts";
 * const gpu: LocalGpu = { address: "0000:17:00.0", vendor: "0x10de", node: "/dev/nvidia0" };
 * console.log(gpu.address); // "0000:17:00.0"
 * ```
 */
export interface LocalGpu {
  /** Its PCI address, domain:bus:device.function, for example "0000:17:00.0". */
  address: string;
  /** The PCI vendor id, for example "0x10de" (NVIDIA), "0x1002" (AMD), "0x8086" (Intel). */
  vendor: string;
  /** The device node through which it was found: /dev/nvidiaN or /dev/dri/renderDN. */
  node: string;
}

/**
 * How the adapters are shared out: one environment per local rank, and a line that says
 * what was done.
 *
 * @example
 * ```ts
 * import { planAdapters } from "./adapters.ts";
 * const plan = planAdapters([], 2, { cores: 2, deviceSelectLayer: true });
 * console.log(plan.kind, plan.env[1]); // "software" { LP_NUM_THREADS: "1" }
 * ```
 */
export interface AdapterPlan {
  /**
   * "per-gpu": each child sees only its own GPU (round-robin when there are more children);
   * "shared": every child opens the same adapter, or every GPU where they cannot be narrowed;
   * "software": no GPU was found, so the children share a software adapter and its cores.
   */
  kind: "per-gpu" | "shared" | "software";
  /** The variables to add to local rank i's environment. */
  env: Record<string, string>[];
  /** One line for the launcher's output. */
  summary: string;
}

/** Facts about this machine that {@linkcode planAdapters} needs. */
export interface AdapterFacts {
  /** Logical cores. */
  cores: number;
  /** Whether Mesa's device-select Vulkan layer is installed. */
  deviceSelectLayer: boolean;
  /** LP_NUM_THREADS as the user set it, kept when valid. */
  lpNumThreads?: string;
}

/** The device-select layer's tag for a PCI address: "0000:17:00.0" -> "pci-0000_17_00_0". */
export function driPrimeTag(address: string): string {
  return `pci-${address.replace(/[:.]/g, "_")}`;
}

/**
 * Shares `gpus` out among `nproc` local ranks. Pure: the facts are passed in (see
 * {@linkcode findLocalGpus} and {@linkcode hasDeviceSelectLayer}).
 *
 * @example
 * ```ts
 * import { planAdapters } from "./adapters.ts";
 * const gpus = [0, 1].map((i) => ({
 *   address: `0000:${17 + i}:00.0`, vendor: "0x10de", node: `/dev/nvidia${i}`,
 * }));
 * const plan = planAdapters(gpus, 2, { cores: 16, deviceSelectLayer: true });
 * console.log(plan.env[1].DRI_PRIME); // "pci-0000_18_00_0"
 * ```
 */
export function planAdapters(
  gpus: readonly LocalGpu[],
  nproc: number,
  facts: AdapterFacts,
): AdapterPlan {
  const ranks = Array.from({ length: nproc }, (_, i) => i);
  if (gpus.length === 0) {
    const given = Number(facts.lpNumThreads);
    const threads = Number.isInteger(given) && given > 0
      ? given
      : Math.max(1, Math.floor(facts.cores / nproc));
    return {
      kind: "software",
      env: ranks.map(() => ({ LP_NUM_THREADS: String(threads) })),
      summary: `no GPU found: every rank shares the software adapter, LP_NUM_THREADS=${threads} ` +
        `each (${facts.cores} cores)`,
    };
  }
  if (gpus.length === 1) {
    return {
      kind: "shared",
      env: ranks.map(() => ({})),
      summary: `one GPU (${gpus[0].address}): every rank opens it`,
    };
  }
  if (!facts.deviceSelectLayer) {
    return {
      kind: "shared",
      env: ranks.map(() => ({})),
      summary: `${gpus.length} GPUs, but Mesa's device-select Vulkan layer is missing, so every ` +
        `rank sees all of them and opens the default one; to give each its own, install it ` +
        `(apt-get install -y mesa-vulkan-drivers)`,
    };
  }
  const env = ranks.map((i) => ({
    DRI_PRIME: driPrimeTag(gpus[i % gpus.length].address),
    MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: "1",
    AUTOPAR_GPU_ADDRESS: gpus[i % gpus.length].address,
  }));
  const shared = nproc > gpus.length ? `, ${nproc} ranks round-robin` : "";
  return {
    kind: "per-gpu",
    env,
    summary: `${gpus.length} GPUs: rank i sees only GPU i % ${gpus.length}${shared} ` +
      `(${gpus.map((g) => g.address).join(", ")})`,
  };
}

/**
 * The GPUs this process can open: NVIDIA GPUs whose /dev/nvidiaN node exists (a container
 * sees the host's whole PCI tree but only the nodes it was given), and every PCI device
 * behind a /dev/dri render node (AMD, Intel, and NVIDIA through nvidia-drm), without
 * repeats. `[]` on a machine without a GPU, where only software adapters remain.
 *
 * @example
 * ```ts
 * import { findLocalGpus } from "./adapters.ts";
 * console.log(findLocalGpus().map((g) => g.address)); // [] on a machine without a GPU
 * ```
 */
export function findLocalGpus(root = ""): LocalGpu[] {
  const found = new Map<string, LocalGpu>();
  for (const dir of list(`${root}/proc/driver/nvidia/gpus`)) {
    const info = read(`${root}/proc/driver/nvidia/gpus/${dir}/information`) ?? "";
    const minor = /Device Minor:\s*(\d+)/.exec(info)?.[1];
    const address = (/Bus Location:\s*(\S+)/.exec(info)?.[1] ?? dir).toLowerCase();
    const node = `/dev/nvidia${minor}`;
    if (minor !== undefined && exists(`${root}${node}`)) {
      found.set(address, { address, vendor: "0x10de", node });
    }
  }
  for (const name of list(`${root}/dev/dri`).filter((n) => /^renderD\d+$/.test(n)).sort()) {
    let device: string;
    try {
      device = Deno.realPathSync(`${root}/sys/class/drm/${name}/device`);
    } catch {
      continue;
    }
    const address = device.split("/").pop()!.toLowerCase();
    if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(address)) continue; // not PCI
    if (found.has(address)) continue;
    const vendor = (read(`${device}/vendor`) ?? "").trim();
    found.set(address, { address, vendor, node: `/dev/dri/${name}` });
  }
  return [...found.values()].sort((a, b) => a.address.localeCompare(b.address));
}

/** Whether Mesa's device-select layer is among the implicit Vulkan layers. */
export function hasDeviceSelectLayer(root = ""): boolean {
  const dirs = [
    "/usr/share/vulkan/implicit_layer.d",
    "/etc/vulkan/implicit_layer.d",
    "/usr/local/share/vulkan/implicit_layer.d",
  ];
  return dirs.some((d) => list(`${root}${d}`).some((f) => /MESA_device_select/.test(f)));
}

function list(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch {
    return [];
  }
}

function read(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
