/**
 * The device Worker: owns one GPUDevice and runs the engine's batches in order through a
 * {@link BatchRunner}, one command buffer per batch of at most {@link MAX_BATCH_OPS} commands
 * (batches that queued up while the device was busy run as one, a longer one is split).
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
import { defineKernel } from "../kernels/registry.ts";

const port = parentPort!;
const post = (msg: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

let device: GPUDevice | undefined;
let runner: BatchRunner | undefined;
/** Messages not yet handled, in order. */
const inbox: Exclude<ToWorker, { type: "kernel" }>[] = [];
let running = false;
/** When this thread waits for the device: see drains.ts and eager_waits.ts. */
let drains: Waits | undefined;
/**
 * The one batch limit: most commands in one command buffer. Batches that queued up while the
 * device was busy are merged up to it, and a longer one is split at it, so the next command
 * buffer is encoded while the device runs this one.
 */
const MAX_BATCH_OPS = 256;

port.on("message", (msg: ToWorker) => {
  // Registered at once: messages arrive in order, so before any batch that uses the kernel.
  if (msg.type === "kernel") return defineKernel(msg.definition);
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
      const timing = msg.timing ?? false;
      await runner!.run(nextBatch(msg.commands, timing), timing);
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

/**
 * The commands of the next command buffer: the first {@link MAX_BATCH_OPS} of `commands` (the
 * rest goes back to the head of the inbox), then those of the batches queued behind it with
 * the same timing, up to the limit.
 */
function nextBatch(commands: Command[], timing: boolean): Command[] {
  const batch = commands.slice(0, MAX_BATCH_OPS);
  if (commands.length > MAX_BATCH_OPS) {
    inbox.unshift({ type: "batch", commands: commands.slice(MAX_BATCH_OPS), timing });
    return batch;
  }
  while (batch.length < MAX_BATCH_OPS) {
    const next = inbox[0];
    if (next?.type !== "batch" || (next.timing ?? false) !== timing) break;
    const room = MAX_BATCH_OPS - batch.length;
    batch.push(...next.commands.slice(0, room));
    if (next.commands.length > room) next.commands = next.commands.slice(room);
    else inbox.shift();
  }
  return batch;
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
