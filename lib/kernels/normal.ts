/**
 * Standard normal random numbers by the Box-Muller transform over the counter-based uniform
 * hash of {@link uniformAt}: element `i` of the stream `seed` reads the uniforms at `2i` and
 * `2i + 1`, so every device computes the same values (up to float32 rounding of `log` and
 * `cos`) without sharing state.
 *
 * @module
 */
import {
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";
import { PCG_WGSL, uniformAt } from "./elementwise.ts";

/** Parameters of {@link randn}. */
export interface RandnParams extends KernelParams {
  n: number;
  /** A 32-bit unsigned seed. */
  seed: number;
}

/** 2 pi, rounded to float32 as the WGSL uses it. */
const TWO_PI = Math.fround(2 * Math.PI);

/**
 * The standard normal value at `index` of the stream `seed`: `sqrt(-2 log(1 - u1)) *
 * cos(2 pi (u2 - 1/2))`, each step rounded to float32 as the WGSL computes it.
 */
export function normalAt(seed: number, index: number): number {
  const u1 = uniformAt(seed, 2 * index);
  const u2 = uniformAt(seed, 2 * index + 1);
  const r = Math.fround(Math.sqrt(Math.fround(-2 * Math.fround(Math.log(1 - u1)))));
  return Math.fround(r * Math.fround(Math.cos(Math.fround(TWO_PI * (u2 - 0.5)))));
}

/** Standard normal values: element i is a function of (seed, i) alone. */
export const randn: KernelSpec<RandnParams> = {
  name: "randn",
  inputTypes: () => [],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"], ["seed", "u32"]],
  uniforms: (p) => [p.n, p.seed],
  variant: () => "",
  wgsl: () =>
    `${PCG_WGSL}
fn uniformAt(s: u32, k: u32) -> f32 { return f32(pcg(k ^ s) >> 8u) / 16777216.0; }
${ELEMENTWISE_MAIN}
  let s = pcg(u.seed);
  let u1 = uniformAt(s, 2u * i);
  let u2 = uniformAt(s, 2u * i + 1u);
  let r = sqrt(-2.0 * log(1.0 - u1));
  out0[i] = r * cos(${TWO_PI} * (u2 - 0.5));
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: (_, p) => {
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) out[i] = normalAt(p.seed, i);
    return [out];
  },
};
