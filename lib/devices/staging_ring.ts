/**
 * Reusable MAP_READ staging buffers, the WebGPU analogue of pinned host memory: a readback
 * takes one of the right size class, and gives it back once its bytes are copied out.
 *
 * @module
 */

/** A bounded pool of staging buffers, by power-of-two size class. */
export class StagingRing {
  readonly #device: GPUDevice;
  readonly #free = new Map<number, GPUBuffer[]>();
  readonly #maxPerClass: number;

  /** Keeps at most `maxPerClass` idle buffers of each size class. */
  constructor(device: GPUDevice, maxPerClass = 4) {
    this.#device = device;
    this.#maxPerClass = maxPerClass;
  }

  /** A staging buffer of at least `bytes` bytes, reused when one is idle. */
  take(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const reused = this.#free.get(size)?.pop();
    return reused ?? this.#device.createBuffer({
      label: `staging-${size}`,
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Returns an unmapped buffer to the pool, or destroys it when its class is full. */
  give(buffer: GPUBuffer): void {
    const list = this.#free.get(buffer.size) ?? [];
    if (list.length >= this.#maxPerClass) {
      buffer.destroy();
      return;
    }
    list.push(buffer);
    this.#free.set(buffer.size, list);
  }
}

/** The power of two at or above `bytes`, at least 256. */
export function sizeClass(bytes: number): number {
  return Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))));
}
