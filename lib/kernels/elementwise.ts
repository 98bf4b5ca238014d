/**
 * Elementwise kernels: binary arithmetic with broadcasting, unary functions, fills and
 * a counter-based random generator whose CPU twin gives the same bits.
 *
 * @module
 */
import {
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";

/** The binary operators. */
export type BinaryOp = "add" | "sub" | "mul" | "div";
/**
 * How the second operand is broadcast: same shape, a row vector of length `cols`, a
 * tensor of one element (`"one"`), or the scalar uniform.
 */
export type Broadcast = "same" | "row" | "one" | "scalar";

/** Parameters of {@link binary}. */
export interface BinaryParams extends KernelParams {
  op: BinaryOp;
  broadcast: Broadcast;
  /** Elements of the output. */
  n: number;
  /** Row length, for `broadcast: "row"`. */
  cols: number;
  /** The scalar, for `broadcast: "scalar"`. */
  scalar: number;
}

/** The WGSL operator of each binary op. */
export const SYMBOL: Record<BinaryOp, string> = { add: "+", sub: "-", mul: "*", div: "/" };
/** The CPU twin of each binary op, rounded to float32 by the array it is stored in. */
export const APPLY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
};

/** Whether the binary op reads and writes `vec4<f32>`: every length involved divides by 4. */
function binaryVec4(p: BinaryParams): boolean {
  return p.n % 4 === 0 && p.broadcast !== "one" && (p.broadcast !== "row" || p.cols % 4 === 0);
}

/** `out = a (op) b`, b broadcast as the parameters say; four elements at a time when it can. */
export const binary: KernelSpec<BinaryParams> = {
  name: "binary",
  inputTypes: (p) => {
    const t = binaryVec4(p) ? "vec4<f32>" : "f32";
    return p.broadcast === "scalar" ? [t] : p.broadcast === "one" ? [t, "f32"] : [t, t];
  },
  outputTypes: (p) => [binaryVec4(p) ? "vec4<f32>" : "f32"],
  uniformFields: [["n", "u32"], ["cols", "u32"], ["scalar", "f32"]],
  uniforms: (p) => binaryVec4(p) ? [p.n / 4, p.cols / 4, p.scalar] : [p.n, p.cols, p.scalar],
  variant: (p) => `${p.op}-${p.broadcast}-${binaryVec4(p) ? "vec4" : "f32"}`,
  wgsl: (p) => {
    const b = p.broadcast === "same"
      ? "in1[i]"
      : p.broadcast === "row"
      ? "in1[i % u.cols]"
      : p.broadcast === "one"
      ? "in1[0]"
      : "u.scalar";
    return `${ELEMENTWISE_MAIN}
  out0[i] = in0[i] ${SYMBOL[p.op]} ${b};
}`;
  },
  workgroups: (p) => elementwiseWorkgroups(p.n, binaryVec4(p) ? 4 : 1),
  elementwise: {
    n: (p) => p.n,
    reads: (p) =>
      p.broadcast === "same"
        ? ["same", "same"]
        : p.broadcast === "row"
        ? ["same", { row: p.cols }]
        : p.broadcast === "one"
        ? ["same", "one"]
        : ["same"],
    constants: (p) => p.broadcast === "scalar" ? [p.scalar] : [],
    expression: (p, [a, b], [scalar]) =>
      `(${a} ${SYMBOL[p.op]} ${p.broadcast === "scalar" ? scalar : b})`,
  },
  cpu: ([a, b], p) => {
    const out = new Float32Array(p.n);
    const f = APPLY[p.op];
    if (p.broadcast === "same") { for (let i = 0; i < p.n; i++) out[i] = f(a[i], b[i]); }
    else if (p.broadcast === "row") {
      for (let i = 0; i < p.n; i++) out[i] = f(a[i], b[i % p.cols]);
    } else if (p.broadcast === "one") {
      for (let i = 0; i < p.n; i++) out[i] = f(a[i], b[0]);
    } else {
      const s = Math.fround(p.scalar);
      for (let i = 0; i < p.n; i++) out[i] = f(a[i], s);
    }
    return [out];
  },
};

/** The unary functions. `copy` is the identity (reshape and detach copy through it). */
export type UnaryOp = "relu" | "neg" | "exp" | "log" | "tanh" | "sigmoid" | "sqrt" | "copy";

/** Parameters of {@link unary}. */
export interface UnaryParams extends KernelParams {
  op: UnaryOp;
  n: number;
}

/**
 * The WGSL of each unary function of `x` (f32 or vec4<f32>, of type `T`). tanh and sigmoid
 * are written so that no intermediate overflows: WGSL's own may give NaN for large inputs.
 */
const UNARY_WGSL: Record<UnaryOp, string> = {
  // x itself where x > 0 or x is NaN (found by its bits: see layout.ts), as in PyTorch.
  relu: "select(T(0.0), x, (x > T(0.0)) | is_nan(x))",
  neg: "-x",
  exp: "exp(x)",
  log: "log(x)",
  tanh: "sign(x) * (T(1.0) - exp(T(-2.0) * abs(x))) / (T(1.0) + exp(T(-2.0) * abs(x)))",
  sigmoid: "select(exp(x) / (T(1.0) + exp(x)), T(1.0) / (T(1.0) + exp(-x)), x >= T(0.0))",
  sqrt: "sqrt(x)",
  copy: "x",
};

/** The CPU twin of each unary function. */
export const UNARY: Record<UnaryOp, (x: number) => number> = {
  relu: (x) => x > 0 || Number.isNaN(x) ? x : 0,
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  tanh: Math.tanh,
  sigmoid: (x) => x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)),
  sqrt: Math.sqrt,
  copy: (x) => x,
};

/** `out = f(a)`, elementwise; four elements at a time when the length divides by 4. */
export const unary: KernelSpec<UnaryParams> = {
  name: "unary",
  inputTypes: (p) => [p.n % 4 === 0 ? "vec4<f32>" : "f32"],
  outputTypes: (p) => [p.n % 4 === 0 ? "vec4<f32>" : "f32"],
  uniformFields: [["n", "u32"]],
  uniforms: (p) => [p.n % 4 === 0 ? p.n / 4 : p.n],
  variant: (p) => `${p.op}-${p.n % 4 === 0 ? "vec4" : "f32"}`,
  wgsl: (p) => {
    const t = p.n % 4 === 0 ? "vec4<f32>" : "f32";
    if (!(p.op in UNARY_WGSL)) throw new TypeError(`Cannot compile unary op "${p.op}"`);
    const nan = p.op === "relu"
      ? `fn is_nan(x: T) -> ${t === "f32" ? "bool" : "vec4<bool>"} {
  return (bitcast<${t === "f32" ? "u32" : "vec4<u32>"}>(x) & ${
        t === "f32" ? "0x7fffffffu" : "vec4<u32>(0x7fffffffu)"
      }) > ${t === "f32" ? "0x7f800000u" : "vec4<u32>(0x7f800000u)"};
}
`
      : "";
    return `alias T = ${t};
${nan}${ELEMENTWISE_MAIN}
  let x = in0[i];
  out0[i] = ${UNARY_WGSL[p.op]};
}`;
  },
  workgroups: (p) => elementwiseWorkgroups(p.n, p.n % 4 === 0 ? 4 : 1),
  elementwise: {
    n: (p) => p.n,
    reads: () => ["same"],
    expression: (p, [x]) => {
      if (!(p.op in UNARY_WGSL)) throw new TypeError(`Cannot compile unary op "${p.op}"`);
      return `(${UNARY_WGSL[p.op].replace(/\bx\b/g, x)})`;
    },
  },
  cpu: ([a], p) => {
    const f = UNARY[p.op];
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) out[i] = f(a[i]);
    return [out];
  },
};

/** Parameters of {@link fill}. */
export interface FillParams extends KernelParams {
  n: number;
  value: number;
}

/** `out = value` everywhere. */
export const fill: KernelSpec<FillParams> = {
  name: "fill",
  inputTypes: () => [],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"], ["value", "f32"]],
  uniforms: (p) => [p.n, p.value],
  variant: () => "",
  wgsl: () =>
    `${ELEMENTWISE_MAIN}
  out0[i] = u.value;
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  elementwise: {
    n: (p) => p.n,
    reads: () => [],
    constants: (p) => [p.value],
    expression: (_, __, [value]) => value,
  },
  cpu: (_, p) => [new Float32Array(p.n).fill(p.value)],
};

/** Parameters of {@link random}. */
export interface RandomParams extends KernelParams {
  n: number;
  /** A 32-bit unsigned seed. */
  seed: number;
}

/** {@link pcgHash} in WGSL, for the kernels that draw random numbers (random, randn, dropout). */
export const PCG_WGSL = `fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}`;

/** PCG hash (O'Neill's RXS-M-XS output of one LCG step), the same bits on the CPU and in WGSL. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The uniform value in [0, 1) at `index` of the stream `seed`, exactly as the WGSL computes it. */
export function uniformAt(seed: number, index: number): number {
  return (pcgHash((index ^ pcgHash(seed)) >>> 0) >>> 8) / 16777216;
}

/** Uniform random numbers in [0, 1): element i is a hash of (seed, i), so every device agrees. */
export const random: KernelSpec<RandomParams> = {
  name: "random",
  inputTypes: () => [],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"], ["seed", "u32"]],
  uniforms: (p) => [p.n, p.seed],
  variant: () => "",
  wgsl: () =>
    `${PCG_WGSL}
${ELEMENTWISE_MAIN}
  out0[i] = f32(pcg(i ^ pcg(u.seed)) >> 8u) / 16777216.0;
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: (_, p) => {
    const out = new Float32Array(p.n);
    const s = pcgHash(p.seed);
    for (let i = 0; i < p.n; i++) out[i] = (pcgHash((i ^ s) >>> 0) >>> 8) / 16777216;
    return [out];
  },
};
