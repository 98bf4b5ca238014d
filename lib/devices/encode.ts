/**
 * The one dispatch path of the device Worker. An op of a batch and each kernel of a replayed
 * segment are both resolved into a {@link Dispatch} (a pipeline, the buffers it binds, its
 * uniforms and workgroups) and encoded by {@link BatchEncoder.dispatch}: one bind-group cache
 * (bind_groups.ts), one uniform ring (uniform_ring.ts), one compute pass per batch unless ops
 * are timed (a pass each, bracketed by timestamps).
 *
 * @module
 */
import type { BindGroupCache, BindGroupMemo } from "./bind_groups.ts";
import type { BatchTimer } from "./batch_timer.ts";
import type { Compiled } from "./pipelines.ts";
import type { StagingRing } from "./staging_ring.ts";
import { type RingSlots, UNIFORM_STRIDE, type UniformSlots } from "./uniform_ring.ts";

/**
 * One kernel dispatch, resolved. Fusion (a later step) plugs in between the resolution of a
 * batch's dispatches and their encoding: a run of neighbouring dispatches, whether they come
 * from ops or from a segment, can be replaced by one fused dispatch of the same shape.
 */
export interface Dispatch {
  compiled: Compiled;
  /** The storage buffers bound, inputs then outputs. */
  buffers: readonly GPUBuffer[];
  /** Their bound sizes. */
  sizes: readonly number[];
  /** Its uniforms' offset (from {@link BatchEncoder.uniform}). */
  uniforms: number;
  workgroups: readonly [number, number, number];
  /** The dispatch site's last bind group (a segment's kernel keeps one: see bind_groups.ts). */
  memo?: { last?: BindGroupMemo };
}

/** The device's uniform buffer, used as a ring of per-batch slots. */
export interface UniformRing {
  buffer: GPUBuffer;
  slots: RingSlots;
}

/**
 * One batch's command encoder: its passes, its uniforms and its dispatches.
 *
 * @example
 * ```ts ignore
 * const batch = new BatchEncoder(device, ring, cache, { slots: 1 });
 * batch.open(op);
 * batch.dispatch({ compiled, buffers, sizes, uniforms: batch.uniform(bytes), workgroups });
 * batch.close();
 * device.queue.submit([batch.finish(staging)]);
 * ```
 */
export class BatchEncoder {
  readonly encoder: GPUCommandEncoder;
  readonly timer: BatchTimer | undefined;
  readonly #device: GPUDevice;
  readonly #cache: BindGroupCache;
  readonly #ring: UniformRing;
  /** The batch's uniforms, written to their buffer with one writeBuffer at the end. */
  readonly #uniforms: Uint8Array;
  #slot = 0;
  /** Its slots of the ring; none when the ring had no room (a buffer of its own, then). */
  readonly #slots: UniformSlots | undefined;
  readonly #uniformBuffer: GPUBuffer;
  readonly #base: number;
  /** The batch's one compute pass, while open, and the pipeline set in it last. */
  #shared: GPUComputePassEncoder | undefined;
  /** The pass of the op being encoded. */
  #pass: GPUComputePassEncoder | undefined;
  #pipeline: GPUComputePipeline | undefined;

  /**
   * An encoder on `device` for a batch that needs at most `slots` uniform slots; `timer`
   * when its ops are timed.
   */
  constructor(
    device: GPUDevice,
    ring: UniformRing,
    cache: BindGroupCache,
    options: { slots: number; timer?: BatchTimer },
  ) {
    this.#device = device;
    this.#ring = ring;
    this.#cache = cache;
    this.timer = options.timer;
    const slots = options.slots;
    this.#uniforms = new Uint8Array(Math.max(1, slots) * UNIFORM_STRIDE);
    // A batch that finds no room in the ring gets a buffer of its own (its bind groups are
    // then not cached).
    this.#slots = slots > 0 ? ring.slots.reserve(slots) : undefined;
    this.#uniformBuffer = this.#slots || slots === 0 ? ring.buffer : device.createBuffer({
      size: this.#uniforms.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#base = this.#slots?.offset ?? 0;
    this.encoder = device.createCommandEncoder();
  }

  /** Puts `bytes` in the batch's next uniform slot; returns its offset in the buffer bound. */
  uniform(bytes: Uint8Array): number {
    this.#uniforms.set(bytes, this.#slot * UNIFORM_STRIDE);
    return this.#base + this.#slot++ * UNIFORM_STRIDE;
  }

  /** Opens op `op`'s pass: the batch's one pass, or one of its own when ops are timed. */
  open(op: number): void {
    if (this.timer) {
      this.endPass();
      const timestampWrites = this.timer.pass(op);
      this.#pass = this.encoder.beginComputePass({ label: `op${op}`, timestampWrites });
      this.#pipeline = undefined;
    } else {
      if (!this.#shared) {
        this.#shared = this.encoder.beginComputePass({ label: "batch" });
        this.#pipeline = undefined;
      }
      this.#pass = this.#shared;
    }
  }

  /** Encodes `d` into the open pass; consecutive dispatches of a pipeline set it once. */
  dispatch(d: Dispatch): void {
    const c = d.compiled;
    const ring = this.#uniformBuffer;
    const cacheable = ring === this.#ring.buffer;
    const group = !cacheable
      ? this.#cache.get(c, d.buffers, d.sizes, ring, false)
      : d.memo
      ? this.#cache.getMemo(c, d.buffers, d.sizes, ring, d.memo)
      : this.#cache.get(c, d.buffers, d.sizes, ring);
    const pass = this.#pass!;
    if (c.pipeline !== this.#pipeline) pass.setPipeline(this.#pipeline = c.pipeline);
    pass.setBindGroup(0, group, [d.uniforms]);
    pass.dispatchWorkgroups(...d.workgroups);
  }

  /** Closes the op's pass when it has one of its own. */
  close(): void {
    if (this.timer) this.#pass?.end();
    this.#pass = undefined;
  }

  /** Ends the batch's pass, before commands that cannot go in one (copies). */
  endPass(): void {
    this.#shared?.end();
    this.#shared = undefined;
  }

  /** Writes the batch's uniforms and finishes its command buffer. */
  finish(staging: StagingRing): GPUCommandBuffer {
    this.endPass();
    if (this.#slot > 0) {
      const bytes = this.#slot * UNIFORM_STRIDE;
      this.#device.queue.writeBuffer(this.#uniformBuffer, this.#base, this.#uniforms, 0, bytes);
    }
    this.timer?.resolve(this.encoder, staging);
    return this.encoder.finish();
  }

  /** The batch has completed: its uniform slots may be used again. */
  release(): void {
    if (this.#slots) this.#ring.slots.release(this.#slots);
    else if (this.#uniformBuffer !== this.#ring.buffer) this.#uniformBuffer.destroy();
  }
}
