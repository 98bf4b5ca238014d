/**
 * The order of a DataLoader's samples: which indices make each batch of an epoch. Pure
 * arithmetic, the same on every machine, like PyTorch's BatchSampler over a
 * SequentialSampler or a seeded DistributedSampler-style shuffle.
 *
 * @module
 */

/** How {@link batchIndices} cuts an epoch into batches. */
export interface SamplerOptions {
  /** Samples per batch (>= 1). */
  batchSize: number;
  /** Visit the samples in a shuffled order (else 0, 1, 2, ...). */
  shuffle: boolean;
  /** The seed of the shuffle: with the epoch, it fixes the order. */
  seed: number;
  /** The epoch: each gives a different shuffled order. */
  epoch: number;
  /** Drop the last batch when it has fewer than `batchSize` samples. */
  dropLast: boolean;
}

/** Batches in an epoch of `length` samples. */
export function batchCount(length: number, batchSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(length / batchSize) : Math.ceil(length / batchSize);
}

/** The sample indices of each batch of one epoch, in the order they are served. */
export function batchIndices(length: number, options: SamplerOptions): number[][] {
  const order = shuffledOrder(length, options.shuffle, options.seed, options.epoch);
  return batchesOf(order, options.batchSize, options.dropLast);
}

/** `order` cut into batches of `batchSize` (the last one smaller, or dropped). */
export function batchesOf(order: number[], batchSize: number, dropLast: boolean): number[][] {
  const batches: number[][] = [];
  const count = batchCount(order.length, batchSize, dropLast);
  for (let b = 0; b < count; b++) batches.push(order.slice(b * batchSize, (b + 1) * batchSize));
  return batches;
}

/** 0, 1, ..., length - 1, shuffled from `seed` and `epoch` when `shuffled` is set. */
export function shuffledOrder(
  length: number,
  shuffled: boolean,
  seed: number,
  epoch: number,
): number[] {
  const order = Array.from({ length }, (_, i) => i);
  if (shuffled) shuffle(order, mulberry32(mix(seed, epoch)));
  return order;
}

/**
 * One 32-bit seed from a seed and an epoch, so that nearby pairs ((1, 0) and (0, 1)) give
 * unrelated orders; PyTorch's DistributedSampler adds them, which makes those two equal.
 */
function mix(seed: number, epoch: number): number {
  const high = Math.floor(seed / 2 ** 32) | 0; // seeds beyond 32 bits still count
  let h = Math.imul((seed | 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(high, 0x27d4eb2f) ^
    Math.imul(epoch | 0, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A small seeded generator (mulberry32): the same sequence on every machine. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Shuffles `xs` in place (Fisher-Yates) with `random`; returns it. */
export function shuffle<T>(xs: T[], random: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}
