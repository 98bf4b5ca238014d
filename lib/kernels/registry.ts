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
import { fusedKernel } from "./fused.ts";
import { matmulEpilogue } from "./matmul_fused.ts";
import { withFusion } from "./reduce_fused.ts";
import { fusedMulti } from "./fused_multi.ts";
import { argReduce, tieMask, valueSelectingBackward } from "./reduce_index.ts";
import { clamp, clampBackward, minmax, minmaxBackward } from "./minmax.ts";
import { logSumExp, softmax } from "./softmax.ts";
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

/** The kernels by name: the built-in list, then those given to {@link registerKernel}. */
const registry = new Map<string, KernelSpec<KernelParams>>(
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
    logSumExp,
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
// The fused kernels look their members up here.
registry.set("fused", fusedKernel(kernel) as unknown as KernelSpec<KernelParams>);
registry.set("matmul_epilogue", matmulEpilogue(kernel) as unknown as KernelSpec<KernelParams>);
registry.set("fused_multi", fusedMulti(kernel) as unknown as KernelSpec<KernelParams>);
// The reductions with fused programs: a prologue for each (the loss too), an epilogue, or both.
const REDUCTIONS = [sumRows, sumCols, softmax, logSoftmax, logSumExp] as unknown as KernelSpec<
  KernelParams
>[];
const LOSS = softmaxCrossEntropy as unknown as KernelSpec<KernelParams>;
for (
  const [specs, prologue, epilogue] of [
    [[...REDUCTIONS, LOSS], true, false],
    [REDUCTIONS, false, true],
    [REDUCTIONS, true, true],
  ] as const
) {
  for (const spec of specs) {
    const fused = withFusion(spec, kernel, { prologue, epilogue });
    registry.set(fused.name, fused as unknown as KernelSpec<KernelParams>);
  }
}

/** All kernels by name: the built-in ones and those registered with {@link registerKernel}. */
export const KERNELS: ReadonlyMap<string, KernelSpec<KernelParams>> = registry;

/**
 * A kernel given at run time as plain data (so that device Workers receive it as it is): its
 * WGSL body with its binding types, uniforms and workgroup counts. The bindings are generated
 * as for the built-in kernels (see `wgslModule`).
 */
export interface KernelDefinition {
  /** Unique name: no built-in or registered kernel has it. */
  readonly name: string;
  /** Element type of each input binding `in0..`, for example `"f32"`. */
  readonly inputTypes: readonly string[];
  /** Element type of each output binding `out0..`. */
  readonly outputTypes: readonly string[];
  /**
   * Fields of the uniform struct `Params` (`u`), each filled from the op's param of the same
   * name (0 when it has none).
   * @default {[]}
   */
  readonly uniformFields?: readonly (readonly [name: string, type: "u32" | "i32" | "f32"])[];
  /** The kernel body: a `@compute` entry point named `main`. */
  readonly wgsl: string;
  /**
   * Workgroups to dispatch.
   * @default {[1, 1, 1]}
   */
  readonly workgroups?: readonly [number, number, number];
  /**
   * The kernel updates its last input in place (see `KernelSpec.inPlace`).
   * @default {false}
   */
  readonly inPlace?: boolean;
}

/** A kernel to register: its {@link KernelDefinition}, and a CPU twin for the host device. */
export interface RegisteredKernel extends KernelDefinition {
  /**
   * The CPU twin, run where the host device runs the kernel; it stays on this thread.
   * @default {a twin that throws: the kernel cannot run on the host}
   */
  cpu?(inputs: readonly Float32Array[], params: KernelParams): Float32Array[];
}

/** Definitions of the kernels registered at run time, as devices send them to their Workers. */
const definitions = new Map<string, KernelDefinition>();

/**
 * Registers a kernel of your own (a test's slow or failing kernel, say) under its name: ops
 * name it as `kernel`, the host device runs its CPU twin, and a device whose Worker has its own
 * registry sends it the definition before the first batch that uses it. Throws a TypeError
 * when a kernel of that name is registered already, a RangeError for a bad workgroup count.
 *
 * @example
 * ```ts
 * import { kernel, kernelDefinition, registerKernel } from "./registry.ts";
 * registerKernel({
 *   name: "doc_double",
 *   inputTypes: ["f32"],
 *   outputTypes: ["f32"],
 *   uniformFields: [["n", "u32"]],
 *   wgsl: "@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {\n" +
 *     "  if (g.x < u.n) { out0[g.x] = 2.0 * in0[g.x]; }\n}",
 *   cpu: ([x]) => [x.map((v) => 2 * v)],
 * });
 * console.log(kernel("doc_double").cpu([new Float32Array([1, 2])], { n: 2 })); // [ Float32Array(2) [ 2, 4 ] ]
 * console.log(kernelDefinition("doc_double")?.outputTypes); // [ "f32" ]
 * ```
 */
export function registerKernel(spec: RegisteredKernel): void {
  if (registry.has(spec.name)) {
    throw new TypeError(`Cannot register kernel "${spec.name}": a kernel of that name exists`);
  }
  const workgroups = spec.workgroups ?? [1, 1, 1];
  if (workgroups.length !== 3 || !workgroups.every((w) => Number.isInteger(w) && w >= 1)) {
    throw new RangeError(
      `Cannot register kernel "${spec.name}" with workgroups [${workgroups.join(", ")}]: ` +
        "they must be three integers of at least 1",
    );
  }
  const { cpu, ...rest } = spec;
  const definition: KernelDefinition = structuredClone({ ...rest, workgroups });
  definitions.set(spec.name, definition);
  registry.set(spec.name, specOf(definition, cpu));
}

/**
 * The definition of a kernel registered with {@link registerKernel}, as plain data; undefined
 * for a built-in kernel (every registry has those) or an unknown name.
 */
export function kernelDefinition(name: string): KernelDefinition | undefined {
  return definitions.get(name);
}

/**
 * Registers a definition received from another thread (a device Worker's side of
 * {@link registerKernel}); one already known is kept. Its CPU twin throws.
 */
export function defineKernel(definition: KernelDefinition): void {
  if (!registry.has(definition.name)) registerKernel(definition);
}

/** The kernel spec of a definition. */
function specOf(
  d: KernelDefinition,
  cpu: RegisteredKernel["cpu"],
): KernelSpec<KernelParams> {
  const fields = d.uniformFields ?? [];
  return {
    name: d.name,
    inPlace: d.inPlace,
    inputTypes: () => d.inputTypes,
    outputTypes: () => d.outputTypes,
    uniformFields: fields,
    uniforms: (params) => fields.map(([n]) => Number(params[n] ?? 0)),
    wgsl: () => d.wgsl,
    variant: () => "",
    workgroups: () => d.workgroups ?? [1, 1, 1],
    cpu: cpu ?? (() => {
      throw new TypeError(
        `Cannot run kernel "${d.name}" on the host: it was registered without a CPU twin`,
      );
    }),
  };
}

/** The kernel called `name`; throws a TypeError naming the known kernels when there is none. */
export function kernel(name: string): KernelSpec<KernelParams> {
  const spec = registry.get(name);
  if (!spec) {
    throw new TypeError(
      `Cannot find kernel "${name}": known kernels are ${[...registry.keys()].join(", ")}`,
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
