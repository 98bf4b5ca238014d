/**
 * Softmax along one axis, computed stably (exponents of `x - max(x)`), with PyTorch's
 * special values: a line holding a NaN is NaN throughout, `+Infinity` gives NaN (`inf - inf`),
 * `-Infinity` gives 0, and a line of nothing but `-Infinity` is NaN.
 *
 * @module
 */
import { type KernelParams, type KernelSpec, spreadWorkgroups } from "./kernel.ts";
import { IS_NAN_WGSL } from "./reduce_index.ts";

/** Parameters of {@link softmax}: the input is `[outer, mid, inner]`, normalised along `mid`. */
export interface SoftmaxParams extends KernelParams {
  outer: number;
  mid: number;
  inner: number;
}

const WG = 64;

/** The maximum that propagates NaN, as the CPU twin and the WGSL both compute it. */
function nanMax(a: number, b: number): number {
  return Number.isNaN(a) ? a : Number.isNaN(b) || b > a ? b : a;
}

/**
 * The head of a kernel over the lines of `[outer, mid, inner]`, one invocation each: `k`, the
 * line; `base`, its first element; `m`, its maximum (NaN if it holds one).
 */
const LINE_MAX = `${IS_NAN_WGSL}
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = gid.x + gid.y * nwg.x * ${WG}u;
  if (k >= u.outer * u.inner) { return; }
  let base = (k / u.inner) * u.mid * u.inner + k % u.inner;
  var m = in0[base];
  for (var j = 1u; j < u.mid; j++) {
    let v = in0[base + j * u.inner];
    if (!isNan(m) && (isNan(v) || v > m)) { m = v; }
  }`;

/** What every kernel over lines has: one input and output, the uniforms, the workgroups. */
const LINES = {
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["outer", "u32"], ["mid", "u32"], ["inner", "u32"]],
  uniforms: (p: SoftmaxParams) => [p.outer, p.mid, p.inner],
  variant: () => "",
  workgroups: (p: SoftmaxParams) => spreadWorkgroups((p.outer * p.inner) / WG),
} as const;

/** `out = exp(x - m) / sum(exp(x - m))` along the middle axis, `m` the line's maximum. */
export const softmax: KernelSpec<SoftmaxParams> = {
  name: "softmax",
  ...LINES,
  wgsl: () =>
    `${LINE_MAX}
  var s = 0.0;
  for (var j = 0u; j < u.mid; j++) { s += exp(in0[base + j * u.inner] - m); }
  for (var j = 0u; j < u.mid; j++) {
    out0[base + j * u.inner] = exp(in0[base + j * u.inner] - m) / s;
  }
}`,
  // Its input is read only as in0[index]: an elementwise group may compute it there.
  prologue: () => true,
  // Each element is stored once, as out0[index] = ...: an elementwise group may follow it.
  epilogue: (p) => p.outer * p.mid * p.inner,
  cpu: ([x], p) => {
    const out = new Float32Array(x.length);
    const e = new Float64Array(p.mid);
    for (let o = 0; o < p.outer; o++) {
      for (let i = 0; i < p.inner; i++) {
        const at = (j: number) => (o * p.mid + j) * p.inner + i;
        let m = x[at(0)];
        for (let j = 1; j < p.mid; j++) m = nanMax(m, x[at(j)]);
        let s = 0;
        for (let j = 0; j < p.mid; j++) s += e[j] = Math.exp(Math.fround(x[at(j)] - m));
        for (let j = 0; j < p.mid; j++) out[at(j)] = e[j] / s;
      }
    }
    return [out];
  },
};

/**
 * `out = log(sum(exp(x - m))) + m` along the middle axis, `m` the line's maximum, as
 * PyTorch's `logsumexp` computes it: an infinite maximum counts as 0 there (a line holding
 * +Infinity gives +Infinity, one of nothing but -Infinity gives -Infinity), and a NaN gives
 * NaN. One invocation per (outer, inner) line; the output is `[outer, inner]`.
 */
export const logSumExp: KernelSpec<SoftmaxParams> = {
  name: "log_sum_exp",
  ...LINES,
  wgsl: () =>
    `${LINE_MAX}
  if ((bitcast<u32>(m) & 0x7fffffffu) == 0x7f800000u) { m = 0.0; }
  var s = 0.0;
  for (var j = 0u; j < u.mid; j++) { s += exp(in0[base + j * u.inner] - m); }
  out0[k] = log(s) + m;
}`,
  // Its input is read only as in0[index], its output stored once as out0[k] = ...: an
  // elementwise group may compute its input, or follow it.
  prologue: () => true,
  epilogue: (p) => p.outer * p.inner,
  cpu: ([x], p) => {
    const out = new Float32Array(p.outer * p.inner);
    for (let o = 0; o < p.outer; o++) {
      for (let i = 0; i < p.inner; i++) {
        const at = (j: number) => (o * p.mid + j) * p.inner + i;
        let m = x[at(0)];
        for (let j = 1; j < p.mid; j++) m = nanMax(m, x[at(j)]);
        if (Math.abs(m) === Infinity) m = 0;
        let s = 0;
        for (let j = 0; j < p.mid; j++) s += Math.exp(Math.fround(x[at(j)] - m));
        out[o * p.inner + i] = Math.log(s) + m;
      }
    }
    return [out];
  },
};
