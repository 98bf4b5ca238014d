/**
 * Loads a WebGPU implementation inside a device Worker: Deno's `navigator.gpu`, or Dawn's
 * Node binding with its polling tamed (see dawn_polling.ts). Only Workers import this: the
 * main thread holds no GPU instance.
 *
 * @module
 */
import {
  type AdapterListing,
  DAWN_SPECIFIER,
  parseDawnAdapterList,
  type WebGpuBackend,
} from "./backend.ts";
import { installPolling, type Polling, type PollingOptions } from "./dawn_polling.ts";

/** A loaded backend: its GPU, and for Dawn the polling policy to wake on each wait. */
export interface LoadedGpu {
  gpu: GPU;
  polling?: Polling;
  /** The adapters the backend lists (Dawn only; Deno's WebGPU cannot list them). */
  adapters: AdapterListing[];
}

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: Promise<DawnModule> | undefined;
let polling: Polling | undefined;

/** Dawn's module, loaded once per thread, its WebGPU classes installed as globals. */
function loadDawn(): Promise<DawnModule> {
  return dawn ??= import(DAWN_SPECIFIER).then((m: DawnModule) => {
    Object.assign(globalThis, m.globals);
    return m;
  });
}

/**
 * The adapters Dawn lists. dawn.node has no call for it, but it names them all when asked
 * for an adapter it does not have.
 */
async function listDawnAdapters(m: DawnModule): Promise<AdapterListing[]> {
  try {
    await m.create(["adapter=\u0001autopar-list"]).requestAdapter();
  } catch (e) {
    return parseDawnAdapterList(e instanceof Error ? e.message : String(e));
  }
  return [];
}

/** AUTOPAR_DAWN_SPIN_MS and AUTOPAR_DAWN_SLEEP_MS, for benchmarks of the policy. */
function pollingFromEnv(): PollingOptions {
  const read = (name: string) => {
    const v = Deno.env.get(name);
    if (v === undefined || v === "") return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) {
      throw new RangeError(`Cannot use ${name}="${v}": it must be a number of ms >= 0`);
    }
    return n;
  };
  return { spinMs: read("AUTOPAR_DAWN_SPIN_MS"), sleepMs: read("AUTOPAR_DAWN_SLEEP_MS") };
}

/**
 * Loads `backend`; for Dawn, `adapter` picks the first adapter whose name contains it, and
 * `list` asks for the list of every adapter.
 * Rejects with a message that names the cause when the backend cannot load.
 */
export async function loadGpu(
  backend: WebGpuBackend,
  adapter?: string,
  list = false,
): Promise<LoadedGpu> {
  if (backend === "deno") {
    if (typeof navigator === "undefined" || !navigator.gpu) {
      throw new Error("Deno's navigator.gpu is missing");
    }
    return { gpu: navigator.gpu, adapters: [] };
  }
  const m = await loadDawn();
  polling ??= installPolling(pollingFromEnv());
  // Listing makes a Dawn instance of its own (and Dawn's start-up warnings): only when asked.
  const adapters = list ? await listDawnAdapters(m) : [];
  const gpu = m.create(adapter === undefined ? [] : [`adapter=${adapter}`]);
  return { gpu, polling, adapters };
}
