/**
 * Shape and indexing kernels: a strided copy (permute, slices with a step), concatenation,
 * the inverse of a stepped slice, index selection and gathering with their scatter-add
 * gradients, and a host check of index values. Each has its CPU twin.
 *
 * @module
 */
import {
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";

/** The most dimensions the strided kernels read, after merging dimensions that allow it. */
export const MAX_STRIDED_RANK = 16;

/** The most dimensions of {@link scatterAdd} (its four per-dimension fields fill 256 bytes). */
export const MAX_SCATTER_RANK = 15;

/** The most tensors one {@link cat} kernel joins (8 storage bindings, one is the output). */
export const MAX_CAT_INPUTS = 7;

const DIMS = Array.from({ length: MAX_STRIDED_RANK }, (_, i) => i);
const nums = (s: string): number[] => s === "" ? [] : s.split(",").map(Number);
const padded = (s: string, rank = MAX_STRIDED_RANK): number[] => {
  const xs = nums(s);
  return [...xs, ...new Array(rank - xs.length).fill(1)];
};
const fields = (prefix: string, rank = MAX_STRIDED_RANK) =>
  DIMS.slice(0, rank).map((d) => [`${prefix}${d}`, "u32"] as const);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Row-major strides of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

/** Parameters of {@link stridedCopy}: `out[c] = in0[offset + sum_d c_d * strides_d]`. */
export interface StridedCopyParams extends KernelParams {
  /** Elements of the output. */
  n: number;
  /** The output's shape (merged), comma-separated, at most {@link MAX_STRIDED_RANK} sizes. */
  shape: string;
  /** Strides of the input along the output's dimensions, comma-separated. */
  strides: string;
  /** Where the first element is read. */
  offset: number;
}

/**
 * The parameters that read `shape` through `strides` from `offset`, with size-1 dimensions
 * dropped and neighbours that are contiguous in the input merged. Throws a RangeError when
 * more than {@link MAX_STRIDED_RANK} dimensions remain.
 */
export function stridedCopyParams(
  shape: readonly number[],
  strides: readonly number[],
  offset = 0,
): StridedCopyParams {
  const dims: [number, number][] = [];
  shape.forEach((size, d) => {
    if (size === 1) return;
    const last = dims[dims.length - 1];
    // An outer dimension merges into the previous one when it steps over it exactly.
    if (last && last[1] === strides[d] * size) last.splice(0, 2, last[0] * size, strides[d]);
    else dims.push([size, strides[d]]);
  });
  if (dims.length > MAX_STRIDED_RANK) {
    throw new RangeError(
      `Cannot copy shape [${shape.join(", ")}] through strides [${strides.join(", ")}]: ` +
        `at most ${MAX_STRIDED_RANK} dimensions remain supported once neighbours are merged`,
    );
  }
  return {
    n: sizeOf(shape),
    shape: dims.map(([s]) => s).join(","),
    strides: dims.map(([, t]) => t).join(","),
    offset,
  };
}

/** The WGSL lines that peel `i` over the first `rank` sizes `u.s*`, last first. */
const peel = (rank: number, use: (d: number) => string) =>
  DIMS.slice(0, rank).reverse().map((d) =>
    `  let c${d} = rest % u.s${d}; rest = rest / u.s${d};${use(d)}`
  ).join("\n");

/** Coordinates of element `i` over `shape`, last dimension fastest. */
function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}

/** A copy that reads its input through strides: permutations and stepped slices. */
export const stridedCopy: KernelSpec<StridedCopyParams> = {
  name: "strided_copy",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"], ["offset", "u32"], ...fields("s"), ...fields("t")],
  uniforms: (p) => [p.n, p.offset, ...padded(p.shape), ...padded(p.strides)],
  variant: (p) => String(nums(p.shape).length),
  wgsl: (p) =>
    `${ELEMENTWISE_MAIN}
  var rest = i;
  var src = u.offset;
${peel(nums(p.shape).length, (d) => ` src += c${d} * u.t${d};`)}
  out0[i] = in0[src];
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: ([a], p) => {
    const shape = nums(p.shape), strides = nums(p.strides);
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) {
      const c = coords(i, shape);
      out[i] = a[c.reduce((s, x, d) => s + x * strides[d], p.offset)];
    }
    return [out];
  },
};

/** Parameters of {@link cat}: inputs `[outer, sizes[t], inner]` joined along the middle. */
export interface CatParams extends KernelParams {
  outer: number;
  inner: number;
  /** Each input's size along the joined axis, comma-separated (2 to {@link MAX_CAT_INPUTS}). */
  sizes: string;
}

const CAT_BOUNDS = Array.from({ length: MAX_CAT_INPUTS + 1 }, (_, i) => i);
/** Where each input starts along the joined axis, then the total. */
const starts = (sizes: number[]) =>
  sizes.reduce((acc, s) => [...acc, acc[acc.length - 1] + s], [0]);

/** `out[o, j, i] = in_t[o, j - start_t, i]` where input `t` covers `j`: concatenation. */
export const cat: KernelSpec<CatParams> = {
  name: "cat",
  inputTypes: (p) => nums(p.sizes).map(() => "f32"),
  outputTypes: () => ["f32"],
  uniformFields: [
    ["n", "u32"],
    ["inner", "u32"],
    ["total", "u32"],
    ...CAT_BOUNDS.map((b) => [`o${b}`, "u32"] as const),
  ],
  uniforms: (p) => {
    const s = starts(nums(p.sizes));
    const total = s[s.length - 1];
    return [
      p.outer * total * p.inner,
      p.inner,
      total,
      ...CAT_BOUNDS.map((b) => s[Math.min(b, s.length - 1)]),
    ];
  },
  variant: (p) => String(nums(p.sizes).length),
  wgsl: (p) => {
    const count = nums(p.sizes).length;
    const branches = Array.from({ length: count }, (_, t) =>
      `if (j < u.o${t + 1}) {
    out0[i] = in${t}[(o * (u.o${t + 1} - u.o${t}) + j - u.o${t}) * u.inner + r];
  }`).join(" else ");
    return `${ELEMENTWISE_MAIN}
  let r = i % u.inner;
  let j = (i / u.inner) % u.total;
  let o = i / (u.inner * u.total);
  ${branches}
}`;
  },
  workgroups: (p) => {
    const s = starts(nums(p.sizes));
    return elementwiseWorkgroups(p.outer * s[s.length - 1] * p.inner);
  },
  cpu: (inputs, p) => {
    const sizes = nums(p.sizes);
    const s = starts(sizes);
    const total = s[s.length - 1];
    const out = new Float32Array(p.outer * total * p.inner);
    for (let o = 0; o < p.outer; o++) {
      inputs.forEach((x, t) => {
        const block = sizes[t] * p.inner;
        out.set(x.subarray(o * block, (o + 1) * block), (o * total + s[t]) * p.inner);
      });
    }
    return [out];
  },
};

/**
 * Parameters of {@link unslice}: the full tensor is `[outer, mid, inner]` and the slice
 * holds `length` entries of `mid` from `start`, `step` apart.
 */
export interface UnsliceParams extends KernelParams {
  outer: number;
  mid: number;
  inner: number;
  start: number;
  step: number;
  length: number;
}

/** The gradient of a stepped slice: the slice put back in place, zeros elsewhere. */
export const unslice: KernelSpec<UnsliceParams> = {
  name: "unslice",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [
    ["n", "u32"],
    ["mid", "u32"],
    ["inner", "u32"],
    ["start", "u32"],
    ["step", "u32"],
    ["length", "u32"],
  ],
  uniforms: (p) => [p.outer * p.mid * p.inner, p.mid, p.inner, p.start, p.step, p.length],
  variant: () => "",
  wgsl: () =>
    `${ELEMENTWISE_MAIN}
  let r = i % u.inner;
  let j = (i / u.inner) % u.mid;
  let o = i / (u.inner * u.mid);
  let l = (j - u.start) / u.step;
  let inside = j >= u.start && (j - u.start) % u.step == 0u && l < u.length;
  let at = min((o * u.length + l) * u.inner + r, arrayLength(&in0) - 1u);
  out0[i] = select(0.0, in0[at], inside);
}`,
  workgroups: (p) => elementwiseWorkgroups(p.outer * p.mid * p.inner),
  cpu: ([g], p) => {
    const out = new Float32Array(p.outer * p.mid * p.inner);
    for (let o = 0; o < p.outer; o++) {
      for (let l = 0; l < p.length; l++) {
        const to = (o * p.mid + p.start + l * p.step) * p.inner;
        out.set(g.subarray((o * p.length + l) * p.inner, (o * p.length + l + 1) * p.inner), to);
      }
    }
    return [out];
  },
};

/**
 * Parameters of {@link indexSelect} and {@link indexAdd}: the full tensor is
 * `[outer, mid, inner]`, the index holds `length` positions along `mid`.
 */
export interface IndexParams extends KernelParams {
  outer: number;
  mid: number;
  inner: number;
  length: number;
  /** One more input, ignored: a check the op waits for. @default {false} */
  gated?: boolean;
}

const gate = (p: { gated?: boolean }) => p.gated ? ["f32"] : [];
/** WGSL that sets `bad` where index value `v` is not a whole number in [0, bound). */
const validIndex = (v: string, bound: string) =>
  `${v} >= 0.0 && ${v} < f32(${bound}) && ${v} == floor(${v})`;
const NAN = `var nanBits = 0x7fc00000u; // a var: Tint rejects a NaN constant expression
  let nan = bitcast<f32>(nanBits);`;
const isIndex = (v: number, bound: number) => Number.isInteger(v) && v >= 0 && v < bound;

/**
 * `out[o, l, i] = in0[o, index[l], i]` with the index (`in1`) stored as float32; a value
 * that is not a whole number in [0, mid) gives NaN, never another element.
 */
export const indexSelect: KernelSpec<IndexParams> = {
  name: "index_select",
  inputTypes: (p) => ["f32", "f32", ...gate(p)],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"], ["mid", "u32"], ["inner", "u32"], ["length", "u32"]],
  uniforms: (p) => [p.outer * p.length * p.inner, p.mid, p.inner, p.length],
  variant: (p) => p.gated ? "gated" : "",
  wgsl: () =>
    `${ELEMENTWISE_MAIN}
  let r = i % u.inner;
  let l = (i / u.inner) % u.length;
  let o = i / (u.inner * u.length);
  let v = in1[l];
  ${NAN}
  let j = min(u32(max(v, 0.0)), u.mid - 1u);
  out0[i] = select(nan, in0[(o * u.mid + j) * u.inner + r], ${validIndex("v", "u.mid")});
}`,
  workgroups: (p) => elementwiseWorkgroups(p.outer * p.length * p.inner),
  cpu: ([x, index], p) => {
    const out = new Float32Array(p.outer * p.length * p.inner);
    for (let o = 0; o < p.outer; o++) {
      for (let l = 0; l < p.length; l++) {
        const j = index[l];
        const to = (o * p.length + l) * p.inner;
        if (!isIndex(j, p.mid)) out.fill(NaN, to, to + p.inner);
        else out.set(x.subarray((o * p.mid + j) * p.inner, (o * p.mid + j + 1) * p.inner), to);
      }
    }
    return [out];
  },
};

/**
 * `out = in0` plus, at `[o, index[l], i]`, `in2[o, l, i]` for every `l` (PyTorch's
 * `index_add`): each output sums its sources in order, so the result is deterministic.
 * A value of the index that is not a whole number in [0, mid) makes the output NaN.
 */
export const indexAdd: KernelSpec<IndexParams> = {
  name: "index_add",
  inputTypes: (p) => ["f32", "f32", "f32", ...gate(p)],
  outputTypes: () => ["f32"],
  uniformFields: indexSelect.uniformFields,
  uniforms: (p) => [p.outer * p.mid * p.inner, p.mid, p.inner, p.length],
  variant: (p) => p.gated ? "gated" : "",
  wgsl: () =>
    `${ELEMENTWISE_MAIN}
  let r = i % u.inner;
  let j = (i / u.inner) % u.mid;
  let o = i / (u.inner * u.mid);
  ${NAN}
  var acc = in0[i];
  for (var l = 0u; l < u.length; l++) {
    let v = in1[l];
    if (!(${validIndex("v", "u.mid")})) { acc = nan; }
    if (v == f32(j)) { acc += in2[(o * u.length + l) * u.inner + r]; }
  }
  out0[i] = acc;
}`,
  workgroups: (p) => elementwiseWorkgroups(p.outer * p.mid * p.inner),
  cpu: ([self, index, src], p) => {
    const out = self.slice();
    const valid = Array.from(index.subarray(0, p.length)).every((v) => isIndex(v, p.mid));
    if (!valid) return [out.fill(NaN)];
    for (let o = 0; o < p.outer; o++) {
      for (let l = 0; l < p.length; l++) {
        const to = (o * p.mid + index[l]) * p.inner, from = (o * p.length + l) * p.inner;
        for (let r = 0; r < p.inner; r++) out[to + r] = Math.fround(out[to + r] + src[from + r]);
      }
    }
    return [out];
  },
};

/**
 * Parameters of {@link gather}: `out[c] = in0[c with c_axis = index[c]]` for each
 * coordinate `c` of the index (`in1`), whose shape the output has.
 */
export interface GatherParams extends KernelParams {
  /** Elements of the index and the output. */
  n: number;
  axis: number;
  /** The index's shape, comma-separated, at most {@link MAX_STRIDED_RANK} sizes. */
  shape: string;
  /** The input's row-major strides, comma-separated. */
  strides: string;
  /** The input's size along `axis`. */
  size: number;
  /** One more input, ignored: a check the op waits for. @default {false} */
  gated?: boolean;
}

/** PyTorch's `gather`; an index that is not a whole number in [0, size) gives NaN. */
export const gather: KernelSpec<GatherParams> = {
  name: "gather",
  inputTypes: (p) => ["f32", "f32", ...gate(p)],
  outputTypes: () => ["f32"],
  uniformFields: [["n", "u32"], ["size", "u32"], ...fields("s"), ...fields("t")],
  uniforms: (p) => [p.n, p.size, ...padded(p.shape), ...padded(p.strides)],
  variant: (p) => `${nums(p.shape).length}|${p.axis}|${p.gated ? "gated" : ""}`,
  wgsl: (p) =>
    `${ELEMENTWISE_MAIN}
  var rest = i;
  var src = 0u;
${peel(nums(p.shape).length, (d) => d === p.axis ? "" : ` src += c${d} * u.t${d};`)}
  let v = in1[i];
  ${NAN}
  let j = min(u32(max(v, 0.0)), u.size - 1u);
  out0[i] = select(nan, in0[src + j * u.t${p.axis}], ${validIndex("v", "u.size")});
}`,
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: ([x, index], p) => {
    const shape = nums(p.shape), strides = nums(p.strides);
    const out = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) {
      const v = index[i];
      const c = coords(i, shape);
      c[p.axis] = v;
      out[i] = isIndex(v, p.size) ? x[c.reduce((s, y, d) => s + y * strides[d], 0)] : NaN;
    }
    return [out];
  },
};

/**
 * Parameters of {@link scatterAdd}: the output has `shape` (that of `in0`); the index
 * (`in1`) and the source (`in2`) are read through their own strides over `indexShape`.
 */
export interface ScatterAddParams extends KernelParams {
  /** Elements of the output. */
  n: number;
  axis: number;
  /** The output's shape, comma-separated, at most {@link MAX_SCATTER_RANK} sizes. */
  shape: string;
  /** The index's shape, comma-separated (as many sizes). */
  indexShape: string;
  /** The index's row-major strides, comma-separated. */
  indexStrides: string;
  /** The source's row-major strides, comma-separated. */
  srcStrides: string;
  /** One more input, ignored: a check the op waits for. @default {false} */
  gated?: boolean;
}

/**
 * PyTorch's `scatter_add` (out of place): `out = in0` plus `in2[c]` at `c with c_axis =
 * index[c]` for every coordinate `c` of the index. Each output sums its sources in order
 * (deterministic); an index value outside [0, size) makes its line NaN.
 */
export const scatterAdd: KernelSpec<ScatterAddParams> = {
  name: "scatter_add",
  inputTypes: (p) => ["f32", "f32", "f32", ...gate(p)],
  outputTypes: () => ["f32"],
  uniformFields: [
    ["n", "u32"],
    ...["s", "i", "a", "b"].flatMap((prefix) => fields(prefix, MAX_SCATTER_RANK)),
  ],
  uniforms: (p) => [
    p.n,
    ...[p.shape, p.indexShape, p.indexStrides, p.srcStrides].flatMap((s) =>
      padded(s, MAX_SCATTER_RANK)
    ),
  ],
  variant: (p) => `${nums(p.shape).length}|${p.axis}|${p.gated ? "gated" : ""}`,
  wgsl: (p) => {
    const rank = nums(p.shape).length, ax = p.axis;
    const others = DIMS.slice(0, rank).filter((d) => d !== ax);
    const inside = others.map((d) => `c${d} < u.i${d}`).join(" && ") || "true";
    return `${ELEMENTWISE_MAIN}
  var rest = i;
${peel(rank, () => "")}
  ${NAN}
  var acc = in0[i];
  if (${inside}) {
    let bi = 0u${others.map((d) => ` + c${d} * u.a${d}`).join("")};
    let bs = 0u${others.map((d) => ` + c${d} * u.b${d}`).join("")};
    for (var l = 0u; l < u.i${ax}; l++) {
      let v = in1[bi + l * u.a${ax}];
      if (!(${validIndex("v", `u.s${ax}`)})) { acc = nan; }
      if (v == f32(c${ax})) { acc += in2[bs + l * u.b${ax}]; }
    }
  }
  out0[i] = acc;
}`;
  },
  workgroups: (p) => elementwiseWorkgroups(p.n),
  cpu: ([self, index, src], p) => {
    const shape = nums(p.shape), ishape = nums(p.indexShape);
    const is = nums(p.indexStrides), ss = nums(p.srcStrides);
    const out = self.slice();
    const m = sizeOf(ishape);
    const lineOf = (c: number[]) => c.reduce((s, x, d) => d === p.axis ? s : s * shape[d] + x, 0);
    const bad = new Set<number>();
    for (let k = 0; k < m; k++) {
      const c = coords(k, ishape);
      const v = index[c.reduce((s, x, d) => s + x * is[d], 0)];
      if (!isIndex(v, shape[p.axis])) {
        bad.add(lineOf(c));
        continue;
      }
      const from = c.reduce((s, x, d) => s + x * ss[d], 0);
      c[p.axis] = v;
      const to = c.reduce((s, x, d) => s * shape[d] + x, 0);
      out[to] = Math.fround(out[to] + src[from]);
    }
    if (bad.size > 0) {
      for (let i = 0; i < p.n; i++) if (bad.has(lineOf(coords(i, shape)))) out[i] = NaN;
    }
    return [out];
  },
};

/** Parameters of {@link assertIndices}: the bound and the op, for the message. */
export interface AssertIndicesParams extends KernelParams {
  /** Index values must be whole numbers in [0, bound). */
  bound: number;
  /** What could not be done, as in "Cannot <what>: ...". */
  what: string;
}

/**
 * A host-only check of what `findBadLabel` found (`[position + 1, value]` or `[0, 0]`):
 * throws a RangeError naming the op and the index, so the op fails at the next
 * synchronisation. Outputs its input unchanged (zeros when the check passed).
 */
export const assertIndices: KernelSpec<AssertIndicesParams> = {
  name: "assert_indices",
  inputTypes: () => ["f32"],
  outputTypes: () => ["f32"],
  uniformFields: [],
  uniforms: () => [],
  variant: () => "",
  wgsl: () => {
    throw new TypeError("assert_indices runs on the host only");
  },
  workgroups: () => [1, 1, 1],
  cpu: ([found], p) => {
    if (found[0] !== 0) {
      throw new RangeError(
        `Cannot ${p.what}: index ${found[1]} at position ${found[0] - 1} is not a whole ` +
          `number in [0, ${p.bound})`,
      );
    }
    return [found.slice()];
  },
};
