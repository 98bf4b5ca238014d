/**
 * Index-selecting reductions: the minimum or maximum of each line along an axis together
 * with its index (PyTorch's `min(dim)`, `argmax`, `argmin`), and the two gradients of such
 * reductions: to the selected index, or spread evenly over every element equal to the value.
 *
 * NaN wins (PyTorch): a line holding a NaN gives NaN and the index of its first NaN. Ties
 * (-0 and 0 included) give the first index. NaN is tested on the bits, since WGSL compilers
 * may fold `x != x` away.
 *
 * @module
 */
import { type KernelParams, type KernelSpec, spreadWorkgroups } from "./kernel.ts";

/** Which end of a line {@link argReduce} selects. */
export type ArgReduceOp = "min" | "max";

/** Parameters of {@link argReduce}: the input is `[outer, mid, inner]`; `mid` is reduced. */
export interface ArgReduceParams extends KernelParams {
  op: ArgReduceOp;
  outer: number;
  mid: number;
  inner: number;
}

/** NaN by its bits, which no compiler may assume away. */
export const IS_NAN_WGSL = `fn isNan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}`;

const TWG = 64;
const EMPTY = 0xffffffff;
/** Lines longer than this are reduced by a workgroup each, shorter ones by one invocation. */
const TREE_FROM = 64;
const tree = (p: ArgReduceParams) => p.mid > TREE_FROM;

/** Whether `(v, i)` comes before `(w, j)`: NaN first, then the smaller (or larger), then index. */
export function selectsBefore(
  op: ArgReduceOp,
  v: number,
  i: number,
  w: number,
  j: number,
): boolean {
  const nv = Number.isNaN(v), nw = Number.isNaN(w);
  if (nv || nw) return nv && (!nw || i < j);
  if (v === w) return i < j;
  return op === "min" ? v < w : v > w;
}

function beforeWgsl(op: ArgReduceOp): string {
  return `${IS_NAN_WGSL}
fn before(v: f32, i: u32, w: f32, j: u32) -> bool {
  let nv = isNan(v);
  let nw = isNan(w);
  if (nv || nw) { return nv && (!nw || i < j); }
  if (v == w) { return i < j; }
  return v ${op === "min" ? "<" : ">"} w;
}`;
}

/**
 * `out0[o, i]` = the min (or max) of `in[o, :, i]` and `out1[o, i]` its index (as f32).
 * Long lines get a workgroup each (a tree of (value, index) pairs), short lines one
 * invocation each; both give the same answer, which does not depend on the order.
 */
export const argReduce: KernelSpec<ArgReduceParams> = {
  name: "arg_reduce",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32", "f32"],
  uniformFields: [["lines", "u32"], ["mid", "u32"], ["inner", "u32"]],
  uniforms: (p) => [p.outer * p.inner, p.mid, p.inner],
  variant: (p) => `${p.op}-${tree(p) ? "tree" : "line"}`,
  wgsl: (p) => {
    const head = `${beforeWgsl(p.op)}
fn baseOf(line: u32) -> u32 { return (line / u.inner) * u.mid * u.inner + line % u.inner; }`;
    if (!tree(p)) {
      return `${head}
@compute @workgroup_size(${TWG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let line = gid.x + gid.y * nwg.x * ${TWG}u;
  if (line >= u.lines) { return; }
  let base = baseOf(line);
  var bv = in0[base];
  var bi = 0u;
  for (var j = 1u; j < u.mid; j++) {
    let v = in0[base + j * u.inner];
    if (before(v, j, bv, bi)) { bv = v; bi = j; }
  }
  out0[line] = bv;
  out1[line] = f32(bi);
}`;
    }
    return `${head}
var<workgroup> vals: array<f32, ${TWG}>;
var<workgroup> idxs: array<u32, ${TWG}>;
@compute @workgroup_size(${TWG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let line = wid.x + wid.y * nwg.x;
  var bv = 0.0;
  var bi = ${EMPTY}u;
  if (line < u.lines) {
    let base = baseOf(line);
    for (var j = t; j < u.mid; j += ${TWG}u) {
      let v = in0[base + j * u.inner];
      if (bi == ${EMPTY}u || before(v, j, bv, bi)) { bv = v; bi = j; }
    }
  }
  vals[t] = bv;
  idxs[t] = bi;
  workgroupBarrier();
  for (var s = ${TWG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) {
      let j = idxs[t + s];
      if (j != ${EMPTY}u && (idxs[t] == ${EMPTY}u || before(vals[t + s], j, vals[t], idxs[t]))) {
        vals[t] = vals[t + s];
        idxs[t] = j;
      }
    }
    workgroupBarrier();
  }
  if (t == 0u && line < u.lines) {
    out0[line] = vals[0];
    out1[line] = f32(idxs[0]);
  }
}`;
  },
  workgroups: (p) => {
    const lines = p.outer * p.inner;
    if (!tree(p)) return spreadWorkgroups(lines / TWG);
    const y = Math.ceil(lines / 65535);
    return [Math.ceil(lines / y), y, 1];
  },
  cpu: ([a], p) => {
    const values = new Float32Array(p.outer * p.inner);
    const indices = new Float32Array(p.outer * p.inner);
    for (let o = 0; o < p.outer; o++) {
      for (let i = 0; i < p.inner; i++) {
        const base = o * p.mid * p.inner + i;
        let bv = a[base], bi = 0;
        for (let j = 1; j < p.mid; j++) {
          const v = a[base + j * p.inner];
          if (selectsBefore(p.op, v, j, bv, bi)) [bv, bi] = [v, j];
        }
        values[o * p.inner + i] = bv;
        indices[o * p.inner + i] = bi;
      }
    }
    return [values, indices];
  },
};

/** Parameters of {@link valueSelectingBackward}: the input was `[outer, mid, inner]`. */
export interface ValueSelectingParams extends KernelParams {
  outer: number;
  mid: number;
  inner: number;
}

const EWG = 256;

/**
 * The gradient of a reduction that selects one index per line: `out[o, j, i]` is
 * `gy[o, i]` (`in0`) where `j` is the index `idx[o, i]` (`in1`), else 0.
 */
export const valueSelectingBackward: KernelSpec<ValueSelectingParams> = {
  name: "value_selecting_backward",
  inputTypes: () => ["f32", "f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"], ["mid", "u32"], ["inner", "u32"]],
  uniforms: (p) => [p.outer * p.mid * p.inner, p.mid, p.inner],
  variant: () => "",
  wgsl: () =>
    `@compute @workgroup_size(${EWG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = gid.x + gid.y * nwg.x * ${EWG}u;
  if (k >= u.n) { return; }
  let i = k % u.inner;
  let j = (k / u.inner) % u.mid;
  let line = (k / (u.inner * u.mid)) * u.inner + i;
  out0[k] = select(0.0, in0[line], u32(in1[line]) == j);
}`,
  workgroups: (p) => spreadWorkgroups((p.outer * p.mid * p.inner) / EWG),
  cpu: ([gy, idx], p) => {
    const out = new Float32Array(p.outer * p.mid * p.inner);
    for (let o = 0; o < p.outer; o++) {
      for (let i = 0; i < p.inner; i++) {
        const line = o * p.inner + i;
        out[(o * p.mid + idx[line]) * p.inner + i] = gy[line];
      }
    }
    return [out];
  },
};

/** Parameters of {@link tieMask}. */
export interface TieMaskParams extends KernelParams {
  n: number;
}

/**
 * `out[i] = 1` where `x[i]` (`in0`) equals the one value `v` (`in1`), or both are NaN;
 * else 0: the elements that a full min or max reduction could have selected.
 */
export const tieMask: KernelSpec<TieMaskParams> = {
  name: "tie_mask",
  inputTypes: () => ["f32", "f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"]],
  uniforms: (p) => [p.n],
  variant: () => "",
  wgsl: () =>
    `${IS_NAN_WGSL}
@compute @workgroup_size(${EWG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${EWG}u;
  if (i >= u.n) { return; }
  let x = in0[i];
  let v = in1[0];
  let nx = isNan(x);
  let nv = isNan(v);
  out0[i] = select(0.0, 1.0, (nx && nv) || (!nx && !nv && x == v));
}`,
  workgroups: (p) => spreadWorkgroups(p.n / EWG),
  cpu: ([x, v], p) => {
    const out = new Float32Array(p.n);
    const nan = Number.isNaN(v[0]);
    for (let i = 0; i < p.n; i++) out[i] = (nan ? Number.isNaN(x[i]) : x[i] === v[0]) ? 1 : 0;
    return [out];
  },
};
