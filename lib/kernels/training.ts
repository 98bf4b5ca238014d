/**
 * Kernels for training: the relu backward mask, a fused softmax cross-entropy with its
 * gradient, and the in-place update `param -= alpha * grad` of SGD.
 *
 * @module
 */
import {
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
  spreadWorkgroups,
} from "./kernel.ts";

const vec = (n: number) => n % 4 === 0;

/** Parameters of {@link reluBackward}: elements of `x` and of `dy`. */
export interface ReluBackwardParams extends KernelParams {
  n: number;
}

/**
 * `out = dy` where `x > 0`, else 0: the gradient through relu at `x` (`in0`), given the
 * gradient `dy` (`in1`) of its output. `x` may be relu's input or its output: both are
 * positive at the same places.
 */
export const reluBackward: KernelSpec<ReluBackwardParams> = {
  name: "relu_backward",
  inputTypes: (p) => vec(p.n) ? ["vec4<f32>", "vec4<f32>"] : ["f32", "f32"],
  outputTypes: (p) => [vec(p.n) ? "vec4<f32>" : "f32"],
  uniformFields: [["n", "u32"]],
  uniforms: (p) => [vec(p.n) ? p.n / 4 : p.n],
  variant: (p) => vec(p.n) ? "vec4" : "f32",
  wgsl: (p) =>
    `${ELEMENTWISE_MAIN}
  out0[i] = select(${vec(p.n) ? "vec4<f32>(0.0)" : "0.0"}, in1[i], in0[i] > ${
      vec(p.n) ? "vec4<f32>(0.0)" : "0.0"
    });
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n, vec(p.n) ? 4 : 1),
  cpu: ([x, dy], p) => {
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) out[i] = x[i] > 0 ? dy[i] : 0;
    return [out];
  },
};

/** Parameters of {@link softmaxCrossEntropy}: logits are `rows` x `cols`. */
export interface SoftmaxCrossEntropyParams extends KernelParams {
  rows: number;
  cols: number;
  /** Factor of the gradient, for example 1 / batch size for the mean loss. */
  scale: number;
}

const RWG = 64;

/**
 * Softmax cross-entropy of each row of the logits (`in0`, `rows` x `cols`) against class
 * indices (`in1`, `rows` floats): `out0[r] = logsumexp(z_r) - z_r[label_r]`, and the
 * gradient `out1 = scale * (softmax(z) - onehot(label))`. Stable: exponents of `z - max(z)`.
 * A label outside [0, cols) gives a NaN loss and gradient row, so it cannot pass unnoticed.
 */
export const softmaxCrossEntropy: KernelSpec<SoftmaxCrossEntropyParams> = {
  name: "softmax_cross_entropy",
  inputTypes: () => ["f32", "f32"],
  outputTypes: () => ["f32", "f32"],
  uniformFields: [["rows", "u32"], ["cols", "u32"], ["scale", "f32"]],
  uniforms: (p) => [p.rows, p.cols, p.scale],
  variant: () => "",
  wgsl: () =>
    `@compute @workgroup_size(${RWG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * ${RWG}u;
  if (r >= u.rows) { return; }
  let base = r * u.cols;
  var m = in0[base];
  for (var j = 1u; j < u.cols; j++) { m = max(m, in0[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < u.cols; j++) { s += exp(in0[base + j] - m); }
  let label = in1[r];
  let valid = label >= 0.0 && label < f32(u.cols) && label == floor(label);
  let c = u32(max(label, 0.0));
  var nanBits = 0x7fc00000u; // a var: WGSL rejects a NaN made in a constant expression (Tint)
  let nan = bitcast<f32>(nanBits);
  let z = in0[base + min(c, u.cols - 1u)];
  out0[r] = select(nan, log(s) + m - z, valid);
  for (var j = 0u; j < u.cols; j++) {
    let p = exp(in0[base + j] - m) / s;
    let g = u.scale * (p - select(0.0, 1.0, j == c));
    out1[base + j] = select(nan, g, valid);
  }
}`,
  workgroups: (p) => spreadWorkgroups(p.rows / RWG),
  cpu: ([z, labels], p) => {
    const { rows, cols } = p;
    const scale = Math.fround(p.scale);
    const losses = new Float32Array(rows);
    const grad = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let m = z[base];
      for (let j = 1; j < cols; j++) m = Math.max(m, z[base + j]);
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(z[base + j] - m);
      const label = labels[r];
      if (!(Number.isInteger(label) && label >= 0 && label < cols)) {
        losses[r] = NaN;
        grad.fill(NaN, base, base + cols);
        continue;
      }
      losses[r] = Math.log(s) + m - z[base + label];
      for (let j = 0; j < cols; j++) {
        grad[base + j] = scale * (Math.exp(z[base + j] - m) / s - (j === label ? 1 : 0));
      }
    }
    return [losses, grad];
  },
};

/** Parameters of {@link subInPlace}. */
export interface SubInPlaceParams extends KernelParams {
  n: number;
  /** The factor of the subtrahend (the learning rate of SGD). */
  alpha: number;
}

/**
 * In place: `out0 -= alpha * in0`, the SGD update `param -= lr * grad`. `out0` holds the
 * target's old value (it is bound as the output, never as an input); the CPU twin gets that
 * old value as its last input and returns the new one.
 */
export const subInPlace: KernelSpec<SubInPlaceParams> = {
  name: "sub_inplace",
  inPlace: true,
  inputTypes: (p) => [vec(p.n) ? "vec4<f32>" : "f32"],
  outputTypes: (p) => [vec(p.n) ? "vec4<f32>" : "f32"],
  uniformFields: [["n", "u32"], ["alpha", "f32"]],
  uniforms: (p) => [vec(p.n) ? p.n / 4 : p.n, p.alpha],
  variant: (p) => vec(p.n) ? "vec4" : "f32",
  wgsl: () =>
    `${ELEMENTWISE_MAIN}
  out0[i] = out0[i] - u.alpha * in0[i];
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n, vec(p.n) ? 4 : 1),
  cpu: ([grad, old], p) => {
    const out = new Float32Array(p.n);
    const alpha = Math.fround(p.alpha);
    for (let i = 0; i < p.n; i++) out[i] = old[i] - Math.fround(alpha * grad[i]);
    return [out];
  },
};
