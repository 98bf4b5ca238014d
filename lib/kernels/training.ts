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
  elementwise: {
    n: (p) => p.n,
    reads: () => ["same", "same"],
    expression: (_, [x, dy]) => `select(T(0.0), ${dy}, ${x} > T(0.0))`,
  },
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
  // Its logits are read only as in0[index]: an elementwise group may compute them there.
  prologue: () => true,
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
  elementwise: {
    n: (p) => p.n,
    reads: () => ["same"],
    readsOld: true,
    constants: (p) => [p.alpha],
    expression: (_, [grad, old], [alpha]) => `(${old} - ${alpha} * ${grad})`,
  },
  cpu: ([grad, old], p) => {
    const out = new Float32Array(p.n);
    const alpha = Math.fround(p.alpha);
    for (let i = 0; i < p.n; i++) out[i] = old[i] - Math.fround(alpha * grad[i]);
    return [out];
  },
};

/** Parameters of {@link logSoftmax}: the input is `[outer, mid, inner]`, normalised along `mid`. */
export interface LogSoftmaxParams extends KernelParams {
  outer: number;
  mid: number;
  inner: number;
}

/**
 * `out = z - max(z) - log(sum(exp(z - max(z))))` along the middle axis: one invocation per
 * (outer, inner) line. Stable for large logits.
 */
export const logSoftmax: KernelSpec<LogSoftmaxParams> = {
  name: "log_softmax",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["outer", "u32"], ["mid", "u32"], ["inner", "u32"]],
  uniforms: (p) => [p.outer, p.mid, p.inner],
  variant: () => "",
  wgsl: () =>
    `@compute @workgroup_size(${RWG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = gid.x + gid.y * nwg.x * ${RWG}u;
  if (k >= u.outer * u.inner) { return; }
  let base = (k / u.inner) * u.mid * u.inner + k % u.inner;
  var m = in0[base];
  for (var j = 1u; j < u.mid; j++) { m = max(m, in0[base + j * u.inner]); }
  var s = 0.0;
  for (var j = 0u; j < u.mid; j++) { s += exp(in0[base + j * u.inner] - m); }
  let l = m + log(s);
  for (var j = 0u; j < u.mid; j++) { out0[base + j * u.inner] = in0[base + j * u.inner] - l; }
}`,
  workgroups: (p) => spreadWorkgroups((p.outer * p.inner) / RWG),
  // Its input is read only as in0[index]: an elementwise group may compute it there, and each
  // element is stored once, as out0[index] = ...: a group may follow it.
  prologue: () => true,
  epilogue: (p) => p.outer * p.mid * p.inner,
  cpu: ([z], p) => {
    const out = new Float32Array(z.length);
    for (let o = 0; o < p.outer; o++) {
      for (let i = 0; i < p.inner; i++) {
        const base = o * p.mid * p.inner + i;
        let m = -Infinity;
        for (let j = 0; j < p.mid; j++) m = Math.max(m, z[base + j * p.inner]);
        let s = 0;
        for (let j = 0; j < p.mid; j++) s += Math.exp(z[base + j * p.inner] - m);
        const l = m + Math.log(s);
        for (let j = 0; j < p.mid; j++) out[base + j * p.inner] = z[base + j * p.inner] - l;
      }
    }
    return [out];
  },
};

/** Parameters of {@link findBadLabel}: `rows` labels of classes [0, `cols`). */
export interface FindBadLabelParams extends KernelParams {
  rows: number;
  cols: number;
}

/**
 * `out = [row + 1, label]` of the first label that is not a whole number in [0, cols), or
 * `[0, 0]`: one invocation reads every label (they are few), so the answer is deterministic.
 */
export const findBadLabel: KernelSpec<FindBadLabelParams> = {
  name: "find_bad_label",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["rows", "u32"], ["cols", "u32"]],
  uniforms: (p) => [p.rows, p.cols],
  variant: () => "",
  wgsl: () =>
    `@compute @workgroup_size(1) fn main() {
  out0[0] = 0.0;
  out0[1] = 0.0;
  for (var r = 0u; r < u.rows; r++) {
    let label = in0[r];
    if (!(label >= 0.0 && label < f32(u.cols) && label == floor(label))) {
      out0[0] = f32(r + 1u);
      out0[1] = label;
      return;
    }
  }
}`,
  workgroups: () => [1, 1, 1],
  cpu: ([labels], p) => {
    for (let r = 0; r < p.rows; r++) {
      const label = labels[r];
      if (!(Number.isInteger(label) && label >= 0 && label < p.cols)) {
        return [new Float32Array([r + 1, label])];
      }
    }
    return [new Float32Array(2)];
  },
};

/** Parameters of {@link assertLabels}: what the failure names. */
export interface AssertLabelsParams extends KernelParams {
  cols: number;
  /** The op the labels were given to, for the message. */
  op: string;
}

/**
 * A host-only check: throws a RangeError naming the label that {@link findBadLabel} found,
 * so the op fails at the next synchronisation instead of leaving a NaN loss. Outputs its
 * input unchanged.
 */
export const assertLabels: KernelSpec<AssertLabelsParams> = {
  name: "assert_labels",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [],
  uniforms: () => [],
  variant: () => "",
  wgsl: () => {
    throw new TypeError("assert_labels runs on the host only");
  },
  workgroups: () => [1, 1, 1],
  cpu: ([found], p) => {
    if (found[0] !== 0) {
      throw new RangeError(
        `Cannot take ${p.op}: label ${found[1]} at row ${found[0] - 1} is not a class index ` +
          `in [0, ${p.cols})`,
      );
    }
    return [found.slice()];
  },
};
