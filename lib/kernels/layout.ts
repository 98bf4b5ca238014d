/**
 * Layout and reduction kernels: 2-D transpose and sums (all elements, or along one axis).
 *
 * @module
 */
import type { KernelParams, KernelSpec } from "./kernel.ts";

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

/** Parameters of {@link sumRows} and {@link sumCols}: the input is `rows` x `cols`. */
export interface SumParams extends KernelParams {
  rows: number;
  cols: number;
}

const RWG = 256;

/** `out[i] = sum_j in[i, j]`: one workgroup per row, a tree reduction inside it. */
export const sumRows: KernelSpec<SumParams> = {
  name: "sum_rows",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["rows", "u32"], ["cols", "u32"]],
  uniforms: (p) => [p.rows, p.cols],
  variant: () => "",
  wgsl: () =>
    `var<workgroup> partial: array<f32, ${RWG}>;
@compute @workgroup_size(${RWG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  var acc = 0.0;
  if (row < u.rows) {
    let base = row * u.cols;
    for (var j = t; j < u.cols; j += ${RWG}u) { acc += in0[base + j]; }
  }
  partial[t] = acc;
  workgroupBarrier();
  for (var s = ${RWG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { partial[t] += partial[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u && row < u.rows) { out0[row] = partial[0]; }
}`,
  workgroups: (p) => {
    const y = Math.ceil(p.rows / 65535);
    return [Math.ceil(p.rows / y), y, 1];
  },
  cpu: ([a], p) => {
    const out = new Float32Array(p.rows);
    for (let i = 0; i < p.rows; i++) {
      let acc = 0;
      for (let j = 0; j < p.cols; j++) acc += a[i * p.cols + j];
      out[i] = acc;
    }
    return [out];
  },
};

/** `out[j] = sum_i in[i, j]`: one invocation per column, reading rows in turn. */
export const sumCols: KernelSpec<SumParams> = {
  name: "sum_cols",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["rows", "u32"], ["cols", "u32"]],
  uniforms: (p) => [p.rows, p.cols],
  variant: () => "",
  wgsl: () =>
    `@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= u.cols) { return; }
  var acc = 0.0;
  for (var i = 0u; i < u.rows; i++) { acc += in0[i * u.cols + j]; }
  out0[j] = acc;
}`,
  workgroups: (p) => [Math.ceil(p.cols / 64), 1, 1],
  cpu: ([a], p) => {
    const out = new Float32Array(p.cols);
    for (let i = 0; i < p.rows; i++) {
      for (let j = 0; j < p.cols; j++) out[j] += a[i * p.cols + j];
    }
    return [out];
  },
};
