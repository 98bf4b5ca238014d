/**
 * The main thread's handle on one WebGPU device Worker: starts it, sends batches, and
 * routes its replies. The Worker is referenced (keeps the process alive) only while work
 * is in flight on it.
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import type { Device, DeviceCapabilities, DeviceInfo } from "./device.ts";
import type { AdapterReport, Command, FromWorker, ToWorker } from "./protocol.ts";
import { type DeviceRuntime, registerRuntime, type Report } from "./runtime.ts";
import { type AdapterListing, isSoftwareName, type WebGpuBackend } from "./backend.ts";
import { kernelDefinition } from "../kernels/registry.ts";

/** A device Worker that has not started within this many ms is given up (an Error). */
const START_TIMEOUT_MS = 120_000;
/** A device Worker that has not closed within this many ms is terminated. */
const CLOSE_TIMEOUT_MS = 10_000;

/** Software adapters run "GPU" work on the CPU. */
export function isSoftwareAdapter(a: { description: string; isFallbackAdapter: boolean }): boolean {
  return a.isFallbackAdapter || isSoftwareName(a.description);
}

/**
 * The Worker's module. node:worker_threads (whose Workers can be unreferenced, so an idle
 * device does not keep the process alive) takes only file: and data: URLs; when autopar
 * is imported over http, a one-line data: module imports the Worker's remote module.
 */
function workerUrl(): URL {
  const url = new URL("./webgpu_worker.ts", import.meta.url);
  if (url.protocol === "file:") return url;
  return new URL(
    `data:text/javascript,${encodeURIComponent(`import ${JSON.stringify(url.href)};`)}`,
  );
}

/**
 * Waits until no thread of the process is called `name` (at most `limitMs`). A stopped
 * Worker's threads (its own and the driver's) go on tearing the driver down for some
 * milliseconds after terminate(); a process that exits meanwhile can crash in the driver.
 * Where /proc is not readable, it waits 100 ms instead.
 */
async function threadsGone(name: string, limitMs = 2000): Promise<void> {
  const alive = () => {
    for (const task of Deno.readDirSync("/proc/self/task")) {
      try {
        if (Deno.readTextFileSync(`/proc/self/task/${task.name}/comm`).trim() === name) return true;
      } catch {
        // the thread ended while we looked
      }
    }
    return false;
  };
  const start = performance.now();
  try {
    while (alive() && performance.now() - start < limitMs) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } catch {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A WebGPU device living in its own Worker; it is its own runtime (see runtime.ts). */
export class WebGpuDevice implements Device, DeviceRuntime {
  readonly kind = "webgpu" as const;
  readonly name: string;
  readonly index: number;
  /** The device a runtime runs: this one. */
  readonly device: Device = this;
  readonly info: DeviceInfo;
  /** Device memory read back by copies, WGSL kernels, device programs; timestamps if the adapter has them. */
  readonly capabilities: DeviceCapabilities;
  /** Every adapter the backend listed when this device started (Dawn only). */
  readonly listed: readonly AdapterListing[];
  /** Called with each report of the Worker; the engine installs it. */
  onReport: (report: Report) => void = () => {};
  readonly #worker: Worker;
  #batches = 0;
  /** Kernels registered at run time whose definitions the Worker has been sent. */
  readonly #defined = new Set<string>();
  #lost: string | undefined;
  #exited = false;

  /** Batches sent to the Worker so far; each becomes at most one command buffer. */
  get batches(): number {
    return this.#batches;
  }

  private constructor(index: number, worker: Worker, adapter: AdapterReport, threads?: number) {
    this.index = index;
    this.name = `gpu:${index}`;
    this.#worker = worker;
    this.listed = adapter.listed;
    const software = isSoftwareAdapter(adapter);
    this.info = Object.freeze({
      backend: adapter.backend,
      adapter: adapter.description || adapter.vendor || "unknown adapter",
      software,
      threads: software ? threads : undefined,
      features: Object.freeze([...adapter.features]),
      maxBufferSize: adapter.maxBufferSize,
      maxStorageBufferBindingSize: adapter.maxStorageBufferBindingSize,
    });
    this.capabilities = Object.freeze({
      hostVisible: false,
      readback: true,
      timestamps: adapter.features.includes("timestamp-query"),
      programs: true,
      target: "wgsl",
      limits: Object.freeze({
        maxBufferSize: adapter.maxBufferSize,
        maxStorageBufferBindingSize: adapter.maxStorageBufferBindingSize,
      }),
    });
    worker.on("message", (msg: FromWorker) => {
      if (msg.type === "done" || msg.type === "read" || msg.type === "read-failed") {
        this.onReport(msg);
      } else if (msg.type === "lost") this.#goneWith(`${this.name} was lost: ${msg.message}`);
    });
    registerRuntime(this);
    worker.on("error", (e) => {
      this.#goneWith(`${this.name}'s Worker failed: ${e instanceof Error ? e.message : e}`);
    });
    worker.on("exit", (code) => {
      this.#exited = true;
      this.#goneWith(`${this.name}'s Worker stopped (exit code ${code})`);
    });
    worker.unref();
  }

  /** Why the device can run nothing more; `undefined` while it works (see runtime.ts). */
  get lost(): string | undefined {
    return this.#lost;
  }

  /** Marks the device gone (the first reason stays) and fails what was in flight on it. */
  #goneWith(reason: string): void {
    this.#lost ??= reason;
    this.onReport({ type: "lost", message: this.#lost });
  }

  /**
   * Starts the Worker and its GPUDevice on `backend` (`adapter`: a name Dawn matches);
   * rejects with the Worker's reason when it finds no adapter.
   */
  static start(
    index: number,
    options: { backend: WebGpuBackend; adapter?: string; threads?: number },
  ): Promise<WebGpuDevice> {
    const { backend, adapter, threads } = options;
    return new Promise((resolve, reject) => {
      const worker = new Worker(workerUrl());
      const fail = (error: Error) => {
        clearTimeout(timer);
        worker.off("message", first);
        worker.off("exit", exited);
        worker.terminate();
        reject(error);
      };
      const first = (msg: FromWorker) => {
        if (msg.type === "ready") {
          clearTimeout(timer);
          worker.off("message", first);
          worker.off("exit", exited);
          worker.off("error", fail);
          resolve(new WebGpuDevice(index, worker, msg.adapter, threads));
        } else fail(new Error(msg.type === "init-failed" ? msg.message : `unexpected ${msg.type}`));
      };
      const exited = (code: number) =>
        fail(new Error(`gpu:${index}'s Worker stopped while starting (exit code ${code})`));
      // A driver that never answers must not hang tryAllGpus().
      const timer = setTimeout(() =>
        fail(
          new Error(
            `gpu:${index} did not start within ${START_TIMEOUT_MS / 1000} s (${backend} backend)`,
          ),
        ), START_TIMEOUT_MS);
      worker.on("message", first);
      worker.once("error", fail);
      worker.once("exit", exited);
      worker.postMessage(
        { type: "init", index, backend, adapter, list: index === 0 } satisfies ToWorker,
      );
    });
  }

  /**
   * Sends one batch, timed with device timestamps when `timing` is set and the adapter can;
   * the ArrayBuffers of writes are transferred, not copied.
   */
  send(commands: Command[], timing = false): void {
    if (this.#lost) {
      // Nothing runs any more: the engine fails these ops with the reason.
      const message = this.#lost;
      queueMicrotask(() => this.onReport({ type: "lost", message }));
      return;
    }
    this.#batches++;
    this.#define(commands);
    const transfer = commands.flatMap((c) => c.t === "write" ? [c.data] : []);
    this.#worker.postMessage({ type: "batch", commands, timing } satisfies ToWorker, transfer);
  }

  /**
   * Sends the Worker, ahead of `commands`, the definitions of the kernels registered at run time
   * (registerKernel) that they use and it has not been sent: its registry is a module of its own.
   */
  #define(commands: Command[]): void {
    for (const c of commands) {
      if (c.t === "run") this.#defineKernel(c.kernel);
      else if (c.t === "define") { for (const k of c.kernels) this.#defineKernel(k.kernel); }
    }
  }

  #defineKernel(name: string): void {
    if (this.#defined.has(name)) return;
    const definition = kernelDefinition(name);
    if (!definition) return; // a built-in kernel: the Worker's registry has it
    this.#defined.add(name);
    this.#worker.postMessage({ type: "kernel", definition } satisfies ToWorker);
  }

  /** The Worker keeps the process alive only while work is in flight on it. */
  setBusy(busy: boolean): void {
    if (busy) this.#worker.ref();
    else this.#worker.unref();
  }

  /**
   * Destroys the GPUDevice and stops the Worker; its buffers are gone. Work sent before runs
   * to its end; ops sent after fail, saying the device was closed. A Worker that does not
   * answer within {@link CLOSE_TIMEOUT_MS} is terminated.
   */
  async close(): Promise<void> {
    const wasLost = this.#lost !== undefined;
    this.#lost ??= `${this.name} was closed by closeDevices()`;
    const threadId = this.#worker.threadId;
    if (!this.#exited && !wasLost) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = new Promise<void>((resolve) => {
        const onClosed = (msg: FromWorker) => {
          if (msg.type !== "closed") return;
          this.#worker.off("message", onClosed);
          resolve();
        };
        this.#worker.on("message", onClosed);
        this.#worker.once("exit", () => resolve());
        timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
      });
      this.#worker.ref();
      this.#worker.postMessage({ type: "close" } satisfies ToWorker);
      await closed;
      clearTimeout(timer);
    }
    // What was still waiting for this device fails now, naming the reason.
    this.onReport({ type: "lost", message: this.#lost });
    if (!this.#exited) await this.#worker.terminate();
    await threadsGone(`worker-${threadId}`);
  }

  /** The device's name, for messages. */
  toString(): string {
    return this.name;
  }
}
