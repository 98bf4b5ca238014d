/**
 * The device Worker: owns one GPUDevice and runs the engine's batches in order through a
 * {@link BatchRunner}, one command buffer per batch (batches that queued up while the device
 * was busy run as one).
 * Deno's WebGPU calls that wait for the device block this thread, so it waits only right
 * before a submission and when idle (see drains.ts), and encodes the next batch while the
 * device runs the one before.
 *
 * @module
 */
import { parentPort } from "node:worker_threads";
import type { Command, FromWorker, ToWorker } from "./protocol.ts";
import { Drains, type Waits } from "./drains.ts";
import { EagerWaits } from "./eager_waits.ts";
import type { WebGpuBackend } from "./backend.ts";
import { loadGpu } from "./gpu_loader.ts";
import { BatchRunner } from "./batch_runner.ts";
import { nextTask } from "./next_task.ts";

const port = parentPort!;
const post = (msg: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

let device: GPUDevice | undefined;
let runner: BatchRunner | undefined;
/** Messages not yet handled, in order. */
const inbox: ToWorker[] = [];
let running = false;
/** When this thread waits for the device: see drains.ts and eager_waits.ts. */
let drains: Waits | undefined;
/** Most ops in one command buffer when queued batches are merged. */
const MAX_MERGED_OPS = 256;

port.on("message", (msg: ToWorker) => {
  inbox.push(msg);
  if (!running) {
    running = true;
    handleInbox();
  }
});

/**
 * Handles the inbox in order. Between two messages it lets a task pass, so what resolved
 * meanwhile (completion reports, readbacks) is delivered; batches that queued up while the
 * device was busy run as one, so the next command buffer is encoded while the device runs
 * this one. Once the inbox is empty, the Worker is idle and may wait for its device.
 */
async function handleInbox(): Promise<void> {
  const msg = inbox.shift()!;
  try {
    if (msg.type === "init") await init(msg.backend, msg.adapter, msg.list);
    else if (msg.type === "close") await close();
    else {
      const commands = [...msg.commands];
      const timing = msg.timing ?? false;
      while (
        inbox[0]?.type === "batch" && (inbox[0].timing ?? false) === timing &&
        commands.length + inbox[0].commands.length <= MAX_MERGED_OPS
      ) commands.push(...(inbox.shift() as { commands: Command[] }).commands);
      await runner!.run(commands, timing);
    }
  } finally {
    if (inbox.length > 0) nextTask(handleInbox);
    else {
      running = false;
      drains?.idle();
      runner?.idle();
    }
  }
}

async function init(backend: WebGpuBackend, adapterName?: string, list = false): Promise<void> {
  try {
    const loaded = await loadGpu(backend, adapterName, list);
    const adapter = await loaded.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new Error(`${backend}: requestAdapter() returned null`);
    const features = [...adapter.features] as GPUFeatureName[];
    device = await adapter.requestDevice({
      requiredFeatures: features.filter((f) => f === "timestamp-query"),
      requiredLimits: {
        maxBufferSize: adapter.limits.maxBufferSize,
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      },
    });
    // Deno's waits block this thread, Dawn's do not: see drains.ts and eager_waits.ts.
    drains = backend === "deno"
      ? new Drains(device.queue, () => inbox.length === 0 && !running)
      : new EagerWaits(device.queue, () => loaded.polling?.wake());
    runner = new BatchRunner(device, drains, post, () => loaded.polling?.wake());
    device.lost.then((info) => {
      if (info.reason !== "destroyed") post({ type: "lost", message: info.message || "lost" });
    });
    post({
      type: "ready",
      adapter: {
        description: adapter.info.description,
        vendor: adapter.info.vendor,
        architecture: adapter.info.architecture,
        isFallbackAdapter: adapter.info.isFallbackAdapter ?? false,
        backend,
        listed: loaded.adapters,
        features: features.map(String),
        maxBufferSize: device.limits.maxBufferSize,
        maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      },
    });
  } catch (e) {
    post({ type: "init-failed", message: e instanceof Error ? e.message : String(e) });
  }
}

/** Destroys every buffer and the device, so the process can end without tearing down live GPU state. */
async function close(): Promise<void> {
  if (runner?.phases.enabled) {
    console.error(
      `AUTOPAR_PROFILE ${JSON.stringify({ ...runner.phases.totals, ...runner.reuse })}`,
    );
  }
  await runner?.destroyAll();
  device?.destroy();
  post({ type: "closed" });
}
