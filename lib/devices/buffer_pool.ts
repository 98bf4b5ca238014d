/**
 * Storage buffers reused by size class, as tfjs and onnxruntime-web reuse theirs: a freed
 * tensor's buffer goes back to the pool once the work that used it has completed, and the
 * next tensor of that class takes it instead of a new `createBuffer`. Reused buffers also
 * let bind groups be cached (bind_groups.ts).
 *
 * @module
 */

/** Usage of every tensor buffer. */
export const STORAGE_USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

/**
 * The size a tensor of `bytes` is bound with: rounded up to 16, so a vec4<f32> binding of
 * any kernel fits.
 *
 * @example
 * ```ts
 * import { boundSize } from "./buffer_pool.ts";
 * console.log(boundSize(4), boundSize(40)); // 16 48
 * ```
 */
export const boundSize = (bytes: number): number => Math.max(16, Math.ceil(bytes / 16) * 16);

/**
 * The size class of a buffer for `bytes`: the power of two at or above it up to 64 KiB,
 * then the next eighth of an octave (at most 12.5% unused).
 *
 * @example
 * ```ts
 * import { poolClass } from "./buffer_pool.ts";
 * console.log(poolClass(1), poolClass(4096), poolClass(100_000)); // 256 4096 106496
 * ```
 */
export function poolClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes));
  const pow = 2 ** Math.ceil(Math.log2(b));
  if (pow <= 65536) return pow;
  const step = pow / 16; // eighths of the octave below `pow`
  return Math.ceil(b / step) * step;
}

/**
 * A bounded pool of idle storage buffers by size class.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffer_pool.ts";
 * const destroyed: number[] = [];
 * const fake = (size: number) => ({ size, destroy: () => destroyed.push(size) }) as unknown as GPUBuffer;
 * const pool = new BufferPool((size) => fake(size), { maxBytes: 1024 });
 * const a = pool.take(100);
 * pool.give(a);
 * console.log(pool.take(200) === a, destroyed); // true []
 * ```
 */
export class BufferPool {
  readonly #create: (size: number) => GPUBuffer;
  readonly #idle = new Map<number, GPUBuffer[]>();
  readonly #maxBytes: number;
  #idleBytes = 0;
  /** Called with a buffer just before the pool destroys it (to drop cached bind groups). */
  onDestroy: (buffer: GPUBuffer) => void = () => {};
  /** Buffers handed out that were reused, and that were made new. */
  readonly counts = { reused: 0, created: 0 };

  /** A pool making buffers with `create(size)`, keeping at most `maxBytes` idle. */
  constructor(create: (size: number) => GPUBuffer, options: { maxBytes?: number } = {}) {
    this.#create = create;
    this.#maxBytes = options.maxBytes ?? 256 * 2 ** 20;
  }

  /** A buffer of at least `bytes`, idle or new. */
  take(bytes: number): GPUBuffer {
    const size = poolClass(bytes);
    const reused = this.#idle.get(size)?.pop();
    if (reused) {
      this.#idleBytes -= size;
      this.counts.reused++;
      return reused;
    }
    this.counts.created++;
    return this.#create(size);
  }

  /** Takes back a buffer no queued work uses any more; destroys it when the pool is full. */
  give(buffer: GPUBuffer): void {
    const size = buffer.size;
    if (size !== poolClass(size) || this.#idleBytes + size > this.#maxBytes) {
      this.onDestroy(buffer);
      buffer.destroy();
      return;
    }
    const list = this.#idle.get(size) ?? [];
    list.push(buffer);
    this.#idle.set(size, list);
    this.#idleBytes += size;
  }

  /** Destroys every idle buffer. */
  clear(): void {
    for (const list of this.#idle.values()) {
      for (const b of list) {
        this.onDestroy(b);
        b.destroy();
      }
    }
    this.#idle.clear();
    this.#idleBytes = 0;
  }
}
