/**
 * Test helpers that run one kernel on a real WebGPU device, through the engine's own
 * batch runner.
 *
 * @module
 */

import type { KernelParams, KernelSpec } from "../../lib/kernels/kernel.ts";
import { BatchRunner } from "../../lib/devices/batch_runner.ts";
import { EagerWaits } from "../../lib/devices/eager_waits.ts";
import type { Command, FromWorker } from "../../lib/devices/protocol.ts";

/**
 * Requests a fresh device whose buffer limits are raised to the adapter's maxima.
 * Throws if WebGPU has no adapter. Call `device.destroy()` when done.
 */
export async function getTestDevice(): Promise<GPUDevice> {
  // Mesa's Vulkan driver complains on every adapter request without XDG_RUNTIME_DIR.
  if (Deno.env.get("XDG_RUNTIME_DIR") === undefined) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("Cannot run GPU tests as navigator.gpu has no adapter");
  return await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
    },
  });
}

/** Reports of a runner, routed to the op that waits for them. */
interface Harness {
  runner: BatchRunner;
  waiting: Map<number, (msg: FromWorker) => void>;
  nextId: number;
}

/** One runner per device: kernels are dispatched exactly as the engine's Workers do. */
const harnesses = new WeakMap<GPUDevice, Harness>();

function harnessFor(device: GPUDevice): Harness {
  let h = harnesses.get(device);
  if (!h) {
    const waiting = new Map<number, (msg: FromWorker) => void>();
    const route = (msg: FromWorker) => {
      if (msg.type === "read" || msg.type === "read-failed") waiting.get(msg.op)?.(msg);
      else if (msg.type === "done") {
        for (const op of [...msg.ops, ...msg.failures.map((f) => f.op)]) waiting.get(op)?.(msg);
      }
    };
    h = {
      runner: new BatchRunner(device, new EagerWaits(device.queue), route),
      waiting,
      nextId: 1,
    };
    harnesses.set(device, h);
  }
  return h;
}

/**
 * Runs `spec` once on `device` through a {@link BatchRunner} (the engine's own dispatch
 * path) and reads its outputs back (`outputLengths` floats each). Throws the op's failure
 * (a compile or validation error) when it fails.
 */
export async function runKernel<P extends KernelParams>(
  device: GPUDevice,
  spec: KernelSpec<P>,
  params: P,
  inputs: Float32Array[],
  outputLengths: number[],
): Promise<Float32Array[]> {
  const h = harnessFor(device);
  const id = () => h.nextId++;
  const ins = inputs.map((data) => ({ op: id(), buf: id(), data }));
  const outs = outputLengths.map((n) => ({ id: id(), bytes: n * 4, read: id() }));
  const run = id();
  const commands: Command[] = [
    ...ins.map(({ op, buf, data }) => ({
      t: "write" as const,
      op,
      buf,
      data: data.slice().buffer as ArrayBuffer,
    })),
    {
      t: "run",
      op: run,
      kernel: spec.name,
      params,
      inputs: ins.map((i) => i.buf),
      outputs: outs.map(({ id, bytes }) => ({ id, bytes })),
    },
    ...outs.map((o) => ({ t: "read" as const, op: o.read, buf: o.id, bytes: o.bytes })),
    ...[...ins.map((i) => i.buf), ...outs.map((o) => o.id)].map((buf) => ({
      t: "free" as const,
      buf,
    })),
  ];
  const report = (op: number) =>
    new Promise<FromWorker>((resolve) => {
      h.waiting.set(op, (msg) => {
        h.waiting.delete(op);
        resolve(msg);
      });
    });
  const done = report(run);
  const reads = outs.map((o) => report(o.read));
  await h.runner.run(commands, false);
  const msg = await done;
  const failure = msg.type === "done" ? msg.failures.find((f) => f.op === run) : undefined;
  if (failure) throw new Error(`Cannot run kernel ${spec.name}: ${failure.message}`);
  return (await Promise.all(reads)).map((r, i) => {
    if (r.type !== "read") {
      throw new Error(
        `Cannot read output ${i} of ${spec.name}: ${(r as { message: string }).message}`,
      );
    }
    return new Float32Array(r.data);
  });
}
