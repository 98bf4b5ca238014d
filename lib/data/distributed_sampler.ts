/**
 * `DistributedSampler`: PyTorch's split of a data set between the ranks of a process group.
 * Each epoch shuffles the indices from a seed and the epoch (the same order on every rank),
 * pads them by repeating the first ones (or drops the tail) so that every rank gets as many
 * samples, and gives rank `r` the indices `r, r + worldSize, r + 2 * worldSize, ...`.
 *
 * @module
 */
import { getRank, getWorldSize, isInitialized } from "../distributed/collectives.ts";
import { shuffledOrder } from "./sampler.ts";

/**
 * Which samples of each epoch a DataLoader serves, in order (see
 * {@link DataLoaderOptions.sampler}).
 *
 * @example
 * ```ts
 * import type { Sampler } from "../../mod.ts";
 * const evens: Sampler = { length: 2, indices: () => [0, 2] };
 * console.log(evens.indices(0)); // [0, 2]
 * ```
 */
export interface Sampler {
  /** Samples per epoch. */
  readonly length: number;
  /** The sample indices of epoch `epoch`, in the order they are served. */
  indices(epoch: number): number[];
}

/**
 * Options of {@link DistributedSampler}: PyTorch's `num_replicas`, `rank`, `shuffle`, `seed`
 * and `drop_last`.
 *
 * @example
 * ```ts
 * import type { DistributedSamplerOptions } from "../../mod.ts";
 * const options: DistributedSamplerOptions = { numReplicas: 2, rank: 1, seed: 7 };
 * console.log(options.rank); // 1
 * ```
 */
export interface DistributedSamplerOptions {
  /**
   * Ranks the data set is split between.
   * @default {getWorldSize() of the process group}
   */
  numReplicas?: number;
  /**
   * This process's rank, 0 to `numReplicas - 1`.
   * @default {getRank() of the process group}
   */
  rank?: number;
  /**
   * Shuffle the indices each epoch (from `seed` and the epoch); else 0, 1, 2, ...
   * @default {true}
   */
  shuffle?: boolean;
  /**
   * The seed of the shuffle: it must be the same on every rank.
   * @default {0}
   */
  seed?: number;
  /**
   * Drop the samples beyond the largest multiple of `numReplicas` instead of repeating the
   * first ones to fill the last round.
   * @default {false}
   */
  dropLast?: boolean;
}

/**
 * The share of a data set of `length` samples that one rank serves each epoch, PyTorch's
 * `DistributedSampler`: give it to a {@link DataLoader} as `sampler`, or read
 * `sampler.indices(epoch)`. Every rank gets `numSamples` indices; without `dropLast` the
 * ranks together see every sample at least once per epoch (a few twice, to even the
 * counts), with it each sample at most once. Without `numReplicas` and `rank` it takes the
 * process group's (an Error when none is initialised). Throws a RangeError for a bad length,
 * rank, replica count or seed.
 *
 * @example
 * ```ts
 * import { DistributedSampler } from "../../mod.ts";
 * const ranks = [0, 1].map((rank) => new DistributedSampler(5, { numReplicas: 2, rank, shuffle: false }));
 * console.log(ranks.map((s) => s.indices(0))); // [[0, 2, 4], [1, 3, 0]]
 * console.log(ranks[0].length, ranks[0].totalSize); // 3 6
 * ```
 */
export class DistributedSampler implements Sampler, Iterable<number> {
  /** Samples of the data set. */
  readonly datasetLength: number;
  /** Ranks the data set is split between. */
  readonly numReplicas: number;
  /** This rank. */
  readonly rank: number;
  /** Whether each epoch has its own shuffled order. */
  readonly shuffle: boolean;
  /** The seed of the shuffle. */
  readonly seed: number;
  /** Whether the tail is dropped rather than padded. */
  readonly dropLast: boolean;
  /** Samples per rank per epoch. */
  readonly numSamples: number;
  /** Samples of all ranks per epoch (`numSamples * numReplicas`). */
  readonly totalSize: number;
  #epoch = 0;

  /** Splits `length` samples (or a data set's `length`) between the ranks. */
  constructor(length: number | { length: number }, options: DistributedSamplerOptions = {}) {
    const n = typeof length === "number" ? length : length?.length;
    if (!Number.isInteger(n) || n < 0) {
      throw new RangeError(
        `Cannot split ${n} samples between ranks: it must be a whole number >= 0`,
      );
    }
    this.datasetLength = n;
    const grouped = isInitialized();
    const worldSize = options.numReplicas ?? (grouped ? getWorldSize() : undefined);
    const rank = options.rank ?? (grouped ? getRank() : undefined);
    if (worldSize === undefined || rank === undefined) {
      throw new Error(
        "Cannot make a DistributedSampler without numReplicas and rank: give both, or call " +
          "await initProcessGroup() first",
      );
    }
    if (!Number.isInteger(worldSize) || worldSize < 1) {
      throw new RangeError(
        `Cannot split samples between ${worldSize} replicas: it must be a whole number >= 1`,
      );
    }
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new RangeError(
        `Cannot split samples for rank ${rank}: it must be a whole number from 0 to ${
          worldSize - 1
        }`,
      );
    }
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`Cannot split samples with seed ${seed}: it must be a whole number`);
    }
    this.numReplicas = worldSize;
    this.rank = rank;
    this.seed = seed;
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.numSamples = this.dropLast ? Math.floor(n / worldSize) : Math.ceil(n / worldSize);
    this.totalSize = this.numSamples * worldSize;
  }

  /** Samples this rank serves per epoch (PyTorch's `len(sampler)`). */
  get length(): number {
    return this.numSamples;
  }

  /** The epoch iterating the sampler serves (see {@link DistributedSampler.setEpoch}). */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Makes iterating the sampler serve epoch `epoch`'s split, PyTorch's `set_epoch` (a
   * DataLoader passes its own epoch to {@link DistributedSampler.indices} instead). Throws a
   * RangeError for a bad epoch.
   *
   * @example
   * ```ts
   * import { DistributedSampler } from "../../mod.ts";
   * const s = new DistributedSampler(4, { numReplicas: 2, rank: 0, seed: 3 });
   * s.setEpoch(1);
   * console.log([...s].length, s.epoch); // 2 1
   * ```
   */
  setEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new RangeError(`Cannot set epoch ${epoch}: it must be a whole number >= 0`);
    }
    this.#epoch = epoch;
  }

  /**
   * This rank's indices in epoch `epoch` (by default the one {@link DistributedSampler.setEpoch}
   * set): every rank computes the same order and takes its stride of it.
   */
  indices(epoch: number = this.#epoch): number[] {
    const order = shuffledOrder(this.datasetLength, this.shuffle, this.seed, epoch);
    if (this.dropLast) order.length = this.totalSize;
    else {
      // Repeat the first indices (several rounds when there are more ranks than samples).
      for (let i = 0; order.length < this.totalSize; i++) order.push(order[i]);
    }
    const mine: number[] = [];
    for (let i = this.rank; i < this.totalSize; i += this.numReplicas) mine.push(order[i]);
    return mine;
  }

  /** The indices of the epoch {@link DistributedSampler.setEpoch} set. */
  [Symbol.iterator](): Iterator<number> {
    return this.indices()[Symbol.iterator]();
  }
}
