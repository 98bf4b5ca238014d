/**
 * Runs batches of the engine's commands on one GPUDevice: each batch is one command buffer
 * (writes, compute passes, copies to staging buffers for readbacks), submitted once. It owns
 * the device's buffers by tensor id and its compiled pipelines, and reports completions and
 * readbacks as plain messages. The device Worker (webgpu_worker.ts) runs one; tests run one
 * on a device of their own, to dispatch kernels exactly as the engine does.
 *
 * @module
 */
import { collectGarbage } from "./collect_garbage.ts";
import { kernel } from "../kernels/registry.ts";
import {
  type KernelParams,
  type KernelSpec,
  packUniforms,
  pipelineKey,
  wgslModule,
} from "../kernels/kernel.ts";
import type {
  Command,
  DefineCommand,
  ExecCommand,
  FromWorker,
  OpFailure,
  OpTiming,
  ReadCommand,
  RunCommand,
  SegmentOutput,
} from "./protocol.ts";
import { StagingRing } from "./staging_ring.ts";
import type { Waits } from "./drains.ts";
import { BatchTimer, DeviceClock, type DeviceSpan, QueryPool } from "./batch_timer.ts";
import { PhaseClock } from "./phase_clock.ts";
import { boundSize, BufferPool, STORAGE_USAGE } from "./buffer_pool.ts";
import { RingSlots, UNIFORM_STRIDE, type UniformSlots } from "./uniform_ring.ts";

const clock = () => performance.timeOrigin + performance.now();

/** Sends a report (its ArrayBuffers transferred). */
export type Post = (msg: FromWorker, transfer?: ArrayBuffer[]) => void;

/** Slots of the device's uniform ring: 4,096 ops in flight before a batch falls back. */
const RING_SLOTS = 4096;
/**
 * Cached bind groups kept before the cache starts over. Uncaptured steps make about three new
 * buffer pairings a batch (pooled buffers come back in other pairings), and each group holds
 * native memory (about 8 KiB on lavapipe): the cache stays small, and what it drops is
 * collected when the Worker is idle (RSS grew 25 MiB per 1,000 MLP steps with 8,192 kept).
 */
const MAX_BIND_GROUPS = 2048;

/** A compiled kernel: its pipeline, and whether it binds the uniform ring (dynamic offset). */
interface Compiled {
  pipeline: GPUComputePipeline;
  ring: boolean;
}

/** One kernel of a defined segment: everything but the bind group is resolved once. */
interface SegmentKernel {
  compiled: Compiled;
  bind: number[];
  /** Its uniforms' offset in the segment's uniform buffer, as setBindGroup takes it. */
  offsets: [number];
  workgroups: readonly [number, number, number];
  /** Bind groups built so far, by the buffers bound (inputs may change from run to run). */
  groups: { buffers: GPUBuffer[]; group: GPUBindGroup }[];
}

/** A defined segment of a device program (see DefineCommand in protocol.ts). */
interface Segment {
  /** Bound sizes of the input slots, then of the static slots. */
  sizes: number[];
  inputs: number;
  slots: GPUBuffer[];
  uniforms: GPUBuffer;
  kernels: SegmentKernel[];
  outputs: SegmentOutput[];
}

/** A segment whose definition failed: why, at which kernel, and what it would have made. */
interface BrokenSegment {
  message: string;
  inner: number;
  outputs: SegmentOutput[];
}

/** Bind groups kept per kernel of a segment (its inputs' buffers come from the pool). */
const SEGMENT_GROUPS = 4;

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
  /** The bound size of each tensor's buffer (its bytes, rounded up to 16). */
  readonly #sizes = new Map<number, number>();
  readonly #pool: BufferPool;
  readonly #ring: GPUBuffer;
  readonly #ringSlots = new RingSlots(RING_SLOTS);
  /** Bind groups by pipeline and buffers; an entry goes when one of its buffers is destroyed. */
  readonly #bindGroups = new Map<string, GPUBindGroup>();
  readonly #groupsOf = new Map<GPUBuffer, string[]>();
  /** Bind groups dropped from the cache since the last collection. */
  #dropped = 0;
  readonly #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  /** Resolved pipelines, so that a cached kernel costs no await. */
  readonly #compiled = new Map<string, Compiled>();
  /** Buffers whose producing op failed; ops reading them are skipped. */
  readonly #failed = new Map<number, string>();
  readonly #pipelines = new Map<string, Promise<Compiled>>();
  /** Device programs' segments, by program and segment; or why a definition failed. */
  readonly #programs = new Map<number, Map<number, Segment | BrokenSegment>>();
  /** Tensors whose buffer is a segment's static buffer: freeing them frees nothing. */
  readonly #aliases = new Set<number>();
  /** Bind groups built for segments so far. */
  #segmentGroups = 0;
  /** Where the time goes, when AUTOPAR_PROFILE is set (bench/op_profile.ts). */
  readonly phases = new PhaseClock();

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
    this.#pool = new BufferPool((size) =>
      device.createBuffer({ label: `pool-${size}`, size, usage: STORAGE_USAGE })
    );
    this.#pool.onDestroy = (b) => this.#forget(b);
    this.#ring = device.createBuffer({
      label: "uniform-ring",
      size: RING_SLOTS * UNIFORM_STRIDE,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  /** Buffers made and reused by the pool, and bind groups cached, for tests and profiles. */
  get reuse(): { created: number; reused: number; bindGroups: number; segmentGroups: number } {
    return {
      ...this.#pool.counts,
      bindGroups: this.#bindGroups.size,
      segmentGroups: this.#segmentGroups,
    };
  }

  /** Buffers held, for tests. */
  get buffers(): number {
    return this.#buffers.size;
  }

  /**
   * The Worker has nothing to do: when the cache dropped its bind groups since the last time,
   * collects them (see collect_garbage.ts), since the native memory of a dropped group goes
   * only with its wrapper. At most once per {@link MAX_BIND_GROUPS} groups made.
   */
  idle(): void {
    if (this.#dropped === 0) return;
    this.#dropped = 0;
    collectGarbage();
  }

  /** Waits for the work submitted so far, then destroys every buffer. */
  async destroyAll(): Promise<void> {
    await this.#device.queue.onSubmittedWorkDone();
    for (const b of this.#buffers.values()) b.destroy();
    this.#buffers.clear();
    this.#sizes.clear();
    this.#failed.clear();
    this.#pool.clear();
    this.#bindGroups.clear();
    this.#groupsOf.clear();
    this.#ring.destroy();
    for (const id of [...this.#programs.keys()]) {
      for (const b of this.#forgetProgram(id)) b.destroy();
    }
    this.#aliases.clear();
  }

  /**
   * Encodes `commands` into one command buffer and submits it. Reports come through `post`:
   * one "done" for the batch once it has completed, and a "read" (or "read-failed") per
   * readback.
   */
  async run(commands: Command[], timing: boolean): Promise<void> {
    const start = clock();
    const phases = this.phases;
    phases.start();
    phases.totals.batches++;
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
    /** Static buffers of programs forgotten: destroyed once the batch is complete. */
    const dropped: GPUBuffer[] = [];
    /** Buffers of ops that failed before being encoded: back to the pool after the batch. */
    const failedOutputs: GPUBuffer[] = [];
    const runs = commands.reduce((n, c) => c.t === "run" && c.source === undefined ? n + 1 : n, 0);
    const uniforms = new Uint8Array(Math.max(1, runs) * UNIFORM_STRIDE);
    // The batch's uniforms go to the ring; a batch that finds no room there gets a buffer
    // of its own (its bind groups are then not cached).
    const slots: UniformSlots | undefined = runs > 0 ? this.#ringSlots.reserve(runs) : undefined;
    const uniformBuffer = slots || runs === 0 ? this.#ring : device.createBuffer({
      size: uniforms.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const ringBase = slots?.offset ?? 0;
    const encoder = device.createCommandEncoder();
    // One compute pass for the batch's dispatches, unless each op is timed (a pass each).
    let shared: GPUComputePassEncoder | undefined;
    let sharedPipeline: GPUComputePipeline | undefined;
    const endShared = () => {
      shared?.end();
      shared = undefined;
    };
    /** The pass for op `op`: its own when ops are timed, else the batch's one. */
    const passFor = (op: number): GPUComputePassEncoder => {
      if (timer) {
        endShared();
        return encoder.beginComputePass({ label: `op${op}`, timestampWrites: timer.pass(op) });
      }
      if (!shared) {
        shared = encoder.beginComputePass({ label: "batch" });
        sharedPipeline = undefined;
      }
      return shared;
    };
    device.pushErrorScope("validation");
    phases.mark("batch setup");
    let slot = 0;
    for (const cmd of commands) {
      if (cmd.t === "write") {
        const t0 = timer ? clock() : 0;
        device.queue.writeBuffer(bufferFor(cmd.buf, cmd.data.byteLength), 0, cmd.data);
        if (timer) writes.push({ op: cmd.op, start: t0, end: clock() });
        done.push(cmd.op);
      } else if (cmd.t === "free") {
        frees.push(cmd.buf);
      } else if (cmd.t === "define") {
        endShared();
        await this.#define(cmd);
        phases.mark("define");
      } else if (cmd.t === "forget") {
        dropped.push(...this.#forgetProgram(cmd.program));
      } else if (cmd.t === "exec") {
        const seg = this.#programs.get(cmd.program)?.get(cmd.segment);
        const bad = badInput(cmd.inputs);
        const failure: OpFailure | undefined = bad !== undefined
          ? { op: cmd.op, message: bad, skipped: true }
          : seg === undefined
          ? {
            op: cmd.op,
            message: `segment ${cmd.segment} of program ${cmd.program} is not defined`,
            skipped: false,
          }
          : "message" in seg
          ? { op: cmd.op, message: seg.message, skipped: false, inner: seg.inner }
          : undefined;
        if (failure) {
          for (const id of cmd.outputs) failed.set(id, failure.message);
          // Inputs it would have updated in place are freed with their records' new versions.
          if (seg && "outputs" in seg) {
            for (const o of seg.outputs) if (o.as === "adopt") frees.push(cmd.inputs[o.slot]);
          }
          failures.push(failure);
          continue;
        }
        const segment = seg as Segment;
        const inputs = cmd.inputs.map((id) => buffers.get(id)!);
        const pass = passFor(cmd.op);
        const last = this.#encodeSegment(
          segment,
          inputs,
          pass,
          pass === shared ? sharedPipeline : undefined,
        );
        if (pass === shared) sharedPipeline = last;
        else pass.end();
        this.#segmentOutputs(segment, cmd, inputs, encoder, endShared);
        phases.totals.ops += segment.kernels.length;
        phases.totals.replayed += segment.kernels.length;
        phases.mark("replay");
        done.push(cmd.op);
      } else if (cmd.t === "read") {
        const bad = badInput([cmd.buf]);
        if (bad !== undefined) {
          post({ type: "read-failed", op: cmd.op, message: bad });
          continue;
        }
        const bytes = Math.max(4, cmd.bytes);
        const s = staging.take(bytes);
        endShared();
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
          phases.totals.ops++;
          phases.mark("other");
          const key = this.#keyOf(cmd);
          const compiled = this.#compiled.get(key) ?? await this.#pipeline(cmd);
          const pipe = compiled.pipeline;
          phases.mark("pipeline lookup");
          const outs = cmd.outputs.map((o, i) => {
            if (i > 0 || cmd.inPlace === undefined) return bufferFor(o.id, o.bytes);
            // In place: the output is the old buffer under the new version's id.
            const b = buffers.get(cmd.inPlace)!;
            buffers.delete(cmd.inPlace);
            buffers.set(o.id, b);
            if (this.#aliases.delete(cmd.inPlace)) this.#aliases.add(o.id);
            adopted = o.id;
            return b;
          });
          const bound = [...cmd.inputs, ...cmd.outputs.map((o) => o.id)];
          const storage = [...cmd.inputs.map((id) => buffers.get(id)!), ...outs];
          phases.mark("output buffers");
          let workgroups: readonly [number, number, number];
          let dynamicOffsets: number[] | undefined;
          if (cmd.source === undefined) {
            const spec = kernel(cmd.kernel);
            const packed = packUniforms(spec, cmd.params);
            uniforms.set(new Uint8Array(packed), slot * UNIFORM_STRIDE);
            dynamicOffsets = [ringBase + slot * UNIFORM_STRIDE];
            slot++;
            workgroups = spec.workgroups(cmd.params);
          } else {
            // A custom kernel: the workgroup counts come as params x, y, z.
            const { x = 1, y = 1, z = 1 } = cmd.params;
            workgroups = [Number(x), Number(y), Number(z)];
          }
          phases.mark("uniforms");
          const group = this.#bindGroup(compiled, key, storage, bound, uniformBuffer);
          phases.mark("bind group");
          const pass = passFor(cmd.op);
          // In the batch's one pass, consecutive ops of one kernel set its pipeline once.
          if (pass !== shared || sharedPipeline !== pipe) pass.setPipeline(pipe);
          if (pass === shared) sharedPipeline = pipe;
          if (dynamicOffsets) pass.setBindGroup(0, group, dynamicOffsets);
          else pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(...workgroups);
          if (timer) pass.end();
          phases.mark("pass");
          done.push(cmd.op);
        } catch (e) {
          const message = e instanceof Error ? e.message : String(e);
          for (const o of cmd.outputs) {
            // An adopted buffer may still be read by earlier work of this batch: it is freed
            // with the output's record, later.
            if (o.id !== adopted) {
              const b = buffers.get(o.id);
              if (b) failedOutputs.push(b);
              buffers.delete(o.id);
              this.#sizes.delete(o.id);
            }
            failed.set(o.id, message);
          }
          if (cmd.inPlace !== undefined && adopted === undefined) frees.push(cmd.inPlace);
          failures.push({ op: cmd.op, message, skipped: false });
        }
      }
    }
    endShared();
    phases.mark("other");
    if (slot > 0) {
      device.queue.writeBuffer(uniformBuffer, ringBase, uniforms, 0, slot * UNIFORM_STRIDE);
    }
    phases.mark("uniforms");
    timer?.resolve(encoder, staging);
    const commandBuffer = encoder.finish();
    phases.mark("finish");
    drains.beforeSubmit();
    phases.mark("wait before submit");
    const submitted = clock();
    device.queue.submit([commandBuffer]);
    phases.mark("submit");

    const validation = device.popErrorScope();
    // Freed buffers leave the table now; they are destroyed once the work using them is done
    // (destroying them right after submit crashed Deno's GL backend now and then).
    const retired = [...failedOutputs];
    for (const id of frees) {
      const b = buffers.get(id);
      // A segment's static buffer stays with its program.
      if (b && !this.#aliases.delete(id)) retired.push(b);
      buffers.delete(id);
      this.#sizes.delete(id);
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
        // The batch is complete: its buffers and uniform slots may be used again.
        for (const b of retired) this.#pool.give(b);
        for (const b of dropped) b.destroy();
        if (slots) this.#ringSlots.release(slots);
        else if (uniformBuffer !== this.#ring) uniformBuffer.destroy();
      });
    if (timer?.timed) reportDone();
    drains.submitted(reportDone);
    phases.mark("after submit");
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

  /**
   * Defines a segment: compiles its kernels, makes its static buffers and its uniform
   * buffer, written once. A kernel that does not compile makes
   * every run of the segment fail, naming that kernel.
   */
  async #define(cmd: DefineCommand): Promise<void> {
    const device = this.#device;
    let segments = this.#programs.get(cmd.program);
    if (!segments) this.#programs.set(cmd.program, segments = new Map());
    // Kernels with the same uniforms (a chain of adds, say) share one slot of them.
    const offsets = new Map<string, number>();
    const packed: Uint8Array[] = [];
    const offsetOf = (bytes: Uint8Array) => {
      const key = bytes.join(",");
      let offset = offsets.get(key);
      if (offset === undefined) {
        offsets.set(key, offset = packed.length * UNIFORM_STRIDE);
        packed.push(bytes);
      }
      return offset;
    };
    const kernels: SegmentKernel[] = [];
    for (const [i, k] of cmd.kernels.entries()) {
      const run: RunCommand = {
        t: "run",
        op: 0,
        kernel: k.kernel,
        params: k.params,
        inputs: [],
        outputs: [],
      };
      try {
        const compiled = this.#compiled.get(this.#keyOf(run)) ?? await this.#pipeline(run);
        const spec = kernel(k.kernel);
        kernels.push({
          compiled,
          bind: k.bind,
          offsets: [offsetOf(new Uint8Array(packUniforms(spec, k.params)))],
          workgroups: spec.workgroups(k.params),
          groups: [],
        });
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        segments.set(cmd.segment, { message, inner: i, outputs: cmd.outputs });
        return;
      }
    }
    const uniforms = device.createBuffer({
      label: `program-${cmd.program}-${cmd.segment}-uniforms`,
      size: Math.max(1, packed.length) * UNIFORM_STRIDE,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const all = new Uint8Array(Math.max(1, packed.length) * UNIFORM_STRIDE);
    packed.forEach((bytes, i) => all.set(bytes, i * UNIFORM_STRIDE));
    device.queue.writeBuffer(uniforms, 0, all);
    const slots = cmd.slots.map((s, i) => {
      const b = device.createBuffer({
        label: `program-${cmd.program}-${cmd.segment}-slot-${i}`,
        size: boundSize(s.bytes),
        usage: STORAGE_USAGE,
      });
      return b;
    });
    segments.set(cmd.segment, {
      sizes: [...cmd.inputs, ...cmd.slots.map((s) => s.bytes)].map(boundSize),
      inputs: cmd.inputs.length,
      slots,
      uniforms,
      kernels,
      outputs: cmd.outputs,
    });
  }

  /** Drops a program; returns its buffers, to destroy once the work using them is done. */
  #forgetProgram(program: number): GPUBuffer[] {
    const segments = this.#programs.get(program);
    this.#programs.delete(program);
    const out: GPUBuffer[] = [];
    for (const seg of segments?.values() ?? []) {
      if ("slots" in seg) out.push(...seg.slots, seg.uniforms);
    }
    return out;
  }

  /**
   * Encodes a segment's kernels into `pass`: a pipeline set only where it changes (`current`
   * is the pass's), and a bind group built only for buffers not bound before. Returns the
   * pipeline set last.
   */
  #encodeSegment(
    seg: Segment,
    inputs: GPUBuffer[],
    pass: GPUComputePassEncoder,
    current: GPUComputePipeline | undefined,
  ): GPUComputePipeline | undefined {
    const n = seg.inputs;
    for (const k of seg.kernels) {
      const bufs = k.bind.map((s) => s < n ? inputs[s] : seg.slots[s - n]);
      let group = k.groups.find((g) => g.buffers.every((b, i) => b === bufs[i]))?.group;
      if (!group) {
        const entries: GPUBindGroupEntry[] = bufs.map((buffer, binding) => ({
          binding,
          resource: { buffer, size: seg.sizes[k.bind[binding]] },
        }));
        entries.push({
          binding: entries.length,
          resource: { buffer: seg.uniforms, offset: 0, size: UNIFORM_STRIDE },
        });
        group = this.#device.createBindGroup({
          layout: k.compiled.pipeline.getBindGroupLayout(0),
          entries,
        });
        this.#segmentGroups++;
        if (k.groups.length >= SEGMENT_GROUPS) k.groups.shift();
        k.groups.push({ buffers: bufs, group });
      }
      if (k.compiled.pipeline !== current) pass.setPipeline(current = k.compiled.pipeline);
      pass.setBindGroup(0, group, k.offsets);
      pass.dispatchWorkgroups(...k.workgroups);
    }
    return current;
  }

  /** Gives a segment's outputs their buffers: adopted, aliased, or copied at its end. */
  #segmentOutputs(
    seg: Segment,
    cmd: ExecCommand,
    inputs: GPUBuffer[],
    encoder: GPUCommandEncoder,
    endPass: () => void,
  ): void {
    const buffers = this.#buffers;
    seg.outputs.forEach((o, i) => {
      const id = cmd.outputs[i];
      const size = seg.sizes[o.slot];
      if (o.as === "adopt") {
        const from = cmd.inputs[o.slot];
        buffers.delete(from);
        this.#sizes.delete(from);
        buffers.set(id, inputs[o.slot]);
        this.#sizes.set(id, size);
        if (this.#aliases.delete(from)) this.#aliases.add(id);
      } else if (o.as === "alias") {
        buffers.set(id, seg.slots[o.slot - seg.inputs]);
        this.#sizes.set(id, size);
        this.#aliases.add(id);
      } else {
        endPass();
        const b = this.#bufferFor(id, size);
        encoder.copyBufferToBuffer(seg.slots[o.slot - seg.inputs], 0, b, 0, size);
      }
    });
  }

  #keyOf(cmd: RunCommand): string {
    return cmd.source === undefined
      ? pipelineKey(kernel(cmd.kernel), cmd.params)
      : `custom|${cmd.kernel}|${cmd.source}`;
  }

  #pipeline(cmd: RunCommand): Promise<Compiled> {
    const device = this.#device;
    const pipelines = this.#pipelines;
    const spec = cmd.source === undefined ? kernel(cmd.kernel) : undefined;
    const key = this.#keyOf(cmd);
    let p = pipelines.get(key);
    if (!p) {
      const code = spec ? wgslModule(spec, cmd.params) : cmd.source!;
      // A scope of its own, so a shader that fails to compile fails this op, not the batch.
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ label: key, code });
      // Kernels bind the uniform ring with a dynamic offset, which needs an explicit layout;
      // custom kernels keep "auto".
      const layout: GPUPipelineLayout | "auto" = spec ? this.#layoutOf(spec, cmd) : "auto";
      // Dawn may hand back an invalid pipeline for a module that failed to compile (which
      // then fails the whole batch); the compiler's own messages name the fault.
      p = compileErrors(module).then(async (errors) => {
        if (errors) throw new Error(`Cannot compile kernel ${key}: ${errors}`);
        const pipeline = await device.createComputePipelineAsync({
          label: key,
          layout,
          compute: { module, entryPoint: "main" },
        });
        const compiled = { pipeline, ring: spec !== undefined };
        this.#compiled.set(key, compiled);
        return compiled;
      });
      device.popErrorScope();
      pipelines.set(key, p);
      p.catch(() => pipelines.delete(key));
    }
    return p;
  }

  /** Storage bindings in order (inputs read-only), then the uniforms with a dynamic offset. */
  #layoutOf(spec: KernelSpec<KernelParams>, cmd: RunCommand): GPUPipelineLayout {
    const types: GPUBufferBindingType[] = [
      ...spec.inputTypes(cmd.params).map((): GPUBufferBindingType => "read-only-storage"),
      ...spec.outputTypes(cmd.params).map((): GPUBufferBindingType => "storage"),
    ];
    const entries: GPUBindGroupLayoutEntry[] = types.map((type, binding) => ({
      binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type },
    }));
    entries.push({
      binding: types.length,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: "uniform", hasDynamicOffset: true },
    });
    const device = this.#device;
    return device.createPipelineLayout({
      bindGroupLayouts: [device.createBindGroupLayout({ entries })],
    });
  }

  /**
   * The bind group of `storage` buffers (tensor ids `bound`) and the uniforms for a
   * compiled kernel: cached by pipeline and buffers when the uniforms are in the ring.
   */
  #bindGroup(
    compiled: Compiled,
    pipelineKey: string,
    storage: GPUBuffer[],
    bound: number[],
    uniformBuffer: GPUBuffer,
  ): GPUBindGroup {
    const sizes = bound.map((id) => this.#sizes.get(id)!);
    const entries: GPUBindGroupEntry[] = storage.map((buffer, binding) => ({
      binding,
      resource: { buffer, size: sizes[binding] },
    }));
    if (compiled.ring) {
      entries.push({
        binding: entries.length,
        resource: { buffer: uniformBuffer, offset: 0, size: UNIFORM_STRIDE },
      });
    }
    const cacheable = !compiled.ring || uniformBuffer === this.#ring;
    if (!cacheable) {
      return this.#device.createBindGroup({
        layout: compiled.pipeline.getBindGroupLayout(0),
        entries,
      });
    }
    let key = pipelineKey;
    for (let i = 0; i < storage.length; i++) key += `|${this.#idOf(storage[i])}:${sizes[i]}`;
    let group = this.#bindGroups.get(key);
    if (!group) {
      if (this.#bindGroups.size >= MAX_BIND_GROUPS) {
        // Their native memory goes only with their wrappers: collected when idle (below).
        this.#dropped += this.#bindGroups.size;
        this.#bindGroups.clear();
        this.#groupsOf.clear();
      }
      group = this.#device.createBindGroup({
        layout: compiled.pipeline.getBindGroupLayout(0),
        entries,
      });
      this.#bindGroups.set(key, group);
      for (const b of storage) {
        const keys = this.#groupsOf.get(b);
        if (keys) keys.push(key);
        else this.#groupsOf.set(b, [key]);
      }
    }
    return group;
  }

  #idOf(b: GPUBuffer): number {
    let id = this.#bufferIds.get(b);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(b, id);
    }
    return id;
  }

  /** Drops the cached bind groups of a buffer about to be destroyed. */
  #forget(b: GPUBuffer): void {
    for (const key of this.#groupsOf.get(b) ?? []) this.#bindGroups.delete(key);
    this.#groupsOf.delete(b);
  }

  #bufferFor(id: number, bytes: number): GPUBuffer {
    const size = boundSize(bytes);
    const b = this.#pool.take(size);
    this.#buffers.set(id, b);
    this.#sizes.set(id, size);
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
