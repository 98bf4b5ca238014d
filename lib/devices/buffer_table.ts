/**
 * The device Worker's buffers by tensor id: each with its bound size, the message of the op
 * that failed to make it, and whether it is a segment's static buffer (an alias, which
 * freeing the tensor does not free). New buffers come from the pool.
 *
 * @module
 */
import { boundSize, type BufferPool } from "./buffer_pool.ts";

/**
 * See the module's documentation.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffer_pool.ts";
 * import { BufferTable } from "./buffer_table.ts";
 * const fake = (size: number) => ({ size, destroy() {} }) as unknown as GPUBuffer;
 * const table = new BufferTable(new BufferPool(fake));
 * const a = table.take(1, 10);
 * table.move(1, 2); // an in-place update: tensor 2 holds tensor 1's buffer
 * console.log(table.get(2) === a, table.size(2), table.badInput([1])); // true 16 input buffer t1 does not exist on this device
 * ```
 */
export class BufferTable {
  readonly pool: BufferPool;
  readonly #buffers = new Map<number, GPUBuffer>();
  /** The bound size of each tensor's buffer (its bytes, rounded up to 16). */
  readonly #sizes = new Map<number, number>();
  /** Buffers whose producing op failed; ops reading them are skipped. */
  readonly #failed = new Map<number, string>();
  /** Tensors whose buffer is a segment's static buffer: freeing them frees nothing. */
  readonly #aliases = new Set<number>();

  /** A table taking new buffers from `pool`. */
  constructor(pool: BufferPool) {
    this.pool = pool;
  }

  /** Buffers held. */
  get count(): number {
    return this.#buffers.size;
  }

  /** Tensor `id`'s buffer (it must be there: see {@link badInput}). */
  get(id: number): GPUBuffer {
    return this.#buffers.get(id)!;
  }

  /** Tensor `id`'s bound size. */
  size(id: number): number {
    return this.#sizes.get(id)!;
  }

  /** A buffer from the pool for tensor `id` of `bytes`. */
  take(id: number, bytes: number): GPUBuffer {
    const size = boundSize(bytes);
    const b = this.pool.take(size);
    this.#buffers.set(id, b);
    this.#sizes.set(id, size);
    return b;
  }

  /**
   * Tensor `to` takes over tensor `from`'s buffer (an in-place update, a new version), bound
   * at `size` (by default, `from`'s).
   */
  move(from: number, to: number, size: number = this.#sizes.get(from)!): GPUBuffer {
    const b = this.#buffers.get(from)!;
    this.#buffers.set(to, b);
    this.#sizes.set(to, size);
    this.#buffers.delete(from);
    this.#sizes.delete(from);
    if (this.#aliases.delete(from)) this.#aliases.add(to);
    return b;
  }

  /** Tensor `id` names a segment's static `buffer`, bound at `size`. */
  alias(id: number, buffer: GPUBuffer, size: number): void {
    this.#buffers.set(id, buffer);
    this.#sizes.set(id, size);
    this.#aliases.add(id);
  }

  /** Tensor `id` could not be made: ops reading it fail with `message`. */
  fail(id: number, message: string): void {
    this.#failed.set(id, message);
  }

  /**
   * Tensor `id` leaves the table; returns its buffer, to give back to the pool once the work
   * using it is done, unless it is a segment's static buffer (it stays with its program).
   */
  release(id: number): GPUBuffer | undefined {
    const b = this.#buffers.get(id);
    const alias = this.#aliases.delete(id);
    this.#buffers.delete(id);
    this.#sizes.delete(id);
    this.#failed.delete(id);
    return alias ? undefined : b;
  }

  /** The first failed input of `ids`, if any, or a message for a missing one. */
  badInput(ids: readonly number[]): string | undefined {
    for (const id of ids) {
      const f = this.#failed.get(id);
      if (f !== undefined) return f;
      if (!this.#buffers.has(id)) return `input buffer t${id} does not exist on this device`;
    }
    return undefined;
  }

  /** Destroys every buffer, the pool's included. */
  destroyAll(): void {
    for (const b of this.#buffers.values()) b.destroy();
    this.#buffers.clear();
    this.#sizes.clear();
    this.#failed.clear();
    this.#aliases.clear();
    this.pool.clear();
  }
}
