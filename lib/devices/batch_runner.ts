/**
 * Runs batches of the engine's commands on one GPUDevice: each batch is one command buffer
 * (writes, compute passes, copies to staging buffers for readbacks), submitted once. It owns
 * the device's buffers by tensor id and its compiled pipelines, and reports completions and
 * readbacks as plain messages. The device Worker (webgpu_worker.ts) runs one; tests run one
 * on a device of their own, to dispatch kernels exactly as the engine does.
 *
 * @module
 */
import { kernel } from "../kernels/registry.ts";
import { packUniforms, pipelineKey, wgslModule } from "../kernels/kernel.ts";
import type {
  Command,
  FromWorker,
  OpFailure,
  OpTiming,
  ReadCommand,
  RunCommand,
} from "./protocol.ts";
import { StagingRing } from "./staging_ring.ts";
import type { Waits } from "./drains.ts";
import { BatchTimer, DeviceClock, type DeviceSpan, QueryPool } from "./batch_timer.ts";

const clock = () => performance.timeOrigin + performance.now();

/** Sends a report (its ArrayBuffers transferred). */
export type Post = (msg: FromWorker, transfer?: ArrayBuffer[]) => void;

/** Bytes between two ops' uniforms in a batch's uniform buffer (WebGPU's offset alignment). */
const UNIFORM_STRIDE = 256;

/** The error messages of a shader module's compilation, if any. */
async function compileErrors(module: GPUShaderModule): Promise<string | undefined> {
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length === 0) return undefined;
  return errors.map((m) => `${m.lineNum}:${m.linePos}: ${m.message}`).join("; ");
}

/** See the module's documentation. */
export class BatchRunner {
  readonly #device: GPUDevice;
  readonly #waits: Waits;
  readonly #post: Post;
  readonly #onBatch: () => void;
  readonly #staging: StagingRing;
  /** Set when the device has "timestamp-query". */
  readonly #queries: QueryPool | undefined;
  readonly #deviceClock = new DeviceClock();
  readonly #buffers = new Map<number, GPUBuffer>();
  /** Buffers whose producing op failed; ops reading them are skipped. */
  readonly #failed = new Map<number, string>();
  readonly #pipelines = new Map<string, Promise<GPUComputePipeline>>();

  /**
   * A runner on `device`, waiting through `waits` (drains.ts for Deno's blocking waits,
   * eager_waits.ts for Dawn's), reporting through `post`; `onBatch` runs as each batch starts.
   */
  constructor(device: GPUDevice, waits: Waits, post: Post, onBatch: () => void = () => {}) {
    this.#device = device;
    this.#waits = waits;
    this.#post = post;
    this.#onBatch = onBatch;
    this.#staging = new StagingRing(device);
    if (device.features.has("timestamp-query")) this.#queries = new QueryPool(device);
  }

  /** Buffers held, for tests. */
  get buffers(): number {
    return this.#buffers.size;
  }

  /** Waits for the work submitted so far, then destroys every buffer. */
  async destroyAll(): Promise<void> {
    await this.#device.queue.onSubmittedWorkDone();
    for (const b of this.#buffers.values()) b.destroy();
    this.#buffers.clear();
    this.#failed.clear();
  }

  /**
   * Encodes `commands` into one command buffer and submits it. Reports come through `post`:
   * one "done" for the batch once it has completed, and a "read" (or "read-failed") per
   * readback.
   */
  async run(commands: Command[], timing: boolean): Promise<void> {
    const start = clock();
    this.#onBatch(); // Dawn: this batch's waits (error scopes, maps) are answered promptly
    const device = this.#device;
    const buffers = this.#buffers;
    const failed = this.#failed;
    const staging = this.#staging;
    const queries = this.#queries;
    const deviceClock = this.#deviceClock;
    const drains = this.#waits;
    const post = this.#post;
    const bufferFor = (id: number, bytes: number) => this.#bufferFor(id, bytes);
    const badInput = (ids: number[]) => this.#badInput(ids);
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
          const pipe = await this.#pipeline(cmd);
          const outs = cmd.outputs.map((o, i) => {
            if (i > 0 || cmd.inPlace === undefined) return bufferFor(o.id, o.bytes);
            // In place: the output is the old buffer under the new version's id.
            const b = buffers.get(cmd.inPlace)!;
            buffers.delete(cmd.inPlace);
            buffers.set(o.id, b);
            adopted = o.id;
            return b;
          });
          const entries: GPUBindGroupEntry[] = [
            ...cmd.inputs.map((id) => buffers.get(id)!),
            ...outs,
          ]
            .map((buffer, binding) => ({ binding, resource: { buffer } }));
          let workgroups: readonly [number, number, number];
          if (cmd.source === undefined) {
            const spec = kernel(cmd.kernel);
            const packed = packUniforms(spec, cmd.params);
            uniforms.set(new Uint8Array(packed), slot * UNIFORM_STRIDE);
            entries.push({
              binding: entries.length,
              resource: {
                buffer: uniformBuffer,
                offset: slot * UNIFORM_STRIDE,
                size: packed.byteLength,
              },
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
    drains.beforeSubmit();
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
        timer?.timed ? timer.read(staging, drains).catch(() => undefined) : undefined,
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
    drains.submitted(reportDone);
    for (const { cmd, staging: s } of reads) {
      drains.map(s).then(async () => {
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

  #pipeline(cmd: RunCommand): Promise<GPUComputePipeline> {
    const device = this.#device;
    const pipelines = this.#pipelines;
    const spec = cmd.source === undefined ? kernel(cmd.kernel) : undefined;
    const key = spec ? pipelineKey(spec, cmd.params) : `custom|${cmd.kernel}|${cmd.source}`;
    let p = pipelines.get(key);
    if (!p) {
      const code = spec ? wgslModule(spec, cmd.params) : cmd.source!;
      // A scope of its own, so a shader that fails to compile fails this op, not the batch.
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ label: key, code });
      // Dawn may hand back an invalid pipeline for a module that failed to compile (which
      // then fails the whole batch); the compiler's own messages name the fault.
      p = compileErrors(module).then((errors) => {
        if (errors) throw new Error(`Cannot compile kernel ${key}: ${errors}`);
        return device.createComputePipelineAsync({
          label: key,
          layout: "auto",
          compute: { module, entryPoint: "main" },
        });
      });
      device.popErrorScope();
      pipelines.set(key, p);
      p.catch(() => pipelines.delete(key));
    }
    return p;
  }

  #bufferFor(id: number, bytes: number): GPUBuffer {
    const b = this.#device.createBuffer({
      label: `t${id}`,
      // Rounded up to 16 bytes, so a vec4<f32> binding of any kernel always fits.
      size: Math.max(16, Math.ceil(bytes / 16) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.#buffers.set(id, b);
    return b;
  }

  /** The first failed input of `ids`, if any, or a message for a missing one. */
  #badInput(ids: number[]): string | undefined {
    for (const id of ids) {
      const f = this.#failed.get(id);
      if (f !== undefined) return f;
      if (!this.#buffers.has(id)) return `input buffer t${id} does not exist on this device`;
    }
    return undefined;
  }
}
