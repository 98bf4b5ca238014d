/**
 * Layout and reduction kernels: 2-D transpose, and sums or maxima along one axis (a mean is
 * a sum with a scale).
 *
 * @module
 */
import { type KernelParams, type KernelSpec, spreadWorkgroups } from "./kernel.ts";

/** Parameters of {@link transpose}: the input is `rows` x `cols`. */
export interface TransposeParams extends KernelParams {
  rows: number;
  cols: number;
}

/** `out[j, i] = in[i, j]` for a row-major `rows` x `cols` input. */
export const transpose: KernelSpec<TransposeParams> = {
  name: "transpose",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["rows", "u32"], ["cols", "u32"]],
  uniforms: (p) => [p.rows, p.cols],
  variant: () => "",
  wgsl: () =>
    `@compute @workgroup_size(16, 16) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let i = gid.y;
  if (i >= u.rows || j >= u.cols) { return; }
  out0[j * u.rows + i] = in0[i * u.cols + j];
}`,
  workgroups: (p) => [Math.ceil(p.cols / 16), Math.ceil(p.rows / 16), 1],
  cpu: ([a], p) => {
    const out = new Float32Array(p.rows * p.cols);
    for (let i = 0; i < p.rows; i++) {
      for (let j = 0; j < p.cols; j++) out[j * p.rows + i] = a[i * p.cols + j];
    }
    return [out];
  },
};

/** How a reduction combines: a sum (times `scale`, so a mean is one op) or the maximum. */
export type ReduceOp = "sum" | "max";

/** Parameters of {@link sumRows}: the input is `rows` x `cols`; each row is reduced. */
export interface SumParams extends KernelParams {
  rows: number;
  cols: number;
  /**
   * The combination.
   * @default {"sum"}
   */
  op?: ReduceOp;
  /**
   * Factor of a sum: 1 / cols gives the mean.
   * @default {1}
   */
  scale?: number;
}

const RWG = 256;
const opOf = (p: { op?: ReduceOp }): ReduceOp => p.op ?? "sum";
const combine = (op: ReduceOp) =>
  op === "max"
    ? (a: string, b: string) => `max_nan(${a}, ${b})`
    : (a: string, b: string) => `${a} + ${b}`;

/**
 * WGSL's `max` need not return NaN for a NaN operand, and a compiler may fold `x != x`
 * away: NaN is found by its bits, so a maximum over a NaN is NaN, as in PyTorch. The
 * maximum of nothing but -Infinity is -Infinity (its bits, not -FLT_MAX).
 */
const MAX_PRELUDE =
  `fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn max_nan(a: f32, b: f32) -> f32 {
  if (is_nan(a)) { return a; }
  if (is_nan(b)) { return b; }
  return max(a, b);
}
// A private variable, not a constant: a constant expression may not be infinite.
var<private> neg_inf_bits: u32 = 0xff800000u;
`;
const prelude = (op: ReduceOp) => op === "max" ? MAX_PRELUDE : "";

/** `out[i] = scale * sum_j in[i, j]` (or the max): one workgroup per row, a tree inside it. */
export const sumRows: KernelSpec<SumParams> = {
  name: "sum_rows",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["rows", "u32"], ["cols", "u32"], ["scale", "f32"]],
  uniforms: (p) => [p.rows, p.cols, p.scale ?? 1],
  variant: (p) => opOf(p),
  prologue: () => true,
  // Its output is stored once, as out0[row] = ...: an elementwise group may follow it there.
  epilogue: (p) => p.rows,
  wgsl: (p) => {
    const f = combine(opOf(p));
    const init = opOf(p) === "max" ? "bitcast<f32>(neg_inf_bits)" : "0.0";
    const finish = opOf(p) === "max" ? "partial[0]" : "u.scale * partial[0]";
    return `${prelude(opOf(p))}var<workgroup> partial: array<f32, ${RWG}>;
@compute @workgroup_size(${RWG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  var acc = ${init};
  if (row < u.rows) {
    let base = row * u.cols;
    for (var j = t; j < u.cols; j += ${RWG}u) { acc = ${f("acc", "in0[base + j]")}; }
  }
  partial[t] = acc;
  workgroupBarrier();
  for (var s = ${RWG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { partial[t] = ${f("partial[t]", "partial[t + s]")}; }
    workgroupBarrier();
  }
  if (t == 0u && row < u.rows) { out0[row] = ${finish}; }
}`;
  },
  workgroups: (p) => {
    const y = Math.ceil(p.rows / 65535);
    return [Math.ceil(p.rows / y), y, 1];
  },
  cpu: ([a], p) => {
    const out = new Float32Array(p.rows);
    const max = opOf(p) === "max";
    const scale = Math.fround(p.scale ?? 1);
    for (let i = 0; i < p.rows; i++) {
      let acc = max ? -Infinity : 0;
      for (let j = 0; j < p.cols; j++) {
        const v = a[i * p.cols + j];
        acc = max ? (v > acc || Number.isNaN(v) ? v : acc) : acc + v;
      }
      out[i] = max ? acc : scale * acc;
    }
    return [out];
  },
};

/**
 * Parameters of {@link sumCols}: the input is `[outer, rows, cols]` (row-major) and the
 * middle axis is reduced, giving `[outer, cols]`.
 */
export interface SumColsParams extends KernelParams {
  rows: number;
  cols: number;
  /**
   * Blocks of `rows` x `cols` reduced one after the other.
   * @default {1}
   */
  outer?: number;
  /**
   * The combination.
   * @default {"sum"}
   */
  op?: ReduceOp;
  /**
   * Factor of a sum: 1 / rows gives the mean.
   * @default {1}
   */
  scale?: number;
}

/** `out[o, j] = scale * sum_i in[o, i, j]` (or the max): one invocation per output. */
export const sumCols: KernelSpec<SumColsParams> = {
  name: "sum_cols",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["rows", "u32"], ["cols", "u32"], ["outer", "u32"], ["scale", "f32"]],
  uniforms: (p) => [p.rows, p.cols, p.outer ?? 1, p.scale ?? 1],
  variant: (p) => opOf(p),
  prologue: () => true,
  epilogue: (p) => p.cols * (p.outer ?? 1),
  wgsl: (p) => {
    const max = opOf(p) === "max";
    return `${
      prelude(opOf(p))
    }@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = gid.x + gid.y * nwg.x * 64u;
  if (k >= u.cols * u.outer) { return; }
  let j = k % u.cols;
  let base = (k / u.cols) * u.rows * u.cols + j;
  var acc = ${max ? "bitcast<f32>(neg_inf_bits)" : "0.0"};
  for (var i = 0u; i < u.rows; i++) { acc = ${combine(opOf(p))("acc", "in0[base + i * u.cols]")}; }
  out0[k] = ${max ? "acc" : "u.scale * acc"};
}`;
  },
  workgroups: (p) => spreadWorkgroups((p.cols * (p.outer ?? 1)) / 64),
  cpu: ([a], p) => {
    const outer = p.outer ?? 1;
    const max = opOf(p) === "max";
    const scale = Math.fround(p.scale ?? 1);
    const out = new Float32Array(outer * p.cols);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < p.cols; j++) {
        let acc = max ? -Infinity : 0;
        for (let i = 0; i < p.rows; i++) {
          const v = a[(o * p.rows + i) * p.cols + j];
          acc = max ? (v > acc || Number.isNaN(v) ? v : acc) : acc + v;
        }
        out[o * p.cols + j] = max ? acc : scale * acc;
      }
    }
    return [out];
  },
};

/**
 * Parameters of {@link narrow} and {@link unnarrow}: the full tensor is
 * `[outer, mid, inner]` and the slice keeps `length` of `mid` from `start`.
 */
export interface NarrowParams extends KernelParams {
  outer: number;
  mid: number;
  inner: number;
  start: number;
  length: number;
}

const NWG = 256;
const narrowMain =
  `@compute @workgroup_size(${NWG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = gid.x + gid.y * nwg.x * ${NWG}u;`;

/** `out[o, j, i] = in[o, start + j, i]`: a slice along one axis (PyTorch's `narrow`). */
export const narrow: KernelSpec<NarrowParams> = {
  name: "narrow",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["outer", "u32"], ["mid", "u32"], ["inner", "u32"], ["start", "u32"], [
    "length",
    "u32",
  ]],
  uniforms: (p) => [p.outer, p.mid, p.inner, p.start, p.length],
  variant: () => "",
  wgsl: () =>
    `${narrowMain}
  if (k >= u.outer * u.length * u.inner) { return; }
  let i = k % u.inner;
  let j = (k / u.inner) % u.length;
  let o = k / (u.inner * u.length);
  out0[k] = in0[(o * u.mid + u.start + j) * u.inner + i];
}`,
  workgroups: (p) => spreadWorkgroups((p.outer * p.length * p.inner) / NWG),
  cpu: ([a], p) => {
    const out = new Float32Array(p.outer * p.length * p.inner);
    const block = p.length * p.inner;
    for (let o = 0; o < p.outer; o++) {
      const from = (o * p.mid + p.start) * p.inner;
      out.set(a.subarray(from, from + block), o * block);
    }
    return [out];
  },
};

/** The gradient of {@link narrow}: the slice put back in place, zeros elsewhere. */
export const unnarrow: KernelSpec<NarrowParams> = {
  name: "unnarrow",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: narrow.uniformFields,
  uniforms: narrow.uniforms,
  variant: () => "",
  wgsl: () =>
    `${narrowMain}
  if (k >= u.outer * u.mid * u.inner) { return; }
  let i = k % u.inner;
  let j = (k / u.inner) % u.mid;
  let o = k / (u.inner * u.mid);
  let inside = j >= u.start && j < u.start + u.length;
  let src = (o * u.length + min(j - u.start, u.length - 1u)) * u.inner + i;
  out0[k] = select(0.0, in0[min(src, arrayLength(&in0) - 1u)], inside);
}`,
  workgroups: (p) => spreadWorkgroups((p.outer * p.mid * p.inner) / NWG),
  cpu: ([g], p) => {
    const out = new Float32Array(p.outer * p.mid * p.inner);
    const block = p.length * p.inner;
    for (let o = 0; o < p.outer; o++) {
      out.set(g.subarray(o * block, (o + 1) * block), (o * p.mid + p.start) * p.inner);
    }
    return [out];
  },
};
