/**
 * One uniform buffer per device, used as a ring: each batch reserves a run of 256-byte
 * slots (WebGPU's dynamic offset alignment) and writes them with one `writeBuffer`; the
 * slots come free when the batch has completed. Kernels bind it once, with a dynamic
 * offset per dispatch, so a bind group does not depend on the op's uniforms and can be
 * cached.
 *
 * @module
 */

/** Bytes between two ops' uniforms (WebGPU's minUniformBufferOffsetAlignment at most). */
export const UNIFORM_STRIDE = 256;

/** A run of slots reserved by one batch. */
export interface UniformSlots {
  /** Byte offset of the first slot in the ring. */
  offset: number;
  /** Slots reserved. */
  count: number;
}

/**
 * Slot bookkeeping of the ring (first in, first out), apart from the GPU buffer.
 *
 * @example
 * ```ts
 * import { RingSlots } from "./uniform_ring.ts";
 * const ring = new RingSlots(4);
 * const a = ring.reserve(3)!;
 * console.log(a.offset, ring.reserve(2)); // 0 undefined
 * ring.release(a);
 * console.log(ring.reserve(2)!.offset); // 0
 * ```
 */
export class RingSlots {
  #head = 0;
  /** Reservations in the order made: the oldest holds the ring's tail. */
  readonly #reserved: { from: number; slots: UniformSlots }[] = [];

  /** A ring of `slots` slots. */
  constructor(readonly slots: number) {}

  /** `count` contiguous slots, or undefined when they are not free. */
  reserve(count: number): UniformSlots | undefined {
    if (count < 1 || count > this.slots) return undefined;
    if (this.#reserved.length === 0) this.#head = 0;
    const from = this.#head;
    const tail = this.#reserved[0]?.from;
    let start: number | undefined;
    if (tail === undefined || from > tail || (from === tail && this.#reserved.length === 0)) {
      if (from + count <= this.slots) start = from;
      else if (tail === undefined || count <= tail) start = 0; // wrap; the tail end is skipped
    } else if (from + count <= tail) start = from;
    if (start === undefined) return undefined;
    const slots = { offset: start * UNIFORM_STRIDE, count };
    this.#head = start + count;
    this.#reserved.push({ from, slots });
    return slots;
  }

  /** Frees a batch's slots. */
  release(slots: UniformSlots): void {
    const i = this.#reserved.findIndex((r) => r.slots === slots);
    if (i >= 0) this.#reserved.splice(i, 1);
  }
}
