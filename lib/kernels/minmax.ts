/**
 * Elementwise maximum and minimum with NumPy broadcasting, clamp, and their gradients, as
 * PyTorch defines them: NaN propagates (if either operand is NaN the result is NaN), and of
 * -0 and 0 the maximum is 0 and the minimum -0 (IEEE 754-2019, JavaScript's `Math.max`).
 * WGSL's own `min`/`max` promise neither, so the WGSL picks explicitly, testing NaN on bits.
 *
 * @module
 */
import {
  type ElementRead,
  type Elementwise,
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";
import { MAX_BROADCAST_RANK, stridedParams } from "./broadcast.ts";
import { IS_NAN_WGSL } from "./reduce_index.ts";

/** The elementwise selections. */
export type MinMaxOp = "maximum" | "minimum";

/** Parameters of {@link minmax} and {@link minmaxBackward}; shapes padded to the rank. */
export interface MinMaxParams extends KernelParams {
  op: MinMaxOp;
  /** Elements of the output. */
  n: number;
  /** The output's shape, comma-separated, {@link MAX_BROADCAST_RANK} sizes. */
  shape: string;
  /** Strides of `a` along the output's dimensions (0 where broadcast), comma-separated. */
  stridesA: string;
  /** Strides of `b`, comma-separated. */
  stridesB: string;
}

/** The parameters of `op(a, b)` broadcast to `out`. Throws a RangeError above the rank limit. */
export function minmaxParams(
  op: MinMaxOp,
  a: readonly number[],
  b: readonly number[],
  out: readonly number[],
): MinMaxParams {
  const { n, shape, stridesA, stridesB } = stridedParams("add", a, b, out);
  return { op, n, shape, stridesA, stridesB };
}

/** The CPU twin of each selection: `Math.max` and `Math.min` have PyTorch's semantics. */
export const MINMAX: Record<MinMaxOp, (a: number, b: number) => number> = {
  maximum: Math.max,
  minimum: Math.min,
};

/** WGSL `maxOf(a, b)` and `minOf(a, b)` with NaN propagation and signed zeros ordered. */
const PICK_WGSL = `${IS_NAN_WGSL}
fn maxOf(a: f32, b: f32) -> f32 {
  if (isNan(a)) { return a; }
  if (isNan(b)) { return b; }
  if (a == b) { return bitcast<f32>(bitcast<u32>(a) & bitcast<u32>(b)); }
  return select(b, a, a > b);
}
fn minOf(a: f32, b: f32) -> f32 {
  if (isNan(a)) { return a; }
  if (isNan(b)) { return b; }
  if (a == b) { return bitcast<f32>(bitcast<u32>(a) | bitcast<u32>(b)); }
  return select(b, a, a < b);
}`;

const nums = (s: string) => s.split(",").map(Number);
const DIMS = Array.from({ length: MAX_BROADCAST_RANK }, (_, i) => i);
const STRIDED_FIELDS = [
  ["n", "u32"],
  ...DIMS.map((d) => [`s${d}`, "u32"] as const),
  ...DIMS.map((d) => [`a${d}`, "u32"] as const),
  ...DIMS.map((d) => [`b${d}`, "u32"] as const),
] as const;
const stridedUniforms = (p: MinMaxParams) => [
  p.n,
  ...nums(p.shape),
  ...nums(p.stridesA),
  ...nums(p.stridesB),
];
/** WGSL that sets `ia` and `ib` to the operands' elements of output element `i`. */
const STRIDED_INDEX = `  var rest = i;
  var ia = 0u;
  var ib = 0u;
${
  [...DIMS].reverse().map((d) =>
    `  let c${d} = rest % u.s${d}; rest = rest / u.s${d};
  ia += c${d} * u.a${d}; ib += c${d} * u.b${d};`
  ).join("\n")
}`;

/** Calls `f(k, ia, ib)` for each output element `k` and its operands' elements. */
function eachStrided(p: MinMaxParams, f: (k: number, ia: number, ib: number) => void): void {
  const shape = nums(p.shape), sa = nums(p.stridesA), sb = nums(p.stridesB);
  for (let k = 0; k < p.n; k++) {
    let rest = k, ia = 0, ib = 0;
    for (let d = MAX_BROADCAST_RANK - 1; d >= 0; d--) {
      const c = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
      ia += c * sa[d];
      ib += c * sb[d];
    }
    f(k, ia, ib);
  }
}

/**
 * A fused program's {@link maxOf} and {@link minOf} of `a` and `b` (each of type `T`, four
 * elements or one): the same choices, made by selects, so that vectors work too.
 */
const PICK_EXPRESSION: Record<MinMaxOp, (a: string, b: string) => string> = {
  maximum: (a, b) =>
    `select(select(select(select(${b}, ${a}, ${a} > ${b}), ` +
    `bitcast<T>(bitcast<UT>(${a}) & bitcast<UT>(${b})), ${a} == ${b}), ${b}, is_nan(${b})), ` +
    `${a}, is_nan(${a}))`,
  minimum: (a, b) =>
    `select(select(select(select(${b}, ${a}, ${a} < ${b}), ` +
    `bitcast<T>(bitcast<UT>(${a}) | bitcast<UT>(${b})), ${a} == ${b}), ${b}, is_nan(${b})), ` +
    `${a}, is_nan(${a}))`,
};

/**
 * How an operand of strides `strides` over the padded output `shape` is read, as a fused
 * program reads: its element ("same"), one element, or a row repeated over the leading
 * dimensions; undefined for any other broadcast.
 */
export function stridedRead(shape: readonly number[], strides: readonly number[]):
  | ElementRead
  | undefined {
  let row = 1;
  let d = shape.length - 1;
  for (; d >= 0 && (shape[d] === 1 || strides[d] === row); d--) row *= shape[d];
  for (; d >= 0; d--) if (shape[d] !== 1 && strides[d] !== 0) return undefined;
  const n = shape.reduce((x, y) => x * y, 1);
  return row === n ? "same" : row === 1 ? "one" : { row };
}

/** The elementwise form of {@link minmax}, for the broadcasts a fused program reads. */
const minmaxElementwise: Elementwise<MinMaxParams> = {
  n: (p) => p.n,
  reads: (p) => {
    const shape = nums(p.shape);
    const reads = [stridedRead(shape, nums(p.stridesA)), stridedRead(shape, nums(p.stridesB))];
    return reads.every((r) => r !== undefined) ? reads as ElementRead[] : undefined;
  },
  expression: (p, [a, b]) => PICK_EXPRESSION[p.op](a, b),
};

/** `out = maximum(a, b)` (or minimum), both operands broadcast through strides. */
export const minmax: KernelSpec<MinMaxParams> = {
  name: "minmax",
  inputTypes: () => ["f32", "f32"],
  outputTypes: () => ["f32"],
  uniformFields: STRIDED_FIELDS,
  uniforms: stridedUniforms,
  variant: (p) => p.op,
  wgsl: (p) =>
    `${PICK_WGSL}
${ELEMENTWISE_MAIN}
${STRIDED_INDEX}
  out0[i] = ${p.op === "maximum" ? "maxOf" : "minOf"}(in0[ia], in1[ib]);
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  elementwise: minmaxElementwise,
  cpu: ([a, b], p) => {
    const out = new Float32Array(p.n);
    const f = MINMAX[p.op];
    eachStrided(p, (k, ia, ib) => out[k] = f(a[ia], b[ib]));
    return [out];
  },
};

/**
 * The gradients of `maximum(a, b)` (or minimum) at the output's shape, given `gy` (`in2`):
 * `gy` to the selected operand, `gy / 2` to both on a tie, and `gy` to both where either is
 * NaN (PyTorch's rule). The caller sums them down to the operands' shapes.
 */
export const minmaxBackward: KernelSpec<MinMaxParams> = {
  name: "minmax_backward",
  inputTypes: () => ["f32", "f32", "f32"],
  outputTypes: () => ["f32", "f32"],
  uniformFields: STRIDED_FIELDS,
  uniforms: stridedUniforms,
  variant: (p) => p.op,
  wgsl: (p) =>
    `${IS_NAN_WGSL}
${ELEMENTWISE_MAIN}
${STRIDED_INDEX}
  let a = in0[ia];
  let b = in1[ib];
  let g = in2[i];
  let nan = isNan(a) || isNan(b);
  let tie = !nan && a == b;
  let aWins = nan || a ${p.op === "maximum" ? ">" : "<"} b;
  let bWins = nan || b ${p.op === "maximum" ? ">" : "<"} a;
  out0[i] = select(select(0.0, g, aWins), 0.5 * g, tie);
  out1[i] = select(select(0.0, g, bWins), 0.5 * g, tie);
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: ([a, b, gy], p) => {
    const ga = new Float32Array(p.n);
    const gb = new Float32Array(p.n);
    const wins = p.op === "maximum"
      ? (x: number, y: number) => x > y
      : (x: number, y: number) => x < y;
    eachStrided(p, (k, ia, ib) => {
      const x = a[ia], y = b[ib], g = gy[k];
      const nan = Number.isNaN(x) || Number.isNaN(y);
      const tie = !nan && x === y;
      ga[k] = tie ? 0.5 * g : nan || wins(x, y) ? g : 0;
      gb[k] = tie ? 0.5 * g : nan || wins(y, x) ? g : 0;
    });
    return [ga, gb];
  },
};

/** Parameters of {@link clamp} and {@link clampBackward}. */
export interface ClampParams extends KernelParams {
  n: number;
  /** The lower bound (-Infinity for none). */
  lo: number;
  /** The upper bound (Infinity for none). */
  hi: number;
}

/** `out = minimum(maximum(x, lo), hi)`: NaN stays NaN, and `lo > hi` gives `hi` (PyTorch). */
export const clamp: KernelSpec<ClampParams> = {
  name: "clamp",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"], ["lo", "f32"], ["hi", "f32"]],
  uniforms: (p) => [p.n, p.lo, p.hi],
  variant: () => "",
  wgsl: () =>
    `${PICK_WGSL}
${ELEMENTWISE_MAIN}
  out0[i] = minOf(maxOf(in0[i], u.lo), u.hi);
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  elementwise: {
    n: (p) => p.n,
    reads: () => ["same"],
    constants: (p) => [p.lo, p.hi],
    expression: (_, [x], [lo, hi]) => PICK_EXPRESSION.minimum(PICK_EXPRESSION.maximum(x, lo), hi),
  },
  cpu: ([x], p) => {
    const lo = Math.fround(p.lo), hi = Math.fround(p.hi);
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) out[i] = Math.min(Math.max(x[i], lo), hi);
    return [out];
  },
};

/** The gradient of {@link clamp}: `gy` (`in1`) where `lo <= x <= hi` (`in0`), else 0. */
export const clampBackward: KernelSpec<ClampParams> = {
  name: "clamp_backward",
  inputTypes: () => ["f32", "f32"],
  outputTypes: () => ["f32"],
  uniformFields: clamp.uniformFields,
  uniforms: clamp.uniforms,
  variant: () => "",
  wgsl: () =>
    `${IS_NAN_WGSL}
${ELEMENTWISE_MAIN}
  let x = in0[i];
  let inside = !isNan(x) && !isNan(u.lo) && !isNan(u.hi) && x >= u.lo && x <= u.hi;
  out0[i] = select(0.0, in1[i], inside);
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  elementwise: {
    n: (p) => p.n,
    reads: () => ["same", "same"],
    constants: (p) => [p.lo, p.hi],
    expression: (_, [x, g], [lo, hi]) =>
      `select(T(0.0), ${g}, !is_nan(${x}) & !is_nan(${lo}) & !is_nan(${hi}) & ` +
      `(${x} >= ${lo}) & (${x} <= ${hi}))`,
  },
  cpu: ([x, gy], p) => {
    const lo = Math.fround(p.lo), hi = Math.fround(p.hi);
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) out[i] = x[i] >= lo && x[i] <= hi ? gy[i] : 0;
    return [out];
  },
};
