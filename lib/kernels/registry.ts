/**
 * Every kernel, registered in one explicit list; device Workers and the host look kernels
 * up here by name.
 *
 * @module
 */
import { type KernelCode, type KernelParams, type KernelSpec, wgslModule } from "./kernel.ts";
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

/**
 * The code of kernel `name` for `target`: "wgsl" (the full module), "cpu" (the twin), or one
 * of the spec's `targets`. Throws a TypeError when there is no such kernel, or when it gives
 * no code for `target` (naming the targets it has).
 *
 * @example
 * ```ts
 * import { kernelCode } from "./registry.ts";
 * const code = kernelCode("unary", "cpu");
 * if (code.kind === "function") {
 *   console.log(code.run([new Float32Array([-1, 2])], { op: "relu", n: 2 })); // [ [ 0, 2 ] ]
 * }
 * try {
 *   kernelCode("unary", "webgl");
 * } catch (e) {
 *   console.log(String(e));
 *   // TypeError: Cannot find kernel "unary" for target "webgl": it gives code for wgsl, cpu
 * }
 * ```
 */
export function kernelCode(name: string, target: string): KernelCode<KernelParams> {
  return codeFor(kernel(name), target);
}

/** The code of `spec` for `target` (see {@link kernelCode}), for specs outside the registry. */
export function codeFor(spec: KernelSpec<KernelParams>, target: string): KernelCode<KernelParams> {
  if (target === "wgsl") return { kind: "source", source: (params) => wgslModule(spec, params) };
  if (target === "cpu") {
    return {
      kind: "function",
      run: (inputs, params) => spec.cpu(inputs, params),
    };
  }
  const code = spec.targets?.[target];
  if (!code) {
    const known = ["wgsl", "cpu", ...Object.keys(spec.targets ?? {})].join(", ");
    throw new TypeError(
      `Cannot find kernel "${spec.name}" for target "${target}": it gives code for ${known}`,
    );
  }
  return code;
}
