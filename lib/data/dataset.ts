/**
 * What a `DataLoader` reads: the dataset contract (`length` samples, and a `batch(indices)`
 * that makes the tensors of those samples) and `TensorDataset`, which serves the rows of
 * tensors that share their first dimension, like PyTorch's `TensorDataset`.
 *
 * @module
 */
import { fromArray } from "../tensor/creation.ts";
import { Tensor } from "../tensor/tensor.ts";

/**
 * One batch: tensors in an array (`[x, y]`) or by name (`{ x, y }`), each with the batch's
 * samples along its first dimension.
 *
 * @example
 * ```ts
 * import { type Batch, fromArray } from "../../mod.ts";
 * const batch: Batch = { x: fromArray([1, 2, 3, 4], [2, 2]), y: fromArray([0, 1], [2]) };
 * console.log(batch.x.shape); // [2, 2]
 * ```
 */
export type Batch = readonly Tensor[] | { readonly [name: string]: Tensor };

/**
 * The contract a `DataLoader` reads: `length` samples, numbered 0..length-1, and
 * `batch(indices)`, which makes a new batch of those samples in that order (or a Promise of
 * one). The loader owns what `batch` returns: it moves the tensors to its device and
 * disposes them once the consumer is done, so return fresh tensors, not the dataset's own.
 *
 * @example
 * ```ts
 * import { type BatchDataset, DataLoader, fromArray, type Tensor } from "../../mod.ts";
 * // Sample i is i * i, made on demand.
 * const squares: BatchDataset<{ x: Tensor }> = {
 *   length: 4,
 *   batch: (indices) => ({ x: fromArray(indices.map((i) => i * i), [indices.length]) }),
 * };
 * for await (const { x } of new DataLoader(squares, { batchSize: 4 })) {
 *   console.log(await x.data()); // Float32Array [0, 1, 4, 9]
 * }
 * ```
 */
export interface BatchDataset<B extends Batch = Batch> {
  /** How many samples. */
  readonly length: number;
  /** A new batch of the samples `indices`, in that order. */
  batch(indices: readonly number[]): B | Promise<B>;
}

/**
 * Tensors that share their first dimension, served row by row: sample `i` is row `i` of
 * each (PyTorch's `TensorDataset`). `batch(indices)` gathers the rows on the host into new
 * tensors: the values of each tensor are read once, at the first batch, and kept. The
 * tensors stay the caller's; keep them alive until the first batch has been made. Throws a TypeError for something that is not an
 * array or record of live tensors, a RangeError for tensors of rank 0 or first dimensions
 * that differ.
 *
 * @example
 * ```ts
 * import { fromArray, TensorDataset } from "../../mod.ts";
 * const x = fromArray([0, 1, 2, 3, 4, 5], [3, 2]);
 * const y = fromArray([7, 8, 9], [3]);
 * const data = new TensorDataset({ x, y });
 * const batch = await data.batch([2, 0]);
 * console.log(data.length, await batch.x.data(), await batch.y.data());
 * // 3 Float32Array [4, 5, 0, 1] Float32Array [9, 7]
 * ```
 */
export class TensorDataset<B extends Batch = Batch> implements BatchDataset<B> {
  /** How many samples: the tensors' first dimension. */
  readonly length: number;
  readonly #tensors: B;
  #reading: Promise<Float32Array[]> | undefined;
  #values: Float32Array[] | undefined;

  /** Serves the rows of `tensors` (an array or a record of tensors). */
  constructor(tensors: B) {
    const list = tensorsOf(tensors, "make a dataset of");
    if (list.length === 0) {
      throw new TypeError(`Cannot make a dataset of ${describe(tensors)}: it holds no tensors`);
    }
    for (const t of list) {
      if (t.disposed) {
        throw new TypeError(`Cannot make a dataset of ${t}: it has been disposed`);
      }
      if (t.shape.length === 0) {
        throw new RangeError(
          `Cannot make a dataset of ${t}: a tensor of rank 0 has no first dimension to index`,
        );
      }
    }
    const first = list[0].shape[0];
    const other = list.find((t) => t.shape[0] !== first);
    if (other) {
      throw new RangeError(
        `Cannot make a dataset of ${list[0]} and ${other}: their first dimensions differ ` +
          `(${first} and ${other.shape[0]})`,
      );
    }
    this.length = first;
    this.#tensors = tensors;
  }

  /**
   * New host tensors holding rows `indices` of each tensor, in that order: a Promise until
   * the values have been read, then the batch itself, so a loader queues its copy at once.
   * Throws a RangeError for an index outside [0, length); rejects with what reading threw.
   */
  batch(indices: readonly number[]): B | Promise<B> {
    const bad = indices.find((i) => !Number.isInteger(i) || i < 0 || i >= this.length);
    if (bad !== undefined || indices.length === 0) {
      throw new RangeError(
        `Cannot make a batch of samples [${indices.join(", ")}]: each index must be a whole ` +
          `number in [0, ${this.length}), and there must be at least one`,
      );
    }
    if (this.#values) return this.#gather(this.#values, indices);
    const list = tensorsOf(this.#tensors, "make a batch of");
    this.#reading ??= Promise.all(list.map((t) => t.data())).then((values) => {
      this.#values = values;
      return values;
    });
    return this.#reading.then((values) => this.#gather(values, indices));
  }

  #gather(values: Float32Array[], indices: readonly number[]): B {
    const list = tensorsOf(this.#tensors, "make a batch of");
    const batch = list.map((t, n) => gather(values[n], t.shape, indices));
    if (Array.isArray(this.#tensors)) return batch as unknown as B;
    const names = Object.keys(this.#tensors);
    return Object.fromEntries(names.map((name, n) => [name, batch[n]])) as unknown as B;
  }
}

/** The tensors of a batch or dataset, in order; a TypeError for anything else. */
export function tensorsOf(batch: unknown, what: string): Tensor[] {
  if (batch === null || typeof batch !== "object" || batch instanceof Tensor) {
    throw new TypeError(
      `Cannot ${what} ${describe(batch)}: it must be an array or a record of tensors`,
    );
  }
  const list = Object.values(batch);
  for (const t of list) {
    if (!(t instanceof Tensor)) {
      throw new TypeError(`Cannot ${what} ${describe(batch)}: ${describe(t)} is not a Tensor`);
    }
  }
  return list as Tensor[];
}

/** Rows `indices` of `values` (a tensor of `shape`) in a new host tensor. */
function gather(values: Float32Array, shape: readonly number[], indices: readonly number[]) {
  const row = values.length / shape[0];
  const rows = new Float32Array(indices.length * row);
  indices.forEach((i, k) => rows.set(values.subarray(i * row, (i + 1) * row), k * row));
  return fromArray(rows, [indices.length, ...shape.slice(1)]);
}

/** For messages: tensors as `Tensor[2, 3] on cpu`, other values briefly. */
export function describe(value: unknown): string {
  if (value instanceof Tensor) return String(value);
  if (Array.isArray(value)) return `[${value.map(describe).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).slice(0, 4).map(([k, v]) =>
      `${k}: ${v instanceof Tensor ? String(v) : typeof v}`
    );
    return `{ ${entries.join(", ")} }`;
  }
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}
