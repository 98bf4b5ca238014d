/**
 * In-place copy, the kernel of `Tensor.copy_`: the target's buffer is overwritten with the
 * source's values.
 *
 * @module
 */
import {
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";

/** Parameters of {@link copyInPlace}. */
export interface CopyInPlaceParams extends KernelParams {
  /** Elements copied. */
  n: number;
}

const vec = (n: number) => n % 4 === 0;

/**
 * In place: `out0 = in0`. `out0` is the target's buffer (its old value is not read); the
 * CPU twin gets that old value as its last input and returns a copy of the source.
 */
export const copyInPlace: KernelSpec<CopyInPlaceParams> = {
  name: "copy_inplace",
  inPlace: true,
  inputTypes: (p) => [vec(p.n) ? "vec4<f32>" : "f32"],
  outputTypes: (p) => [vec(p.n) ? "vec4<f32>" : "f32"],
  uniformFields: [["n", "u32"]],
  uniforms: (p) => [vec(p.n) ? p.n / 4 : p.n],
  variant: (p) => vec(p.n) ? "vec4" : "f32",
  wgsl: () =>
    `${ELEMENTWISE_MAIN}
  out0[i] = in0[i];
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n, vec(p.n) ? 4 : 1),
  elementwise: { n: (p) => p.n, reads: () => ["same"], expression: (_, [src]) => src },
  cpu: ([src]) => [src.slice()],
};
