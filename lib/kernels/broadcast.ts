/**
 * NumPy broadcasting for the binary ops whose operands are not the same shape, a row vector
 * or one element: each operand is read through strides, 0 along a broadcast dimension.
 *
 * @module
 */
import {
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";
import { APPLY, type BinaryOp, SYMBOL } from "./elementwise.ts";

/** The most dimensions a broadcast operand may have. */
export const MAX_BROADCAST_RANK = 6;

/** Parameters of {@link binaryStrided}; shapes are padded on the left with 1 to the rank. */
export interface BinaryStridedParams extends KernelParams {
  op: BinaryOp;
  /** Elements of the output. */
  n: number;
  /** The output's shape, comma-separated, {@link MAX_BROADCAST_RANK} sizes. */
  shape: string;
  /** Strides (in elements) of `a` along the output's dimensions, comma-separated. */
  stridesA: string;
  /** Strides of `b`, comma-separated. */
  stridesB: string;
}

/** The broadcast shape of `a` and `b`, or undefined when they do not fit. */
export function broadcastShape(
  a: readonly number[],
  b: readonly number[],
): number[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return undefined;
    out.push(Math.max(x, y));
  }
  return out;
}

/** Strides of `shape` read as the broadcast `out` shape, padded to {@link MAX_BROADCAST_RANK}. */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const strides = new Array(MAX_BROADCAST_RANK).fill(0);
  let stride = 1;
  for (let i = 1; i <= shape.length; i++) {
    const size = shape[shape.length - i];
    strides[MAX_BROADCAST_RANK - i] = size === 1 && out[out.length - i] !== 1 ? 0 : stride;
    stride *= size;
  }
  return strides;
}

/** The parameters of `a (op) b` broadcast to `out`. Throws a RangeError above the rank limit. */
export function stridedParams(
  op: BinaryOp,
  a: readonly number[],
  b: readonly number[],
  out: readonly number[],
): BinaryStridedParams {
  if (out.length > MAX_BROADCAST_RANK) {
    throw new RangeError(
      `Cannot broadcast shapes [${a.join(", ")}] and [${b.join(", ")}]: at most ` +
        `${MAX_BROADCAST_RANK} dimensions are supported`,
    );
  }
  const padded = [...new Array(MAX_BROADCAST_RANK - out.length).fill(1), ...out];
  return {
    op,
    n: out.reduce((x, y) => x * y, 1),
    shape: padded.join(","),
    stridesA: broadcastStrides(a, out).join(","),
    stridesB: broadcastStrides(b, out).join(","),
  };
}

const nums = (s: string) => s.split(",").map(Number);
const DIMS = Array.from({ length: MAX_BROADCAST_RANK }, (_, i) => i);

/** `out = a (op) b` with both operands broadcast through strides. */
export const binaryStrided: KernelSpec<BinaryStridedParams> = {
  name: "binary_strided",
  inputTypes: () => ["f32", "f32"],
  outputTypes: () => ["f32"],
  uniformFields: [
    ["n", "u32"],
    ...DIMS.map((d) => [`s${d}`, "u32"] as const),
    ...DIMS.map((d) => [`a${d}`, "u32"] as const),
    ...DIMS.map((d) => [`b${d}`, "u32"] as const),
  ],
  uniforms: (p) => [p.n, ...nums(p.shape), ...nums(p.stridesA), ...nums(p.stridesB)],
  variant: (p) => p.op,
  wgsl: (p) => {
    // Peel the output index from the last dimension to the first.
    const steps = [...DIMS].reverse().map((d) =>
      `  let c${d} = rest % u.s${d}; rest = rest / u.s${d};
  ia += c${d} * u.a${d}; ib += c${d} * u.b${d};`
    ).join("\n");
    return `${ELEMENTWISE_MAIN}
  var rest = i;
  var ia = 0u;
  var ib = 0u;
${steps}
  out0[i] = in0[ia] ${SYMBOL[p.op]} in1[ib];
}`;
  },
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: ([a, b], p) => {
    const shape = nums(p.shape), sa = nums(p.stridesA), sb = nums(p.stridesB);
    const f = APPLY[p.op];
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) {
      let rest = i, ia = 0, ib = 0;
      for (let d = MAX_BROADCAST_RANK - 1; d >= 0; d--) {
        const c = rest % shape[d];
        rest = Math.floor(rest / shape[d]);
        ia += c * sa[d];
        ib += c * sb[d];
      }
      out[i] = f(a[ia], b[ib]);
    }
    return [out];
  },
};

/** Parameters of {@link expand}: `in0` read through strides into the output's shape. */
export interface ExpandParams extends KernelParams {
  /** Elements of the output. */
  n: number;
  /** The output's shape, comma-separated, {@link MAX_BROADCAST_RANK} sizes. */
  shape: string;
  /** Strides of the input along the output's dimensions, comma-separated. */
  strides: string;
}

/** The parameters that expand `from` to the broadcast shape `to`. */
export function expandParams(from: readonly number[], to: readonly number[]): ExpandParams {
  const s = stridedParams("add", from, from, to);
  return { n: s.n, shape: s.shape, strides: s.stridesA };
}

/** `out = in0` broadcast to a larger shape (NumPy's `broadcast_to`, materialised). */
export const expand: KernelSpec<ExpandParams> = {
  name: "expand",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [
    ["n", "u32"],
    ...DIMS.map((d) => [`s${d}`, "u32"] as const),
    ...DIMS.map((d) => [`a${d}`, "u32"] as const),
  ],
  uniforms: (p) => [p.n, ...nums(p.shape), ...nums(p.strides)],
  variant: () => "",
  wgsl: () => {
    const steps = [...DIMS].reverse().map((d) =>
      `  let c${d} = rest % u.s${d}; rest = rest / u.s${d}; ia += c${d} * u.a${d};`
    ).join("\n");
    return `${ELEMENTWISE_MAIN}
  var rest = i;
  var ia = 0u;
${steps}
  out0[i] = in0[ia];
}`;
  },
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: ([a], p) => {
    const shape = nums(p.shape), sa = nums(p.strides);
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) {
      let rest = i, ia = 0;
      for (let d = MAX_BROADCAST_RANK - 1; d >= 0; d--) {
        ia += (rest % shape[d]) * sa[d];
        rest = Math.floor(rest / shape[d]);
      }
      out[i] = a[ia];
    }
    return [out];
  },
};
