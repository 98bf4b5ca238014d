/**
 * The kernel contract: each kernel writes only its own WGSL body; {@link wgslModule}
 * generates the bindings. The same spec carries the kernel's CPU twin, which is the
 * reference in tests and the host device's implementation.
 *
 * @module
 */

/** Plain, serialisable kernel parameters (sent to device Workers as they are). */
export type KernelParams = Record<string, number | string | boolean | undefined>;

/**
 * A kernel's code for one target, as a backend of that target runs it: source text it
 * compiles (as WGSL is), or a function it calls (as the CPU twin is).
 */
export type KernelCode<P extends KernelParams = KernelParams> =
  | { readonly kind: "source"; source(params: P): string }
  | {
    readonly kind: "function";
    run(inputs: readonly Float32Array[], params: P): Float32Array[];
  };

/**
 * How an elementwise kernel reads one input at element `i` of its output: at `i` itself
 * ("same"), at `i % row` (a row vector broadcast over rows of length `row`), or its one
 * element ("one").
 */
export type ElementRead = "same" | "one" | { readonly row: number };

/**
 * What a fuser needs of a kernel that computes each element of its one output from the
 * same element of its inputs (or a broadcast one): how it reads them and the WGSL
 * expression of one element. Kernels that state it can be fused into one generated kernel
 * (lib/kernels/fused.ts); the expression must be the arithmetic of the kernel's own WGSL,
 * in the same order, so that fused and unfused results agree.
 */
export interface Elementwise<P extends KernelParams = KernelParams> {
  /** Elements of the output. */
  n(params: P): number;
  /**
   * How each input binding is read (an in-place kernel's target is not among them);
   * undefined when, for these parameters, the kernel reads its inputs some other way (it
   * is not fused then).
   */
  reads(params: P): readonly ElementRead[] | undefined;
  /** An in-place kernel that reads its target's old value (`sub_`): it comes last in `args`. */
  readonly readsOld?: boolean;
  /** The constants of its expression (a scalar operand, say), in the order it names them. */
  constants?(params: P): readonly number[];
  /**
   * The WGSL expression of one element, of type `T` (`f32` or `vec4<f32>`), from the values
   * of its inputs (`args`, each of type `T`), then the target's old value if it reads it,
   * and its constants (`constants`, each of type `T`: uniforms, as the unfused kernel has
   * them, so that no compiler folds them differently). It may call `is_nan(x: T) -> BT`.
   */
  expression(params: P, args: readonly string[], constants: readonly string[]): string;
}

/**
 * One kernel: WGSL for the devices, a CPU twin for the host and the tests, and optionally
 * code for other targets ({@link KernelSpec.targets}).
 */
export interface KernelSpec<P extends KernelParams = KernelParams> {
  /** Unique name, used in errors, traces and the pipeline cache key. */
  readonly name: string;
  /**
   * The kernel updates a tensor in place: `out0` is bound to the target's buffer and holds
   * its old value; the CPU twin gets the old value as its last input.
   * @default {false}
   */
  readonly inPlace?: boolean;
  /** Element type of each input binding, for example `"f32"` or `"vec4<f32>"`. */
  inputTypes(params: P): readonly string[];
  /** Element type of each output binding. */
  outputTypes(params: P): readonly string[];
  /** Fields of the uniform struct `Params`, all 32-bit (`u32`, `i32` or `f32`), in order. */
  readonly uniformFields: readonly (readonly [name: string, type: "u32" | "i32" | "f32"])[];
  /** Values of the uniform fields for these parameters. */
  uniforms(params: P): readonly number[];
  /** The kernel body: `@compute` entry point named `main`, reading `in0..`, writing `out0..`, `u`. */
  wgsl(params: P): string;
  /** Parameters that change the WGSL text (the pipeline cache key is derived from them). */
  variant(params: P): string;
  /** Workgroups to dispatch. */
  workgroups(params: P): readonly [number, number, number];
  /** The CPU twin: same inputs, same outputs (each a fresh Float32Array). */
  cpu(inputs: readonly Float32Array[], params: P): Float32Array[];
  /**
   * Code for targets beyond "wgsl" (the module {@link wgslModule} builds) and "cpu" (the
   * twin), by target name: what a backend whose `capabilities.target` names it runs. The
   * registry's `kernelCode(name, target)` looks it up.
   * @default {{}}
   */
  readonly targets?: Readonly<Record<string, KernelCode<P>>>;
  /** Set by kernels a captured step may fuse with their neighbours (see {@link Elementwise}). */
  readonly elementwise?: Elementwise<P>;
  /**
   * Whether, for these parameters, the kernel reads its first input only as `in0[index]`
   * (an `f32` binding), so that a fused program may compute each element where it is read,
   * without the input ever being stored (lib/kernels/reduce_fused.ts). Other inputs (a
   * loss's labels) are read as they are.
   * @default {undefined: never}
   */
  readonly prologue?: (params: P) => boolean;
  /**
   * For these parameters, the length of the kernel's one output when the kernel stores it
   * only as `out0[index] = value;`, each element once and never reading it back, so that a
   * fused program may take each value as it is stored (lib/kernels/reduce_fused.ts).
   * @default {undefined: never}
   */
  readonly epilogue?: (params: P) => number | undefined;
}

/** The largest workgroup count per dimension that WebGPU guarantees. */
export const MAX_WORKGROUPS_PER_DIM = 65535;

/** Spreads `count` workgroups over x and y so neither exceeds the WebGPU limit. */
export function spreadWorkgroups(count: number): [number, number, number] {
  const n = Math.max(1, Math.ceil(count));
  if (n <= MAX_WORKGROUPS_PER_DIM) return [n, 1, 1];
  const y = Math.ceil(n / MAX_WORKGROUPS_PER_DIM);
  return [Math.ceil(n / y), y, 1];
}

/** Invocations per workgroup of the one-element-per-invocation kernels. */
export const ELEMENTWISE_WG = 256;

/**
 * The entry point and index of a one-element-per-invocation kernel: WGSL that opens `main`,
 * sets `i` to the element and returns past `u.n`. The body follows; close it with `}`.
 */
export const ELEMENTWISE_MAIN = `@compute @workgroup_size(${ELEMENTWISE_WG}) fn main(` +
  `@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${ELEMENTWISE_WG}u;
  if (i >= u.n) { return; }`;

/** Workgroups for `n` elements, read `width` (1 or 4) at a time. */
export function elementwiseWorkgroups(n: number, width = 1): [number, number, number] {
  return spreadWorkgroups(n / width / ELEMENTWISE_WG);
}

/** Builds the full WGSL module of a kernel: bindings and `Params` struct, then the body. */
export function wgslModule<P extends KernelParams>(spec: KernelSpec<P>, params: P): string {
  const inputs = spec.inputTypes(params);
  const outputs = spec.outputTypes(params);
  const lines: string[] = [];
  inputs.forEach((t, i) =>
    lines.push(`@group(0) @binding(${i}) var<storage, read> in${i}: array<${t}>;`)
  );
  outputs.forEach((t, i) =>
    lines.push(
      `@group(0) @binding(${inputs.length + i}) var<storage, read_write> out${i}: array<${t}>;`,
    )
  );
  const fields = spec.uniformFields.length > 0
    ? spec.uniformFields.map(([n, t]) => `${n}: ${t},`).join(" ")
    : "unused: u32,";
  lines.push(`struct Params { ${fields} }`);
  lines.push(
    `@group(0) @binding(${inputs.length + outputs.length}) var<uniform> u: Params;`,
  );
  lines.push(spec.wgsl(params));
  return lines.join("\n");
}

/** Packs uniform values into bytes, each field 4 bytes, padded to 16. */
export function packUniforms<P extends KernelParams>(spec: KernelSpec<P>, params: P): ArrayBuffer {
  const values = spec.uniforms(params);
  const count = Math.max(4, Math.ceil(Math.max(1, values.length) / 4) * 4);
  const buffer = new ArrayBuffer(count * 4);
  const view = new DataView(buffer);
  spec.uniformFields.forEach(([_, type], i) => {
    const v = values[i];
    if (type === "f32") view.setFloat32(i * 4, v, true);
    else if (type === "i32") view.setInt32(i * 4, v, true);
    else view.setUint32(i * 4, v >>> 0, true);
  });
  return buffer;
}

/** Cache key of a compiled pipeline. */
export function pipelineKey<P extends KernelParams>(spec: KernelSpec<P>, params: P): string {
  return `${spec.name}|${spec.variant(params)}`;
}
