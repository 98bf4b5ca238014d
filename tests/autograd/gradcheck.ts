/**
 * Gradient checks: an expression over the Tensor ops is run twice, once by autopar (forward
 * and backward, in float32 on a device) and once by a float64 interpreter written here in
 * plain JS, apart from the kernels' CPU twins. The autograd gradient of
 * `sum(expr(inputs) * w)`, for a fixed random weighting `w`, must match float64 central
 * differences of the interpreter within a tolerance suited to float32.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cpu, type Device, fromArray, type Tensor } from "../../mod.ts";
import { assertClose } from "../assert_close.ts";

/** A binary op: elementwise with NumPy broadcasting. */
export type BinaryName = "add" | "sub" | "mul" | "div";
/** A unary elementwise op. */
export type UnaryName = "neg" | "exp" | "log" | "tanh" | "sigmoid" | "sqrt" | "relu";
/** A reduction. */
export type ReduceName = "sum" | "mean" | "max" | "logSumExp";

/** An expression over the inputs, run by {@link evalTensor} and by {@link evalRef}. */
export type Expr =
  | { readonly op: "input"; readonly index: number }
  | { readonly op: BinaryName; readonly a: Expr; readonly b: Expr | number }
  | { readonly op: UnaryName; readonly x: Expr }
  | {
    readonly op: ReduceName;
    readonly x: Expr;
    readonly axis?: number;
    readonly keepdim?: boolean;
  }
  | { readonly op: "reshape"; readonly x: Expr; readonly shape: readonly number[] }
  | { readonly op: "transpose"; readonly x: Expr }
  | { readonly op: "expandTo"; readonly x: Expr; readonly shape: readonly number[] }
  | { readonly op: "logSoftmax"; readonly x: Expr; readonly axis: number }
  | { readonly op: "crossEntropy"; readonly x: Expr; readonly labels: readonly number[] }
  | {
    readonly op: "mm";
    readonly a: Expr;
    readonly b: Expr;
    readonly transA: boolean;
    readonly transB: boolean;
  }
  | { readonly op: "toHost"; readonly x: Expr };

/** Builders of {@link Expr}, so that a case reads like the Tensor code it stands for. */
export const ex = {
  input: (index: number): Expr => ({ op: "input", index }),
  add: (a: Expr, b: Expr | number): Expr => ({ op: "add", a, b }),
  sub: (a: Expr, b: Expr | number): Expr => ({ op: "sub", a, b }),
  mul: (a: Expr, b: Expr | number): Expr => ({ op: "mul", a, b }),
  div: (a: Expr, b: Expr | number): Expr => ({ op: "div", a, b }),
  unary: (op: UnaryName, x: Expr): Expr => ({ op, x }),
  reduce: (op: ReduceName, x: Expr, axis?: number, keepdim?: boolean): Expr => ({
    op,
    x,
    axis,
    keepdim,
  }),
  reshape: (x: Expr, shape: readonly number[]): Expr => ({ op: "reshape", x, shape }),
  transpose: (x: Expr): Expr => ({ op: "transpose", x }),
  expandTo: (x: Expr, shape: readonly number[]): Expr => ({ op: "expandTo", x, shape }),
  logSoftmax: (x: Expr, axis: number): Expr => ({ op: "logSoftmax", x, axis }),
  crossEntropy: (x: Expr, labels: readonly number[]): Expr => ({ op: "crossEntropy", x, labels }),
  mm: (a: Expr, b: Expr, transA = false, transB = false): Expr => ({
    op: "mm",
    a,
    b,
    transA,
    transB,
  }),
  toHost: (x: Expr): Expr => ({ op: "toHost", x }),
};

/** The expression as Tensor code, for failure messages: `x0.mul(x1).sum(0)`. */
export function show(e: Expr): string {
  switch (e.op) {
    case "input":
      return `x${e.index}`;
    case "add":
    case "sub":
    case "mul":
    case "div":
      return `${show(e.a)}.${e.op}(${typeof e.b === "number" ? e.b : show(e.b)})`;
    case "sum":
    case "mean":
    case "max":
    case "logSumExp": {
      const keep = e.keepdim ? ", { keepdim: true }" : "";
      const args = e.axis === undefined ? (keep ? `undefined${keep}` : "") : `${e.axis}${keep}`;
      return `${show(e.x)}.${e.op}(${args})`;
    }
    case "reshape":
    case "expandTo":
      return `${show(e.x)}.${e.op}([${e.shape.join(", ")}])`;
    case "transpose":
      return `${show(e.x)}.transpose()`;
    case "logSoftmax":
      return `${show(e.x)}.logSoftmax(${e.axis})`;
    case "crossEntropy":
      return `${show(e.x)}.crossEntropy([${e.labels.join(", ")}])`;
    case "mm":
      return `${show(e.a)}.mm(${show(e.b)}, { transA: ${e.transA}, transB: ${e.transB} })`;
    case "toHost":
      return `${show(e.x)}.to(cpu())`;
    default:
      return `${show(e.x)}.${e.op}()`;
  }
}

/**
 * Runs `e` with autopar's ops on `inputs`. Every tensor it makes is pushed to `made`, so that
 * the caller can dispose them once backward has run. A subexpression used twice is
 * computed once, so the tape sees the same tensor twice.
 */
export function evalTensor(e: Expr, inputs: readonly Tensor[], made: Tensor[] = []): Tensor {
  const memo = new Map<Expr, Tensor>();
  const run = (e: Expr): Tensor => {
    const hit = memo.get(e);
    if (hit) return hit;
    const t = compute(e);
    if (e.op !== "input") made.push(t);
    memo.set(e, t);
    return t;
  };
  const compute = (e: Expr): Tensor => {
    switch (e.op) {
      case "input":
        return inputs[e.index];
      case "add":
      case "sub":
      case "mul":
      case "div":
        return run(e.a)[e.op](typeof e.b === "number" ? e.b : run(e.b));
      case "sum":
      case "mean":
      case "max":
      case "logSumExp":
        return run(e.x)[e.op](e.axis, { keepdim: e.keepdim });
      case "reshape":
        return run(e.x).reshape(e.shape);
      case "transpose":
        return run(e.x).transpose();
      case "expandTo":
        return run(e.x).expandTo(e.shape);
      case "logSoftmax":
        return run(e.x).logSoftmax(e.axis);
      case "crossEntropy": {
        const x = run(e.x);
        const labels = fromArray(e.labels, [e.labels.length], { device: x.device });
        made.push(labels);
        return x.crossEntropy(labels);
      }
      case "mm":
        return run(e.a).mm(run(e.b), { transA: e.transA, transB: e.transB });
      case "toHost":
        return run(e.x).to(cpu());
      default:
        return run(e.x)[e.op]();
    }
  };
  return run(e);
}

/** A float64 array in row-major order. */
export interface Ref {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The NumPy broadcast of two shapes, or undefined when they do not broadcast. */
export function broadcastShapes(
  a: readonly number[],
  b: readonly number[],
): number[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const m = a[a.length - rank + i] ?? 1;
    const n = b[b.length - rank + i] ?? 1;
    if (m !== n && m !== 1 && n !== 1) return undefined;
    out.push(Math.max(m, n));
  }
  return out;
}

/** For each element of `out`, the index of the element of `shape` that broadcasts to it. */
function sourceIndex(out: readonly number[], shape: readonly number[]): Int32Array {
  const lead = out.length - shape.length;
  const index = new Int32Array(sizeOf(out));
  const coord = new Array(out.length).fill(0);
  for (let k = 0; k < index.length; k++) {
    let j = 0;
    for (let d = 0; d < shape.length; d++) {
      j = j * shape[d] + (shape[d] === 1 ? 0 : coord[lead + d]);
    }
    index[k] = j;
    for (let d = out.length - 1; d >= 0; d--) {
      if (++coord[d] < out[d]) break;
      coord[d] = 0;
    }
  }
  return index;
}

const UNARY: Record<UnaryName, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  sqrt: Math.sqrt,
  relu: (x) => Math.max(x, 0),
};

const BINARY: Record<BinaryName, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
};

/** `[outer, mid, inner]` around `axis` (which may be negative). */
function split(shape: readonly number[], axis: number) {
  const rank = Math.max(shape.length, 1);
  const ax = axis < 0 ? axis + rank : axis;
  return {
    ax,
    outer: sizeOf(shape.slice(0, ax)),
    mid: shape[ax] ?? 1,
    inner: sizeOf(shape.slice(ax + 1)),
  };
}

function reduceRef(x: Ref, op: ReduceName, axis: number | undefined, keepdim: boolean): Ref {
  const combine = (values: number[]) => {
    if (op === "max") return Math.max(...values);
    if (op === "logSumExp") {
      const m = Math.max(...values);
      return m + Math.log(values.reduce((s, v) => s + Math.exp(v - m), 0));
    }
    return values.reduce((a, b) => a + b, 0) / (op === "mean" ? values.length : 1);
  };
  if (axis === undefined) {
    return {
      shape: keepdim ? x.shape.map(() => 1) : [],
      data: Float64Array.of(combine([...x.data])),
    };
  }
  const { ax, outer, mid, inner } = split(x.shape, axis);
  const data = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const line = Array.from({ length: mid }, (_, j) => x.data[(o * mid + j) * inner + i]);
      data[o * inner + i] = combine(line);
    }
  }
  const shape = x.shape.length === 0
    ? []
    : keepdim
    ? x.shape.map((s, i) => i === ax ? 1 : s)
    : x.shape.filter((_, i) => i !== ax);
  return { shape, data };
}

function mmRef(a: Ref, b: Ref, transA: boolean, transB: boolean): Ref {
  const [M, K] = transA ? [a.shape[1], a.shape[0]] : a.shape;
  const N = transB ? b.shape[0] : b.shape[1];
  const A = (i: number, k: number) => transA ? a.data[k * M + i] : a.data[i * K + k];
  const B = (k: number, j: number) => transB ? b.data[j * K + k] : b.data[k * N + j];
  const data = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A(i, k) * B(k, j);
      data[i * N + j] = s;
    }
  }
  return { shape: [M, N], data };
}

/** Runs `e` in float64 on `inputs` (plain JS, one loop per op). */
export function evalRef(e: Expr, inputs: readonly Ref[]): Ref {
  const memo = new Map<Expr, Ref>();
  const run = (e: Expr): Ref => {
    let r = memo.get(e);
    if (!r) memo.set(e, r = computeRef(e, run, inputs));
    return r;
  };
  return run(e);
}

function computeRef(e: Expr, run: (e: Expr) => Ref, inputs: readonly Ref[]): Ref {
  switch (e.op) {
    case "input":
      return inputs[e.index];
    case "add":
    case "sub":
    case "mul":
    case "div": {
      const f = BINARY[e.op];
      const a = run(e.a);
      if (typeof e.b === "number") {
        const s = e.b;
        return { shape: a.shape, data: a.data.map((v) => f(v, s)) };
      }
      const b = run(e.b);
      const shape = broadcastShapes(a.shape, b.shape);
      if (!shape) throw new RangeError(`reference: [${a.shape}] and [${b.shape}] do not broadcast`);
      const ia = sourceIndex(shape, a.shape);
      const ib = sourceIndex(shape, b.shape);
      return { shape, data: Float64Array.from(ia, (j, k) => f(a.data[j], b.data[ib[k]])) };
    }
    case "sum":
    case "mean":
    case "max":
    case "logSumExp":
      return reduceRef(run(e.x), e.op, e.axis, e.keepdim ?? false);
    case "reshape": {
      const x = run(e.x);
      const known = sizeOf(e.shape.filter((n) => n !== -1));
      const shape = e.shape.map((n) => n === -1 ? x.data.length / known : n);
      assert.equal(sizeOf(shape), x.data.length, `reference: reshape to [${e.shape}]`);
      return { shape, data: x.data };
    }
    case "transpose": {
      const x = run(e.x);
      const [rows, cols] = x.shape;
      const data = new Float64Array(rows * cols);
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) data[j * rows + i] = x.data[i * cols + j];
      }
      return { shape: [cols, rows], data };
    }
    case "expandTo": {
      const x = run(e.x);
      return {
        shape: e.shape,
        data: Float64Array.from(sourceIndex(e.shape, x.shape), (j) => x.data[j]),
      };
    }
    case "logSoftmax": {
      const x = run(e.x);
      const { outer, mid, inner } = split(x.shape, e.axis);
      const data = new Float64Array(x.data.length);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const at = (j: number) => (o * mid + j) * inner + i;
          let m = -Infinity;
          for (let j = 0; j < mid; j++) m = Math.max(m, x.data[at(j)]);
          let s = 0;
          for (let j = 0; j < mid; j++) s += Math.exp(x.data[at(j)] - m);
          for (let j = 0; j < mid; j++) data[at(j)] = x.data[at(j)] - m - Math.log(s);
        }
      }
      return { shape: x.shape, data };
    }
    case "crossEntropy": {
      const x = run(e.x);
      const [rows, cols] = x.shape;
      let total = 0;
      for (let r = 0; r < rows; r++) {
        const row = x.data.subarray(r * cols, r * cols + cols);
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
        total += lse - row[e.labels[r]];
      }
      return { shape: [], data: Float64Array.of(total / rows) };
    }
    case "mm":
      return mmRef(run(e.a), run(e.b), e.transA, e.transB);
    case "toHost":
      return run(e.x);
    default: {
      const f = UNARY[e.op];
      const x = run(e.x);
      return { shape: x.shape, data: x.data.map(f) };
    }
  }
}

/** Children of `e`. */
function argsOf(e: Expr): Expr[] {
  if (e.op === "input") return [];
  if ("a" in e) return typeof e.b === "number" ? [e.a] : [e.a, e.b];
  return [e.x];
}

/**
 * How near `e` runs to where it is not smooth, in float64 at `inputs`: `margin`, the least
 * distance of a relu input from 0, of a log or sqrt input from 0, of a denominator from 0,
 * and between the two largest values of a line that max reduces; and `largest`, the largest
 * magnitude of any value computed. Central differences are only meaningful far from kinks.
 */
export function smoothness(e: Expr, inputs: readonly Ref[]): { margin: number; largest: number } {
  let margin = Infinity;
  let largest = 0;
  const seen = new Set<Expr>();
  const visit = (e: Expr) => {
    if (seen.has(e)) return;
    seen.add(e);
    argsOf(e).forEach(visit);
    const value = evalRef(e, inputs);
    for (const v of value.data) largest = Math.max(largest, Math.abs(v));
    const x = argsOf(e).map((a) => evalRef(a, inputs));
    if (e.op === "relu" || e.op === "log" || e.op === "sqrt") {
      for (const v of x[0].data) margin = Math.min(margin, e.op === "relu" ? Math.abs(v) : v);
    } else if (e.op === "div") {
      const b = typeof e.b === "number" ? [e.b] : x[1].data;
      for (const v of b) margin = Math.min(margin, Math.abs(v));
    } else if (e.op === "max") {
      const lines = e.axis === undefined ? [[...x[0].data]] : (() => {
        const { outer, mid, inner } = split(x[0].shape, e.axis);
        return Array.from({ length: outer * inner }, (_, k) =>
          Array.from(
            { length: mid },
            (_, j) => x[0].data[(Math.floor(k / inner) * mid + j) * inner + k % inner],
          ));
      })();
      for (const line of lines) {
        const sorted = line.sort((p, q) => q - p);
        if (sorted.length > 1) margin = Math.min(margin, sorted[0] - sorted[1]);
      }
    }
  };
  visit(e);
  return { margin, largest };
}

/** An input of a check: its shape and values (rounded to float32 for both sides). */
export interface Input {
  readonly shape: readonly number[];
  readonly values: ArrayLike<number>;
}

/** Options of {@link gradcheck}. */
export interface GradcheckOptions {
  /** Where autopar runs the expression (the inputs are made there). */
  device: Device;
  /**
   * Relative tolerance, of the larger of 1 and the largest gradient of the input.
   * @default {2e-4}
   */
  tol?: number;
  /**
   * Seed of the weighting `w` of the output.
   * @default {1}
   */
  seed?: number;
  /** What the failure messages call the check. @default {show(expr)} */
  what?: string;
}

/** A small deterministic generator of float32 values in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.fround(((t ^ (t >>> 14)) >>> 0) / 2 ** 32);
  };
}

/** `count` float32 values in [lo, hi) from `seed`. */
export function uniform(count: number, seed: number, lo = -1, hi = 1): number[] {
  const next = prng(seed);
  return Array.from({ length: count }, () => Math.fround(lo + (hi - lo) * next()));
}

/** Weights of magnitude in [0.5, 1.5) and random sign, so that every output element counts. */
function weights(count: number, seed: number): Float64Array {
  const next = prng(seed ^ 0x5bd1e995);
  return Float64Array.from(
    { length: count },
    () => Math.fround((next() < 0.5 ? -1 : 1) * (0.5 + next())),
  );
}

/** `sum(ref(inputs) * w)` in float64. */
function refLoss(e: Expr, inputs: readonly Ref[], w: Float64Array): number {
  const out = evalRef(e, inputs).data;
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i] * w[i];
  return s;
}

/**
 * Float64 central differences of `sum(evalRef(e, inputs) * w)` with respect to every input
 * element, at step `h`.
 */
export function numericGradients(
  e: Expr,
  inputs: readonly Ref[],
  w: Float64Array,
  h = 1e-6,
): Float64Array[] {
  return inputs.map((x, k) => {
    const g = new Float64Array(x.data.length);
    for (let j = 0; j < x.data.length; j++) {
      const probe = (delta: number) => {
        const data = x.data.slice();
        data[j] += delta;
        return refLoss(e, inputs.map((y, i) => i === k ? { shape: y.shape, data } : y), w);
      };
      g[j] = (probe(h) - probe(-h)) / (2 * h);
    }
    return g;
  });
}

/**
 * Checks autopar's gradient of `sum(e(inputs) * w)` on `options.device` against float64
 * central differences of the reference, and its value against the reference value. Fails
 * naming the expression, the input and the first element off.
 */
export async function gradcheck(
  e: Expr,
  inputs: readonly Input[],
  options: GradcheckOptions,
): Promise<void> {
  const { device, tol = 2e-4, seed = 1 } = options;
  const what = options.what ?? show(e);
  const refs: Ref[] = inputs.map((x) => ({
    shape: x.shape,
    data: Float64Array.from(Float32Array.from(x.values)),
  }));
  const expected = evalRef(e, refs);
  const w = weights(expected.data.length, seed);
  const made: Tensor[] = [];
  const leaves = inputs.map((x) => fromArray(x.values, x.shape, { device, requiresGrad: true }));
  const out = evalTensor(e, leaves, made);
  assert.deepEqual(out.shape, expected.shape, `${what}: shape of the output`);
  const wt = fromArray(Float32Array.from(w), out.shape, { device: out.device });
  const weighted = out.mul(wt);
  const loss = weighted.sum();
  loss.backward();
  const numeric = numericGradients(e, refs, w);
  const value = refLoss(e, refs, w);
  const scale = expected.data.reduce((s, v, i) => s + Math.abs(v * w[i]), 0);
  assertClose(await loss.data(), [value], tol, `${what}: value`, scale);
  for (const [k, leaf] of leaves.entries()) {
    const g = leaf.grad;
    assert.ok(g, `${what}: x${k} got no gradient`);
    assert.equal(g.device, device, `${what}: device of the gradient of x${k}`);
    assert.deepEqual(g.shape, leaf.shape, `${what}: shape of the gradient of x${k}`);
    const largest = numeric[k].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(await g.data(), numeric[k], tol, `${what}: gradient of x${k}`, largest);
  }
  for (const t of [...made, ...leaves, wt, weighted, loss]) t.dispose();
}
