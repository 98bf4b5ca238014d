/**
 * The values of host tensors, by record id: the ones made on the host, the ones read back
 * from a device, and the results of host lanes. The engine owns the store and hands it to
 * every host-visible runtime it uses (`DeviceRuntime.useHostStore`), which reads its inputs
 * from it and puts its outputs in it.
 *
 * @module
 */

/**
 * See the module's documentation.
 *
 * @example
 * ```ts
 * import { HostStore } from "./host_store.ts";
 * const store = new HostStore();
 * store.put(1, new Float32Array([1, 2]));
 * console.log(store.get(1), store.size); // Float32Array(2) [ 1, 2 ] 1
 * console.log(store.take(1)?.length, store.size); // 2 0
 * ```
 */
export class HostStore {
  readonly #values = new Map<number, Float32Array>();

  /** Stores the values of host tensor `id`. */
  put(id: number, values: Float32Array): void {
    this.#values.set(id, values);
  }

  /** The values of host tensor `id`, if it holds any. */
  get(id: number): Float32Array | undefined {
    return this.#values.get(id);
  }

  /** Whether host tensor `id` holds values. */
  has(id: number): boolean {
    return this.#values.has(id);
  }

  /** The values of host tensor `id`, which lets go of them (they are handed on). */
  take(id: number): Float32Array | undefined {
    const v = this.#values.get(id);
    this.#values.delete(id);
    return v;
  }

  /** Lets go of the values of host tensor `id`. */
  delete(id: number): void {
    this.#values.delete(id);
  }

  /** Host tensors holding values. */
  get size(): number {
    return this.#values.size;
  }
}
