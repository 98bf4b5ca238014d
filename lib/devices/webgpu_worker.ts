/**
 * The device Worker: owns one GPUDevice and runs the engine's batches in order, one
 * command buffer per batch (batches that queued up while the device was busy run as one).
 * Deno's WebGPU calls that wait for the device block this thread, so it waits only right
 * before a submission and when idle (see drains.ts), and encodes the next batch while the
 * device runs the one before.
 *
 * @module
 */
import { parentPort } from "node:worker_threads";
import { kernel } from "../kernels/registry.ts";
import { packUniforms, pipelineKey, wgslModule } from "../kernels/kernel.ts";
import type {
  Command,
  FromWorker,
  OpFailure,
  OpTiming,
  ReadCommand,
  RunCommand,
  ToWorker,
} from "./protocol.ts";
import { StagingRing } from "./staging_ring.ts";
import { Drains, type Waits } from "./drains.ts";
import { EagerWaits } from "./eager_waits.ts";
import type { WebGpuBackend } from "./backend.ts";
import { loadGpu } from "./gpu_loader.ts";
import type { Polling } from "./dawn_polling.ts";
import { BatchTimer, DeviceClock, type DeviceSpan, QueryPool } from "./batch_timer.ts";

const port = parentPort!;
const clock = () => performance.timeOrigin + performance.now();
const post = (msg: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

let device: GPUDevice;
let staging: StagingRing;
/** Set when the device has "timestamp-query". */
let queries: QueryPool | undefined;
const deviceClock = new DeviceClock();
const buffers = new Map<number, GPUBuffer>();
/** Buffers whose producing op failed; ops reading them are skipped. */
const failed = new Map<number, string>();
const pipelines = new Map<string, Promise<GPUComputePipeline>>();
/** Messages not yet handled, in order. */
const inbox: ToWorker[] = [];
let running = false;
/** When this thread waits for the device: see drains.ts and eager_waits.ts. */
let drains: Waits | undefined;
/** Dawn's polling policy (see dawn_polling.ts); undefined on Deno's WebGPU. */
let polling: Polling | undefined;
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
    if (msg.type === "init") await init(msg.backend, msg.adapter);
    else if (msg.type === "close") await close();
    else {
      const commands = [...msg.commands];
      const timing = msg.timing ?? false;
      while (
        inbox[0]?.type === "batch" && (inbox[0].timing ?? false) === timing &&
        commands.length + inbox[0].commands.length <= MAX_MERGED_OPS
      ) commands.push(...(inbox.shift() as { commands: Command[] }).commands);
      await runBatch(commands, timing);
    }
  } finally {
    if (inbox.length > 0) setTimeout(handleInbox, 0);
    else {
      running = false;
      drains?.idle();
    }
  }
}

async function init(backend: WebGpuBackend, adapterName?: string): Promise<void> {
  try {
    const loaded = await loadGpu(backend, adapterName);
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
    staging = new StagingRing(device);
    // Deno's waits block this thread, Dawn's do not: see drains.ts and eager_waits.ts.
    drains = backend === "deno"
      ? new Drains(device.queue, () => inbox.length === 0 && !running)
      : new EagerWaits(device.queue, () => loaded.polling?.wake());
    polling = loaded.polling;
    if (device.features.has("timestamp-query")) queries = new QueryPool(device);
    device.lost.then((info) => {
      if (info.reason !== "destroyed") console.error(`autopar: device lost: ${info.message}`);
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
  await device?.queue.onSubmittedWorkDone();
  for (const b of buffers.values()) b.destroy();
  buffers.clear();
  device?.destroy();
  post({ type: "closed" });
}

function pipeline(cmd: RunCommand): Promise<GPUComputePipeline> {
  const spec = cmd.source === undefined ? kernel(cmd.kernel) : undefined;
  const key = spec ? pipelineKey(spec, cmd.params) : `custom|${cmd.kernel}|${cmd.source}`;
  let p = pipelines.get(key);
  if (!p) {
    const code = spec ? wgslModule(spec, cmd.params) : cmd.source!;
    // A scope of its own, so a shader that fails to compile fails this op, not the batch.
    device.pushErrorScope("validation");
    p = device.createComputePipelineAsync({
      label: key,
      layout: "auto",
      compute: { module: device.createShaderModule({ label: key, code }), entryPoint: "main" },
    });
    device.popErrorScope();
    pipelines.set(key, p);
    p.catch(() => pipelines.delete(key));
  }
  return p;
}

function bufferFor(id: number, bytes: number): GPUBuffer {
  const b = device.createBuffer({
    label: `t${id}`,
    // Rounded up to 16 bytes, so a vec4<f32> binding of any kernel always fits.
    size: Math.max(16, Math.ceil(bytes / 16) * 16),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  buffers.set(id, b);
  return b;
}

/** The first failed input of `ids`, if any, or a message for a missing one. */
function badInput(ids: number[]): string | undefined {
  for (const id of ids) {
    const f = failed.get(id);
    if (f !== undefined) return f;
    if (!buffers.has(id)) return `input buffer t${id} does not exist on this device`;
  }
  return undefined;
}

const UNIFORM_STRIDE = 256;

async function runBatch(commands: Command[], timing: boolean): Promise<void> {
  const start = clock();
  polling?.wake(); // Dawn: this batch's waits (error scopes, maps) are answered promptly
  const timer = timing && queries ? new BatchTimer(queries) : undefined;
  /** Writes of a timed batch: their times on this thread's clock. */
  const writes: OpTiming[] = [];
  const done: number[] = [];
  const failures: OpFailure[] = [];
  const reads: { cmd: ReadCommand; staging: GPUBuffer }[] = [];
  const frees: number[] = [];
  const runs = commands.filter((c): c is RunCommand => c.t === "run");
  const uniforms = new Uint8Array(Math.max(1, runs.length) * UNIFORM_STRIDE);
  const uniformBuffer = device.createBuffer({
    size: uniforms.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  device.pushErrorScope("validation");
  let slot = 0;
  for (const cmd of commands) {
    if (cmd.t === "write") {
      const t0 = timer ? clock() : 0;
      device.queue.writeBuffer(bufferFor(cmd.buf, cmd.data.byteLength), 0, cmd.data);
      if (timer) writes.push({ op: cmd.op, start: t0, end: clock() });
      done.push(cmd.op);
    } else if (cmd.t === "free") {
      frees.push(cmd.buf);
    } else if (cmd.t === "read") {
      const bad = badInput([cmd.buf]);
      if (bad !== undefined) {
        post({ type: "read-failed", op: cmd.op, message: bad });
        continue;
      }
      const bytes = Math.max(4, cmd.bytes);
      const s = staging.take(bytes);
      timer?.copy(encoder, cmd.op);
      encoder.copyBufferToBuffer(buffers.get(cmd.buf)!, 0, s, 0, bytes);
      reads.push({ cmd, staging: s });
    } else {
      const bad = badInput(cmd.inPlace === undefined ? cmd.inputs : [...cmd.inputs, cmd.inPlace]);
      if (bad !== undefined) {
        for (const o of cmd.outputs) failed.set(o.id, bad);
        failures.push({ op: cmd.op, message: bad, skipped: true });
        if (cmd.inPlace !== undefined) frees.push(cmd.inPlace);
        continue;
      }
      let adopted: number | undefined;
      try {
        const pipe = await pipeline(cmd);
        const outs = cmd.outputs.map((o, i) => {
          if (i > 0 || cmd.inPlace === undefined) return bufferFor(o.id, o.bytes);
          // In place: the output is the old buffer under the new version's id.
          const b = buffers.get(cmd.inPlace)!;
          buffers.delete(cmd.inPlace);
          buffers.set(o.id, b);
          adopted = o.id;
          return b;
        });
        const entries: GPUBindGroupEntry[] = [...cmd.inputs.map((id) => buffers.get(id)!), ...outs]
          .map((buffer, binding) => ({ binding, resource: { buffer } }));
        let workgroups: readonly [number, number, number];
        if (cmd.source === undefined) {
          const spec = kernel(cmd.kernel);
          uniforms.set(new Uint8Array(packUniforms(spec, cmd.params)), slot * UNIFORM_STRIDE);
          entries.push({
            binding: entries.length,
            resource: { buffer: uniformBuffer, offset: slot * UNIFORM_STRIDE, size: 16 * 4 },
          });
          slot++;
          workgroups = spec.workgroups(cmd.params);
        } else {
          // A custom kernel: the workgroup counts come as params x, y, z.
          const { x = 1, y = 1, z = 1 } = cmd.params;
          workgroups = [Number(x), Number(y), Number(z)];
        }
        const pass = encoder.beginComputePass({
          label: `op${cmd.op}`,
          timestampWrites: timer?.pass(cmd.op),
        });
        pass.setPipeline(pipe);
        pass.setBindGroup(
          0,
          device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries }),
        );
        pass.dispatchWorkgroups(...workgroups);
        pass.end();
        done.push(cmd.op);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        for (const o of cmd.outputs) {
          // An adopted buffer may still be read by earlier work of this batch: it is freed
          // with the output's record, later.
          if (o.id !== adopted) {
            buffers.get(o.id)?.destroy();
            buffers.delete(o.id);
          }
          failed.set(o.id, message);
        }
        if (cmd.inPlace !== undefined && adopted === undefined) frees.push(cmd.inPlace);
        failures.push({ op: cmd.op, message, skipped: false });
      }
    }
  }
  if (slot > 0) device.queue.writeBuffer(uniformBuffer, 0, uniforms, 0, slot * UNIFORM_STRIDE);
  timer?.resolve(encoder, staging);
  const commandBuffer = encoder.finish();
  drains!.beforeSubmit();
  const submitted = clock();
  device.queue.submit([commandBuffer]);

  const validation = device.popErrorScope();
  // Freed buffers leave the table now; they are destroyed once the work using them is done
  // (destroying them right after submit crashed Deno's GL backend now and then).
  const retired = [uniformBuffer];
  for (const id of frees) {
    const b = buffers.get(id);
    if (b) retired.push(b);
    buffers.delete(id);
    failed.delete(id);
  }
  // The batch is reported once, when a later wait (see drains.ts) or one of its readbacks
  // shows it complete, and before its readbacks. A timed batch is reported once its
  // timestamps are in: their readback is mapped at the same wait.
  const copies = new Map<number, OpTiming>();
  let reported: Promise<void> | undefined;
  const reportDone = () =>
    reported ??= Promise.all([
      validation,
      timer?.timed ? timer.read(staging, drains!).catch(() => undefined) : undefined,
    ]).then(([error, stamps]) => {
      const end = clock();
      if (error) {
        // The batch's command buffer was invalid: no op in it can be trusted.
        for (const op of done) failures.push({ op, message: error.message, skipped: false });
        done.length = 0;
      }
      let timings: OpTiming[] | undefined;
      if (timer) {
        timings = writes;
        if (stamps && stamps.spans.size > 0) {
          const offset = deviceClock.align(submitted, end, stamps.first, stamps.last);
          const onClock = (op: number, d: DeviceSpan): OpTiming => ({
            op,
            start: offset + d.gpuStart / 1e6,
            end: offset + d.gpuEnd / 1e6,
            ...d,
          });
          const isRead = new Set(reads.map((r) => r.cmd.op));
          for (const [op, d] of stamps.spans) {
            if (isRead.has(op)) copies.set(op, onClock(op, d));
            else timings.push(onClock(op, d));
          }
        }
      }
      post({ type: "done", ops: done, start, end, failures, timings });
      for (const b of retired) b.destroy();
    });
  if (timer?.timed) reportDone();
  drains!.submitted(reportDone);
  for (const { cmd, staging: s } of reads) {
    drains!.map(s).then(async () => {
      await reportDone();
      // The one copy out of mapped memory; the new ArrayBuffer is transferred, not copied.
      const data = s.getMappedRange().slice(0, cmd.bytes);
      s.unmap();
      staging.give(s);
      // A timed copy to the host spans from its device copy's start to the bytes' arrival.
      const t = copies.get(cmd.op);
      post({
        type: "read",
        op: cmd.op,
        data,
        start: t?.start ?? start,
        end: clock(),
        gpuStart: t?.gpuStart,
        gpuEnd: t?.gpuEnd,
      }, [data]);
    }, (e) => {
      staging.give(s);
      post({
        type: "read-failed",
        op: cmd.op,
        message: e instanceof Error ? e.message : String(e),
      });
    });
  }
}
