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
import {
  assertIndices,
  cat,
  gather,
  indexAdd,
  indexSelect,
  scatterAdd,
  stridedCopy,
  unslice,
} from "./shape.ts";
import { dropoutMask } from "./dropout.ts";
import { copyInPlace } from "./copy_inplace.ts";
import { argReduce, tieMask, valueSelectingBackward } from "./reduce_index.ts";
import { clamp, clampBackward, minmax, minmaxBackward } from "./minmax.ts";
import { softmax } from "./softmax.ts";
import { randn } from "./normal.ts";
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
    argReduce,
    valueSelectingBackward,
    tieMask,
    minmax,
    minmaxBackward,
    clamp,
    clampBackward,
    softmax,
    randn,
    stridedCopy,
    cat,
    unslice,
    indexSelect,
    indexAdd,
    gather,
    scatterAdd,
    assertIndices,
    dropoutMask,
    copyInPlace,
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
