/**
 * The chapter's second experiment, "Parallel Computation and Communication": run products
 * on one device, copy the results to the host, and both at once with non-blocking copies;
 * and a copy-heavy variant on streams (large tensors, a cheap op per item) where the
 * overlap of copies with computation is visible even on a software adapter.
 *
 * @module
 */
import { from, ignoreElements, lastValueFrom, tap } from "npm:rxjs@7.8.2";
import { cpu, type Device } from "../devices/device.ts";
import { benchmark } from "../bench/benchmark.ts";
import { synchronize } from "../engine/sync.ts";
import { copyTo } from "../streams/copy_to.ts";
import { produce } from "../streams/produce.ts";
import { rand } from "../tensor/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Seconds of each line, and what running both at once saved. */
export interface OverlapTimings {
  run: number;
  copy: number;
  both: number;
  /** both / max(run, copy): 1.0 is perfect overlap. */
  overlapRatio: number;
  /** 1 - both / (run + copy): the share of the sum that overlapping saved. */
  saved: number;
}

/** Options of the experiments here. */
export interface OverlapOptions {
  /** Rows and columns of the matrix. */
  size: number;
  /** Items (products, or stream elements). */
  iters: number;
  /**
   * Where the Benchmark lines go; `null` prints nothing.
   * @default {console.log}
   */
  print?: ((line: string) => void) | null;
}

async function timed(label: string, print: OverlapOptions["print"], work: () => Promise<unknown>) {
  const b = benchmark(label, { print: print === undefined ? console.log : print });
  await work();
  await b[Symbol.asyncDispose]();
  return b.seconds;
}

function timings(run: number, copy: number, both: number): OverlapTimings {
  return {
    run,
    copy,
    both,
    overlapRatio: both / Math.max(run, copy),
    saved: 1 - both / (run + copy),
  };
}

/**
 * The chapter's code: `Run on GPU1`, `Copy to CPU` (blocking copies, as PyTorch's default)
 * and `Run on GPU1 and copy to CPU` (non-blocking copies). Throws a RangeError for bad sizes.
 */
export async function runAndCopy(device: Device, options: OverlapOptions): Promise<OverlapTimings> {
  const { size, iters, print } = options;
  if (!Number.isInteger(iters) || iters < 1) {
    throw new RangeError(`Cannot run ${iters} products: iters must be a whole number >= 1`);
  }
  const x = rand([size, size], { device, seed: 1 });
  const run = (t: Tensor) => Array.from({ length: iters }, () => t.mm(t));
  const copyToCpu = (ys: Tensor[], nonBlocking = false) =>
    ys.map((y) => y.to(cpu(), { nonBlocking }));
  const free = (ts: Tensor[]) => ts.forEach((t) => t.dispose());
  free(copyToCpu(run(x))); // warm-up
  await synchronize();

  let y: Tensor[] = [];
  const tRun = await timed("Run on GPU1", print, async () => {
    y = run(x);
    await synchronize(device);
  });
  const tCopy = await timed("Copy to CPU", print, async () => {
    free(copyToCpu(y));
    await synchronize();
  });
  free(y);
  const tBoth = await timed("Run on GPU1 and copy to CPU", print, async () => {
    y = run(x);
    free(copyToCpu(y, true));
    await synchronize();
  });
  free(y);
  x.dispose();
  return timings(tRun, tCopy, tBoth);
}

/** Options of {@link copyHeavy}. */
export interface CopyHeavyOptions extends OverlapOptions {
  /**
   * Tensors computing at once in the producer.
   * @default {4}
   */
  inFlight?: number;
  /**
   * Copies in flight at once.
   * @default {4}
   */
  concurrency?: number;
}

/**
 * The copy-heavy variant on streams: `iters` items of `size` x `size`, each a cheap add, so
 * copying costs about as much as computing. `Run` produces the items, `Copy` copies as many
 * ready items to the host, `Run and copy` streams them through `copyTo(cpu())`.
 */
export async function copyHeavy(
  device: Device,
  options: CopyHeavyOptions,
): Promise<OverlapTimings> {
  const { size, iters, print } = options;
  const inFlight = options.inFlight ?? 4;
  const concurrency = options.concurrency ?? 4;
  const x = rand([size, size], { device, seed: 1 });
  const make = (i: number) => x.add(i);
  const drain = (ts: Tensor[]) => ts.forEach((t) => t.dispose());
  const stream = () =>
    lastValueFrom(
      produce(iters, make, { inFlight }).pipe(
        copyTo(cpu(), { concurrency }),
        tap((t) => t.dispose()),
      ),
      { defaultValue: undefined },
    );
  await stream(); // warm-up

  const tRun = await timed("Run (copy-heavy stream)", print, () =>
    lastValueFrom(
      produce(iters, make, { inFlight }).pipe(tap((t) => t.dispose()), ignoreElements()),
      { defaultValue: undefined },
    ));
  const ready = Array.from({ length: iters }, (_, i) => make(i));
  await synchronize(device);
  const tCopy = await timed("Copy to CPU (copy-heavy stream)", print, () =>
    lastValueFrom(
      from(ready).pipe(copyTo(cpu(), { concurrency }), tap((t) => t.dispose())),
      { defaultValue: undefined },
    ));
  drain(ready);
  const tBoth = await timed("Run and copy to CPU (copy-heavy stream)", print, stream);
  x.dispose();
  return timings(tRun, tCopy, tBoth);
}
