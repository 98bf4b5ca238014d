/**
 * Every kernel, registered in one explicit list; device Workers and the host look kernels
 * up here by name.
 *
 * @module
 */
import type { KernelParams, KernelSpec } from "./kernel.ts";
import { binary, fill, random, unary } from "./elementwise.ts";
import { narrow, sumCols, sumRows, transpose, unnarrow } from "./layout.ts";
import { matmul } from "./matmul.ts";
import { binaryStrided, expand } from "./broadcast.ts";
import {
  assertLabels,
  findBadLabel,
  logSoftmax,
  reluBackward,
  softmaxCrossEntropy,
  subInPlace,
} from "./training.ts";

/** All kernels by name. */
export const KERNELS: ReadonlyMap<string, KernelSpec<KernelParams>> = new Map(
  ([
    matmul,
    binary,
    binaryStrided,
    expand,
    unary,
    fill,
    random,
    transpose,
    sumRows,
    sumCols,
    narrow,
    unnarrow,
    reluBackward,
    softmaxCrossEntropy,
    subInPlace,
    logSoftmax,
    findBadLabel,
    assertLabels,
  ] as unknown as KernelSpec<KernelParams>[]).map((k) => [k.name, k]),
);

/** The kernel called `name`; throws a TypeError naming the known kernels when there is none. */
export function kernel(name: string): KernelSpec<KernelParams> {
  const spec = KERNELS.get(name);
  if (!spec) {
    throw new TypeError(
      `Cannot find kernel "${name}": known kernels are ${[...KERNELS.keys()].join(", ")}`,
    );
  }
  return spec;
}
