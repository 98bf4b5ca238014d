/**
 * `DataLoader`: PyTorch's DataLoader as an RxJS stream and an async iterator. It cuts a
 * dataset into batches (in order, or shuffled from a seed and the epoch), copies each batch
 * to a device with a non-blocking copy while the consumer computes on the one before, and
 * never runs more than `prefetch` batches ahead of the consumer.
 *
 * @module
 */
import { defer, map } from "npm:rxjs@7.8.2";
import { cpu, type Device } from "../devices/device.ts";
import { computed } from "../streams/settled.ts";
import type * as rxjs from "../streams/rxjs_types.ts";
import { checkDevice, Tensor } from "../tensor/tensor.ts";
import { type Batch, type BatchDataset, describe, TensorDataset, tensorsOf } from "./dataset.ts";
import { heldIterator, lend } from "./lending.ts";
import { batchCount, batchesOf, batchIndices } from "./sampler.ts";
import type { Sampler } from "./distributed_sampler.ts";

/**
 * Options of {@link DataLoader}.
 *
 * @example
 * ```ts
 * import { DataLoader, type DataLoaderOptions, fromArray } from "../../mod.ts";
 * const options: DataLoaderOptions = { batchSize: 2, shuffle: true, seed: 42, dropLast: true };
 * const loader = new DataLoader([fromArray([1, 2, 3, 4, 5], [5])], options);
 * console.log(loader.length); // 2
 * ```
 */
export interface DataLoaderOptions {
  /**
   * Samples per batch.
   * @default {1}
   */
  batchSize?: number;
  /**
   * Serve the samples in a shuffled order, a different one each epoch; else in order.
   * @default {false}
   */
  shuffle?: boolean;
  /**
   * The seed of the shuffle: the same seed and epoch give the same order on every machine.
   * @default {a random seed, drawn once per loader}
   */
  seed?: number;
  /**
   * Drop the last batch of an epoch when it has fewer than `batchSize` samples.
   * @default {false}
   */
  dropLast?: boolean;
  /**
   * Where the batches are served.
   * @default {cpu()}
   */
  device?: Device;
  /**
   * Batches made (and copying to the device) ahead of the one the consumer has. 0 makes each
   * batch only when the consumer asks for it.
   * @default {2}
   */
  prefetch?: number;
  /**
   * Which samples each epoch serves, in order, PyTorch's `sampler`: a
   * {@link DistributedSampler} gives each rank its share. The loader passes it its epoch
   * (see {@link DataLoader.setEpoch}). Not with `shuffle`: the sampler orders the samples.
   * @default {undefined: every sample, in order or shuffled}
   */
  sampler?: Sampler;
}

/** A batch being made: `batch` once `dataset.batch` has answered and its copy is queued. */
interface Pending<B> {
  batch?: B;
  /** Resolves once the batch is on the device, or has failed: `failure` says which. */
  landed: Promise<unknown>;
  failure?: { error: unknown };
  disposed: boolean;
}

/**
 * Serves a dataset in batches, PyTorch's `DataLoader`: `for await (const { x, y } of
 * loader)` iterates the next epoch, `loader.epoch(e)` is epoch `e` as an rxjs Observable.
 * The dataset is tensors of equal first dimension (an array or a record, served through a
 * {@link TensorDataset}) or any {@link BatchDataset}. Each batch is emitted once its copy to
 * `device` has landed, and the copies of the next `prefetch` batches are queued while the
 * consumer computes on the current one.
 *
 * The loader owns its batches and lends each to the consumer: in `for await`, until the
 * loop asks for the next batch (or leaves); in `epoch(e)`, until the subscriber's `next`
 * returns. Then it disposes the batch's tensors; work queued on them meanwhile still reads
 * them (autopar ops queue at once). Keep a tensor longer with `t.detach()`.
 *
 * Throws a TypeError for a dataset that is neither, a bad device, or a `sampler` with
 * `shuffle`; a RangeError for a bad `batchSize`, `prefetch` or `seed`, or tensors whose first
 * dimensions differ.
 *
 * @example
 * ```ts
 * import { DataLoader, fromArray } from "../../mod.ts";
 * const x = fromArray([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [5, 2]);
 * const y = fromArray([0, 1, 0, 1, 0], [5]);
 * const loader = new DataLoader({ x, y }, { batchSize: 2 });
 * for await (const batch of loader) console.log(batch.x.shape, await batch.y.data());
 * // [2, 2] Float32Array [0, 1]
 * // [2, 2] Float32Array [0, 1]
 * // [1, 2] Float32Array [0]
 * ```
 */
export class DataLoader<B extends Batch = Batch> implements AsyncIterable<B> {
  /** What the batches are made from. */
  readonly dataset: BatchDataset<B>;
  /** Samples per batch. */
  readonly batchSize: number;
  /** Whether each epoch serves the samples in its own shuffled order. */
  readonly shuffle: boolean;
  /** The seed of the shuffle. */
  readonly seed: number;
  /** Whether a last batch smaller than `batchSize` is dropped. */
  readonly dropLast: boolean;
  /** Where the batches are served. */
  readonly device: Device;
  /** Batches made ahead of the one the consumer has. */
  readonly prefetch: number;
  /** Which samples each epoch serves, when a sampler was given. */
  readonly sampler: Sampler | undefined;
  #nextEpoch = 0;

  /** Serves `dataset` (tensors, or a {@link BatchDataset}) in batches. */
  constructor(dataset: B | BatchDataset<B>, options: DataLoaderOptions = {}) {
    this.batchSize = wholeNumber(options.batchSize ?? 1, 1, "batchSize");
    this.prefetch = wholeNumber(options.prefetch ?? 2, 0, "prefetch");
    this.shuffle = flag(options.shuffle ?? false, "shuffle");
    this.dropLast = flag(options.dropLast ?? false, "dropLast");
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`Cannot load batches with seed ${seed}: it must be a whole number`);
    }
    this.seed = seed;
    this.device = checkDevice(options.device ?? cpu(), "load batches");
    this.dataset = asDataset(dataset);
    this.sampler = checkSampler(options.sampler, this.shuffle);
  }

  /** Batches per epoch (PyTorch's `len(loader)`). */
  get length(): number {
    const samples = this.sampler ? this.sampler.length : this.dataset.length;
    return batchCount(samples, this.batchSize, this.dropLast);
  }

  /**
   * Makes the next `for await` loop iterate epoch `epoch` (then `epoch + 1`, and so on);
   * PyTorch's `DistributedSampler.set_epoch`. Throws a RangeError for a bad epoch.
   *
   * @example
   * ```ts
   * import { DataLoader, fromArray } from "../../mod.ts";
   * const loader = new DataLoader([fromArray([1, 2, 3], [3])], { shuffle: true, seed: 1 });
   * loader.setEpoch(5); // the next loop serves epoch 5's order
   * for await (const [x] of loader) console.log(x.shape); // [1], three times
   * ```
   */
  setEpoch(epoch: number): void {
    this.#nextEpoch = checkEpoch(epoch);
  }

  /**
   * Epoch `epoch` as an Observable of batches, each emitted once it is on the device, in
   * order. It does nothing until subscribed, and each subscription serves the epoch anew.
   * A batch is lent until `next` returns, then disposed; queue the step on it in `next`.
   * The stream errors with what the dataset or a copy threw. Throws a RangeError for a bad
   * epoch.
   *
   * @example
   * ```ts
   * import { lastValueFrom, map, toArray } from "npm:rxjs@7.8.2";
   * import { DataLoader, fromArray } from "../../mod.ts";
   * const loader = new DataLoader([fromArray([1, 2, 3, 4], [4])], { batchSize: 2 });
   * const sums = loader.epoch(0).pipe(map(([x]) => x.sum()), toArray());
   * const totals = await Promise.all((await lastValueFrom(sums)).map((s) => s.data()));
   * console.log(totals); // [Float32Array [3], Float32Array [7]]
   * ```
   */
  epoch(epoch: number): rxjs.Observable<B> {
    const e = checkEpoch(epoch);
    return this.#pending(e).pipe(map((item) => item.batch!));
  }

  /**
   * Iterates the next epoch (0 first, or what {@link DataLoader.setEpoch} set): `for await
   * (const { x, y } of loader)`. A batch is lent until the loop asks for the next one;
   * leaving the loop disposes what was prefetched.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<B> {
    return heldIterator(this.#pending(this.#nextEpoch++), (item) => item.batch!);
  }

  /** The batches of epoch `e`, lent, made at most `prefetch` ahead. */
  #pending(e: number): rxjs.Observable<Pending<B>> {
    return defer(() => {
      const { batchSize, shuffle, seed, dropLast } = this;
      const order = this.sampler
        ? batchesOf(this.sampler.indices(e), batchSize, dropLast)
        : batchIndices(this.dataset.length, { batchSize, shuffle, seed, dropLast, epoch: e });
      return lend<Pending<B>>({
        count: order.length,
        prefetch: this.prefetch,
        make: (i) => this.#make(order[i]),
        ready: (item) => item.landed,
        dispose: (item) => {
          item.disposed = true;
          if (item.batch) disposeBatch(item.batch);
        },
      }).pipe(map((item) => {
        // A failure surfaces at its batch, after the batches before it (as in PyTorch).
        if (item.failure) throw item.failure.error;
        return item;
      }));
    });
  }

  /** Asks the dataset for a batch now, then queues its copy to the device. */
  #make(indices: number[]): Pending<B> {
    const item: Pending<B> = { landed: Promise.resolve(), disposed: false };
    const fail = (error: unknown) => {
      item.failure = { error };
    };
    const land = (raw: B) => {
      const batch = this.#moved(raw);
      if (item.disposed) return disposeBatch(batch);
      item.batch = batch;
      return Promise.all(tensorsOf(batch, "load").map(computed)).then(() => {}, fail);
    };
    try {
      const made = this.dataset.batch(indices);
      // A batch at hand has its copy queued now, before the consumer gets the one before.
      item.landed = isPromise(made) ? made.then(land).catch(fail) : land(made) ?? item.landed;
    } catch (e) {
      fail(e);
    }
    return item;
  }

  /** The batch with each tensor copied to the device (the originals are freed). */
  #moved(raw: B): B {
    let tensors: Tensor[];
    try {
      tensors = tensorsOf(raw, "load the batch");
    } catch (e) {
      // Free what was made: the loader owns it, and nobody else will see it.
      if (raw !== null && typeof raw === "object") {
        for (const t of Object.values(raw)) if (t instanceof Tensor && !t.disposed) t.dispose();
      }
      throw e;
    }
    const moved = tensors.map((t) => {
      const copy = t.to(this.device, { nonBlocking: true });
      if (copy !== t) t.dispose();
      return copy;
    });
    if (Array.isArray(raw)) return moved as unknown as B;
    return Object.fromEntries(Object.keys(raw).map((k, n) => [k, moved[n]])) as unknown as B;
  }
}

/** `dataset` as a {@link BatchDataset}: itself, or tensors wrapped in a TensorDataset. */
function asDataset<B extends Batch>(dataset: B | BatchDataset<B>): BatchDataset<B> {
  if (typeof (dataset as BatchDataset<B> | undefined)?.batch !== "function") {
    return new TensorDataset(dataset as B);
  }
  const { length } = dataset as BatchDataset<B>;
  if (!Number.isInteger(length) || length < 0) {
    throw new RangeError(
      `Cannot load batches from ${describe(dataset)}: its length ${length} must be a whole ` +
        `number >= 0`,
    );
  }
  return dataset as BatchDataset<B>;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === "function";
}

function disposeBatch(batch: Batch): void {
  for (const t of Object.values(batch) as Tensor[]) if (!t.disposed) t.dispose();
}

function wholeNumber(value: number, min: number, name: string): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(
      `Cannot load batches with ${name} ${value}: it must be a whole number >= ${min}`,
    );
  }
  return value;
}

function flag(value: boolean, name: string): boolean {
  if (typeof value !== "boolean") {
    throw new TypeError(`Cannot load batches with ${name} ${value}: it must be true or false`);
  }
  return value;
}

function checkSampler(sampler: Sampler | undefined, shuffle: boolean): Sampler | undefined {
  if (sampler === undefined) return undefined;
  if (typeof sampler?.indices !== "function" || !Number.isInteger(sampler.length)) {
    throw new TypeError(
      `Cannot load batches with sampler ${String(sampler)}: it needs indices(epoch) and a length`,
    );
  }
  if (shuffle) {
    throw new TypeError(
      "Cannot load batches with both a sampler and shuffle: the sampler orders the samples " +
        "(a DistributedSampler shuffles them itself)",
    );
  }
  return sampler;
}

function checkEpoch(epoch: number): number {
  if (!Number.isInteger(epoch) || epoch < 0) {
    throw new RangeError(`Cannot serve epoch ${epoch}: it must be a whole number >= 0`);
  }
  return epoch;
}
