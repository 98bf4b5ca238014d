/**
 * The dropout mask (inverted dropout, as torch.nn.Dropout): element i of call `c` of the
 * stream `seed` is dropped when a counter-based hash of (seed, c, i) falls below `p`, and
 * kept as `1 / (1 - p)` otherwise. The call number is read from a one-element counter
 * tensor on the device, so that a captured step replayed from its recording draws a fresh
 * mask each time; the kernel also writes the next value of the counter.
 *
 * @module
 */
import {
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";
import { PCG_WGSL, pcgHash } from "./elementwise.ts";

/** Parameters of {@link dropoutMask}. */
export interface DropoutMaskParams extends KernelParams {
  /** Elements of the mask. */
  n: number;
  /** Probability of dropping an element, in [0, 1]. */
  p: number;
  /** The value of a kept element: `1 / (1 - p)` (0 when p is 1). */
  scale: number;
  /** A 32-bit unsigned seed. */
  seed: number;
}

/** The counter wraps to 0 here: float32 holds every whole number below it exactly. */
export const COUNTER_PERIOD = 16777216;

/** The counter's next value, as the WGSL computes it. */
export function nextCount(count: number): number {
  return count + 1 >= COUNTER_PERIOD ? 0 : count + 1;
}

/**
 * The mask's element `index` for call `count` of stream `seed`, exactly as the WGSL
 * computes it: 0 (dropped) or `Math.fround(scale)` (kept).
 */
export function dropoutAt(
  seed: number,
  count: number,
  index: number,
  p: number,
  scale: number,
): number {
  const stream = pcgHash((seed ^ pcgHash(count >>> 0)) >>> 0);
  const r = (pcgHash((index ^ stream) >>> 0) >>> 8) / 16777216;
  return r < Math.fround(p) ? 0 : Math.fround(scale);
}

/**
 * `out0` = the mask for the call number in `in0[0]`; `out1[0]` = the next call number.
 * The CPU twin gives the same bits.
 */
export const dropoutMask: KernelSpec<DropoutMaskParams> = {
  name: "dropout_mask",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32", "f32"],
  uniformFields: [["n", "u32"], ["p", "f32"], ["scale", "f32"], ["seed", "u32"]],
  uniforms: (p) => [p.n, p.p, p.scale, p.seed],
  variant: () => "",
  wgsl: () =>
    `${PCG_WGSL}
${ELEMENTWISE_MAIN}
  let count = in0[0];
  if (i == 0u) { out1[0] = select(count + 1.0, 0.0, count + 1.0 >= ${COUNTER_PERIOD}.0); }
  let stream = pcg(u.seed ^ pcg(u32(count)));
  let r = f32(pcg(i ^ stream) >> 8u) / 16777216.0;
  out0[i] = select(u.scale, 0.0, r < u.p);
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: ([counter], p) => {
    const count = counter[0];
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) out[i] = dropoutAt(p.seed, count, i, p.p, p.scale);
    return [out, Float32Array.of(nextCount(count))];
  },
};
