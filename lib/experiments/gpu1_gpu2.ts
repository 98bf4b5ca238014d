/**
 * The chapter's first experiment, "Parallel Computation on GPUs": 50 products of a square
 * matrix on each of two devices, timed on each alone and on both at once.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { benchmark } from "../bench/benchmark.ts";
import { synchronize } from "../engine/sync.ts";
import { rand } from "../tensor/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Options of {@link gpu1Gpu2}. */
export interface Gpu1Gpu2Options {
  /** Rows and columns of the matrix (the chapter: 4000). */
  size: number;
  /** Products per device (the chapter: 50). */
  iters: number;
  /**
   * Where the Benchmark lines go; `null` prints nothing.
   * @default {console.log}
   */
  print?: ((line: string) => void) | null;
}

/** Seconds of each line of the experiment. */
export interface Gpu1Gpu2Timings {
  gpu1: number;
  gpu2: number;
  both: number;
  /** (gpu1 + gpu2) / both: 2 is perfect parallelism. */
  speedup: number;
}

/**
 * Runs the experiment on `devices[0]` and `devices[1]` (which may be the same device) and
 * returns the seconds of each line. Throws a RangeError for a bad size or count.
 */
export async function gpu1Gpu2(
  devices: readonly Device[],
  options: Gpu1Gpu2Options,
): Promise<Gpu1Gpu2Timings> {
  const { size, iters } = options;
  if (!Number.isInteger(iters) || iters < 1) {
    throw new RangeError(`Cannot run ${iters} products: iters must be a whole number >= 1`);
  }
  if (devices.length < 1) throw new RangeError("Cannot run the experiment without a device");
  const [d1, d2 = d1] = devices;
  const print = options.print === undefined ? console.log : options.print;
  // Results are disposed as soon as they are queued: freed once computed.
  const run = (x: Tensor) => {
    for (let i = 0; i < iters; i++) x.mm(x).dispose();
  };
  const x1 = rand([size, size], { device: d1, seed: 1 });
  const x2 = rand([size, size], { device: d2, seed: 2 });
  run(x1);
  run(x2); // warm-up: compiles the kernels, allocates the buffers
  await synchronize(d1);
  await synchronize(d2);

  const time = async (label: string, work: () => Promise<void>) => {
    const b = benchmark(label, { print });
    await work();
    await b[Symbol.asyncDispose]();
    return b.seconds;
  };
  const gpu1 = await time("GPU1 time", async () => {
    run(x1);
    await synchronize(d1);
  });
  const gpu2 = await time("GPU2 time", async () => {
    run(x2);
    await synchronize(d2);
  });
  const both = await time("GPU1 & GPU2", async () => {
    run(x1);
    run(x2);
    await synchronize();
  });
  x1.dispose();
  x2.dispose();
  return { gpu1, gpu2, both, speedup: (gpu1 + gpu2) / both };
}
