/**
 * Runs batches of the engine's commands on one GPUDevice: each batch is one command buffer
 * (writes, compute passes, copies to staging buffers for readbacks), submitted once. It owns
 * the device's buffers by tensor id (buffer_table.ts), its compiled pipelines (pipelines.ts)
 * and its programs' segments (segments.ts), and reports completions and readbacks as plain
 * messages (report.ts). Ops and the kernels of replayed segments go through one dispatch path
 * (encode.ts). The device Worker (webgpu_worker.ts) runs one; tests run one on a device of
 * their own, to dispatch kernels exactly as the engine does.
 *
 * @module
 */
import { kernel } from "../kernels/registry.ts";
import { packUniforms } from "../kernels/kernel.ts";
import type {
  Command,
  ExecCommand,
  OpFailure,
  OpTiming,
  ReadCommand,
  RunCommand,
  WriteCommand,
} from "./protocol.ts";
import { StagingRing } from "./staging_ring.ts";
import type { Waits } from "./drains.ts";
import { BatchTimer, DeviceClock, QueryPool } from "./batch_timer.ts";
import { PhaseClock } from "./phase_clock.ts";
import { BufferPool, STORAGE_USAGE } from "./buffer_pool.ts";
import { RingSlots, UNIFORM_STRIDE } from "./uniform_ring.ts";
import { BindGroupCache } from "./bind_groups.ts";
import { type Compiled, Pipelines } from "./pipelines.ts";
import { BufferTable } from "./buffer_table.ts";
import { defineSegment, Programs, type Segment } from "./segments.ts";
import { BatchEncoder, type Dispatch, type UniformRing } from "./encode.ts";
import { clock, type PendingRead, type Post, reportBatch, type Reporter } from "./report.ts";

export type { Post } from "./report.ts";

/** Slots of the device's uniform ring: 4,096 dispatches in flight before a batch falls back. */
const RING_SLOTS = 4096;

/** What one batch builds up while its commands are encoded. */
interface Batch {
  start: number;
  enc: BatchEncoder;
  done: number[];
  failures: OpFailure[];
  /** Writes of a timed batch: their times on this thread's clock. */
  writes: OpTiming[];
  reads: PendingRead[];
  frees: number[];
  /** Static buffers of programs forgotten: destroyed once the batch is complete. */
  dropped: GPUBuffer[];
  /** Buffers of ops that failed before being encoded: back to the pool after the batch. */
  failedOutputs: GPUBuffer[];
}

/** See the module's documentation. */
export class BatchRunner {
  readonly #device: GPUDevice;
  readonly #onBatch: () => void;
  readonly #reporter: Reporter;
  /** Set when the device has "timestamp-query". */
  readonly #queries: QueryPool | undefined;
  readonly #table: BufferTable;
  readonly #pipelines: Pipelines;
  /** The one bind-group cache of ops and segments alike. */
  readonly #groups: BindGroupCache;
  readonly #ring: UniformRing;
  readonly #programs = new Programs();
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
    this.#onBatch = onBatch;
    const staging = new StagingRing(device);
    this.#reporter = { post, waits, staging, deviceClock: new DeviceClock() };
    if (device.features.has("timestamp-query")) this.#queries = new QueryPool(device);
    this.#groups = new BindGroupCache(device);
    const pool = new BufferPool((size) =>
      device.createBuffer({ label: `pool-${size}`, size, usage: STORAGE_USAGE })
    );
    pool.onDestroy = (b) => this.#groups.forget(b);
    this.#table = new BufferTable(pool);
    this.#pipelines = new Pipelines(device);
    const buffer = device.createBuffer({
      label: "uniform-ring",
      size: RING_SLOTS * UNIFORM_STRIDE,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#ring = { buffer, slots: new RingSlots(RING_SLOTS) };
  }

  /** Buffers made and reused by the pool, and bind groups cached, for tests and profiles. */
  get reuse(): { created: number; reused: number; bindGroups: number; segmentGroups: number } {
    return {
      ...this.#table.pool.counts,
      bindGroups: this.#groups.size,
      segmentGroups: this.#segmentGroups,
    };
  }

  /** Buffers held, for tests. */
  get buffers(): number {
    return this.#table.count;
  }

  /** The Worker has nothing to do: collects the bind groups dropped (see bind_groups.ts). */
  idle(): void {
    this.#groups.collectDropped();
  }

  /** Waits for the work submitted so far, then destroys every buffer. */
  async destroyAll(): Promise<void> {
    await this.#device.queue.onSubmittedWorkDone();
    this.#table.destroyAll();
    this.#groups.clear();
    this.#ring.buffer.destroy();
    for (const b of this.#programs.forgetAll()) b.destroy();
  }

  /**
   * Encodes `commands` into one command buffer and submits it. Reports come through `post`:
   * one "done" for the batch once it has completed, and a "read" (or "read-failed") per
   * readback.
   */
  async run(commands: Command[], timing: boolean): Promise<void> {
    const batch = this.#begin(commands, timing);
    for (const cmd of commands) {
      // Only a kernel not compiled yet, or a definition, waits: the rest encodes at once.
      const waiting = this.#encode(batch, cmd);
      if (waiting) await waiting;
    }
    this.#submit(batch);
  }

  #begin(commands: Command[], timing: boolean): Batch {
    const start = clock();
    this.phases.start();
    this.phases.totals.batches++;
    this.#onBatch(); // Dawn: this batch's waits (error scopes, maps) are answered promptly
    const timer = timing && this.#queries ? new BatchTimer(this.#queries) : undefined;
    const slots = this.#uniformSlots(commands);
    const enc = new BatchEncoder(this.#device, this.#ring, this.#groups, { slots, timer });
    this.#device.pushErrorScope("validation");
    this.phases.mark("batch setup");
    return {
      start,
      enc,
      done: [],
      failures: [],
      writes: [],
      reads: [],
      frees: [],
      dropped: [],
      failedOutputs: [],
    };
  }

  /** Uniform slots the batch may need: one per op, one per distinct uniforms of a segment. */
  #uniformSlots(commands: Command[]): number {
    let n = 0;
    /** Segments defined in this batch: at most a slot per kernel. */
    const defined = new Map<string, number>();
    for (const c of commands) {
      if (c.t === "run") n++;
      else if (c.t === "define") defined.set(`${c.program}/${c.segment}`, c.kernels.length);
      else if (c.t === "exec") {
        const seg = this.#programs.get(c.program, c.segment);
        n += defined.get(`${c.program}/${c.segment}`) ??
          (seg && "uniforms" in seg ? seg.uniforms.length : 0);
      }
    }
    return n;
  }

  /** Encodes one command; answers a promise when it has to wait (a compilation). */
  #encode(batch: Batch, cmd: Command): Promise<void> | undefined {
    switch (cmd.t) {
      case "write":
        return this.#write(batch, cmd);
      case "free":
        batch.frees.push(cmd.buf);
        return;
      case "define":
        batch.enc.endPass();
        return defineSegment(this.#device, this.#pipelines, cmd).then((seg) => {
          this.#programs.set(cmd.program, cmd.segment, seg);
          this.phases.mark("define");
        });
      case "forget":
        batch.dropped.push(...this.#programs.forget(cmd.program));
        return;
      case "exec":
        return this.#exec(batch, cmd);
      case "read":
        return this.#read(batch, cmd);
      case "run":
        return this.#run(batch, cmd);
    }
  }

  #write(batch: Batch, cmd: WriteCommand): undefined {
    const timed = batch.enc.timer !== undefined;
    const t0 = timed ? clock() : 0;
    this.#device.queue.writeBuffer(this.#table.take(cmd.buf, cmd.data.byteLength), 0, cmd.data);
    if (timed) batch.writes.push({ op: cmd.op, start: t0, end: clock() });
    batch.done.push(cmd.op);
  }

  #read(batch: Batch, cmd: ReadCommand): undefined {
    const bad = this.#table.badInput([cmd.buf]);
    if (bad !== undefined) {
      this.#reporter.post({ type: "read-failed", op: cmd.op, message: bad });
      return;
    }
    const bytes = Math.max(4, cmd.bytes);
    const s = this.#reporter.staging.take(bytes);
    const enc = batch.enc;
    enc.endPass();
    enc.timer?.copy(enc.encoder, cmd.op);
    enc.encoder.copyBufferToBuffer(this.#table.get(cmd.buf), 0, s, 0, bytes);
    batch.reads.push({ cmd, staging: s });
  }

  /** An op: skipped when an input failed, compiled when its kernel is new, then dispatched. */
  #run(batch: Batch, cmd: RunCommand): Promise<void> | undefined {
    const table = this.#table;
    const bad = table.badInput(
      cmd.inPlace === undefined ? cmd.inputs : [...cmd.inputs, cmd.inPlace],
    );
    if (bad !== undefined) {
      for (const o of cmd.outputs) table.fail(o.id, bad);
      batch.failures.push({ op: cmd.op, message: bad, skipped: true });
      if (cmd.inPlace !== undefined) batch.frees.push(cmd.inPlace);
      return;
    }
    this.phases.totals.ops++;
    this.phases.mark("other");
    let compiled: Compiled | undefined;
    try {
      compiled = this.#pipelines.cached(this.#pipelines.key(cmd));
    } catch (e) {
      return this.#failed(batch, cmd, e, undefined);
    }
    if (compiled) return this.#dispatchOp(batch, cmd, compiled);
    return this.#pipelines.compile(cmd).then(
      (c) => this.#dispatchOp(batch, cmd, c),
      (e) => this.#failed(batch, cmd, e, undefined),
    );
  }

  /** Gives an op its output buffers and dispatches it. */
  #dispatchOp(batch: Batch, cmd: RunCommand, compiled: Compiled): undefined {
    const table = this.#table;
    const phases = this.phases;
    phases.mark("pipeline lookup");
    /** In place: the output that took over the old buffer under the new version's id. */
    let adopted: number | undefined;
    try {
      const outs = cmd.outputs.map((o, i) => {
        if (i > 0 || cmd.inPlace === undefined) return table.take(o.id, o.bytes);
        adopted = o.id;
        return table.move(cmd.inPlace, o.id);
      });
      const buffers = [...cmd.inputs.map((id) => table.get(id)), ...outs];
      const sizes = [...cmd.inputs, ...cmd.outputs.map((o) => o.id)].map((id) => table.size(id));
      phases.mark("output buffers");
      const d = this.#resolve(batch.enc, cmd, compiled, buffers, sizes);
      phases.mark("uniforms");
      batch.enc.open(cmd.op);
      batch.enc.dispatch(d);
      batch.enc.close();
      phases.mark("dispatch");
      batch.done.push(cmd.op);
    } catch (e) {
      this.#failed(batch, cmd, e, adopted);
    }
  }

  /**
   * An op as a dispatch: its uniforms into the batch's slots, its workgroups. The seam of a
   * later fusion step is here and in {@link #exec}: both hand {@link Dispatch}es to
   * BatchEncoder.dispatch, where neighbouring ones could be fused before they are encoded.
   */
  #resolve(
    enc: BatchEncoder,
    cmd: RunCommand,
    compiled: Compiled,
    buffers: GPUBuffer[],
    sizes: number[],
  ): Dispatch {
    const spec = kernel(cmd.kernel);
    const uniforms = enc.uniform(new Uint8Array(packUniforms(spec, cmd.params)));
    return { compiled, buffers, sizes, uniforms, workgroups: spec.workgroups(cmd.params) };
  }

  /** An op that failed: its outputs fail, and what it would have freed is freed. */
  #failed(batch: Batch, cmd: RunCommand, e: unknown, adopted: number | undefined): undefined {
    const message = e instanceof Error ? e.message : String(e);
    for (const o of cmd.outputs) {
      // An adopted buffer may still be read by earlier work of this batch: it is freed with
      // the output's record, later.
      if (o.id !== adopted) {
        const b = this.#table.release(o.id);
        if (b) batch.failedOutputs.push(b);
      }
      this.#table.fail(o.id, message);
    }
    if (cmd.inPlace !== undefined && adopted === undefined) batch.frees.push(cmd.inPlace);
    batch.failures.push({ op: cmd.op, message, skipped: false });
  }

  /** A replayed segment: its kernels dispatched as ops are, in the op's pass. */
  #exec(batch: Batch, cmd: ExecCommand): undefined {
    const seg = this.#programs.get(cmd.program, cmd.segment);
    const bad = this.#table.badInput(cmd.inputs);
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
      for (const id of cmd.outputs) this.#table.fail(id, failure.message);
      // Inputs it would have updated in place are freed with their records' new versions.
      for (const o of seg?.outputs ?? []) {
        if (o.as === "adopt") batch.frees.push(cmd.inputs[o.slot]);
      }
      batch.failures.push(failure);
      return;
    }
    const segment = seg as Segment;
    const inputs = cmd.inputs.map((id) => this.#table.get(id));
    const enc = batch.enc;
    const offsets = segment.uniforms.map((u) => enc.uniform(u));
    const n = segment.inputs;
    const made = this.#groups.made;
    enc.open(cmd.op);
    for (const k of segment.kernels) {
      enc.dispatch({
        compiled: k.compiled,
        buffers: k.bind.map((s) => s < n ? inputs[s] : segment.slots[s - n]),
        sizes: k.sizes,
        uniforms: offsets[k.uniform],
        workgroups: k.workgroups,
        memo: k,
      });
    }
    enc.close();
    this.#segmentGroups += this.#groups.made - made;
    this.#segmentOutputs(batch, segment, cmd);
    this.phases.totals.ops += segment.kernels.length;
    this.phases.totals.replayed += segment.kernels.length;
    this.phases.mark("replay");
    batch.done.push(cmd.op);
  }

  /** Gives a segment's outputs their buffers: adopted, aliased, or copied at its end. */
  #segmentOutputs(batch: Batch, seg: Segment, cmd: ExecCommand): void {
    const table = this.#table;
    seg.outputs.forEach((o, i) => {
      const id = cmd.outputs[i];
      const size = seg.sizes[o.slot];
      if (o.as === "adopt") table.move(cmd.inputs[o.slot], id, size);
      else if (o.as === "alias") table.alias(id, seg.slots[o.slot - seg.inputs], size);
      else {
        batch.enc.endPass();
        const b = table.take(id, size);
        batch.enc.encoder.copyBufferToBuffer(seg.slots[o.slot - seg.inputs], 0, b, 0, size);
      }
    });
  }

  /** Submits the batch's command buffer, retires what it freed, and reports it. */
  #submit(batch: Batch): void {
    const phases = this.phases;
    const waits = this.#reporter.waits;
    phases.mark("other");
    const commandBuffer = batch.enc.finish(this.#reporter.staging);
    phases.mark("finish");
    waits.beforeSubmit();
    phases.mark("wait before submit");
    const submitted = clock();
    this.#device.queue.submit([commandBuffer]);
    phases.mark("submit");
    const validation = this.#device.popErrorScope();
    // Freed buffers leave the table now; they are destroyed once the work using them is done
    // (destroying them right after submit crashed Deno's GL backend now and then).
    const retired = [...batch.failedOutputs];
    for (const id of batch.frees) {
      const b = this.#table.release(id);
      if (b) retired.push(b);
    }
    const pool = this.#table.pool;
    reportBatch(this.#reporter, {
      ...batch,
      submitted,
      timer: batch.enc.timer,
      validation,
      // The batch is complete: its buffers and uniform slots may be used again.
      release: () => {
        for (const b of retired) pool.give(b);
        for (const b of batch.dropped) b.destroy();
        batch.enc.release();
      },
    });
    phases.mark("after submit");
  }
}
