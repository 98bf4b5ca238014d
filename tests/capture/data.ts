/**
 * A small MLP's shapes and random batches for the capture tests.
 *
 * @module
 */
import { mulberry32 } from "../../lib/train/mnist.ts";

/** Layer sizes small enough for many steps on a software adapter. */
export const DIMS = { inputs: 6, hidden: 8, outputs: 4 };

/** `rows` random inputs in [-1, 1) and labels, from `seed`. */
export function data(rows: number, seed: number) {
  const r = mulberry32(seed);
  return {
    images: Float32Array.from({ length: rows * DIMS.inputs }, () => r() * 2 - 1),
    labels: Float32Array.from({ length: rows }, () => Math.floor(r() * DIMS.outputs)),
  };
}
