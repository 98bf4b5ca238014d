/**
 * Matrix product `out0[M, N] = op(A) * op(B)` of row-major float32 matrices, with an
 * optional transpose of either operand, and its CPU twin.
 *
 * @module
 */

import { type KernelParams, type KernelSpec, spreadWorkgroups } from "./kernel.ts";

/** Sizes and transposes of a matrix product `op(A)[M, K] * op(B)[K, N]`. */
export interface MatmulParams extends KernelParams {
  /** Rows of `op(A)` and of the result. */
  M: number;
  /** Columns of `op(B)` and of the result. */
  N: number;
  /** Columns of `op(A)`, rows of `op(B)`. */
  K: number;
  /** `in0` is stored as `[K, M]` and used transposed. */
  transA: boolean;
  /** `in1` is stored as `[N, K]` and used transposed. */
  transB: boolean;
  /**
   * Output rows per invocation ({@link MatmulTiling.tm}); the four tiling fields come from
   * {@link matmulTilingFor}, spread into the parameters (kernel parameters are flat).
   * @default {DEFAULT_MATMUL_TILING.tm}
   */
  tm?: number;
  /**
   * Output columns per invocation.
   * @default {DEFAULT_MATMUL_TILING.tn}
   */
  tn?: number;
  /**
   * Invocations per workgroup along the columns.
   * @default {DEFAULT_MATMUL_TILING.wx}
   */
  wx?: number;
  /**
   * Invocations per workgroup along the rows.
   * @default {DEFAULT_MATMUL_TILING.wy}
   */
  wy?: number;
  /**
   * Products computed by one dispatch (a batch), each `op(A_b) * op(B_b)`, written one
   * after the other.
   * @default {1}
   */
  batch?: number;
  /**
   * Elements from one product's `in0` to the next one's; 0 uses the same `A` for all.
   * @default {M * K}
   */
  strideA?: number;
  /**
   * Elements from one product's `in1` to the next one's; 0 uses the same `B` for all.
   * @default {K * N}
   */
  strideB?: number;
}

/** How the work is cut: outputs per invocation (`tm` x `tn`) and invocations per workgroup. */
export interface MatmulTiling {
  /** Output rows per invocation, a multiple of 4. */
  tm: number;
  /** Output columns per invocation, a multiple of 4. */
  tn: number;
  /** Invocations per workgroup along the columns. */
  wx: number;
  /** Invocations per workgroup along the rows. */
  wy: number;
}

/**
 * The tiling of {@link matmul}, chosen by measurement on llvmpipe (`bench/matmul.ts --sweep`):
 * 32x32 outputs per invocation ran about 1.3x faster at 512, but LLVM then takes about 30 s
 * to compile each variant (16x16: about 3 s; Mesa caches compiled shaders on disk).
 */
export const DEFAULT_MATMUL_TILING: MatmulTiling = { tm: 16, tn: 16, wx: 4, wy: 4 };

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const XYZW = ["x", "y", "z", "w"];

/** Whether each operand is read as `vec4<f32>`: needs its contiguous dimension divisible by 4. */
function vectorised(p: MatmulParams): { vecA: boolean; vecB: boolean } {
  return {
    vecA: (p.transA ? p.M : p.K) % 4 === 0,
    vecB: (p.transB ? p.K : p.N) % 4 === 0,
  };
}

function blocks(p: MatmulParams, t: MatmulTiling): { x: number; y: number } {
  return { x: Math.ceil(p.N / (t.wx * t.tn)), y: Math.ceil(p.M / (t.wy * t.tm)) };
}

/**
 * WGSL body. Each invocation accumulates a `tm` x `tn` block in registers, reading four
 * steps of K at a time. Rows and columns past the edge are clamped (read valid memory,
 * never stored), so only the final stores are bounds-checked; a scalar loop does K % 4.
 */
function body(
  p: MatmulParams,
  t: MatmulTiling,
  stores: (grid: BodyGrid) => string[] = storeLines,
): string {
  const grid = bodyGrid(p, t);
  const a = aLoads(p, grid);
  const b = bLoads(p, grid);
  const text = kernelText(t, {
    setup: setupLines(p, grid),
    loads: [...a.loads, ...b.loads],
    fmas: fmaLines(grid, a.at, b.at),
    tail: tailLines(p, grid),
    stores: stores(grid),
  });
  return withBlock(p, text);
}

/** The index ranges and operand layouts that {@link body}'s helpers share. */
interface BodyGrid {
  vecA: boolean;
  vecB: boolean;
  /** Output rows of one invocation, 0..tm-1. */
  rows: number[];
  /** Output columns of one invocation, 0..tn-1. */
  cols: number[];
  /** Groups of four columns, 0..tn/4-1. */
  groupsN: number[];
  /** Groups of four rows, 0..tm/4-1. */
  groupsM: number[];
  /** The four steps of K read at a time, 0..3. */
  kks: number[];
}

/** The {@link BodyGrid} of a product and tiling. */
function bodyGrid(p: MatmulParams, t: MatmulTiling): BodyGrid {
  const { vecA, vecB } = vectorised(p);
  const { tm, tn } = t;
  const rows = range(tm), cols = range(tn), groupsN = range(tn / 4), groupsM = range(tm / 4);
  return { vecA, vecB, rows, cols, groupsN, groupsM, kks: range(4) };
}

/** The clamped indices, computed once, and the zeroed accumulators. */
function setupLines(p: MatmulParams, grid: BodyGrid): string[] {
  const { vecA, vecB, rows, cols, groupsN, groupsM } = grid;
  const L: string[] = [];
  for (const r of rows) L.push(`let rc${r} = min(row0 + ${r}u, u.M - 1u);`);
  for (const j of cols) L.push(`let cc${j} = min(col0 + ${j}u, u.N - 1u);`);
  if (vecA && p.transA) {
    for (const g of groupsM) L.push(`let ag${g} = min(row0 + ${4 * g}u, u.M - 4u) / 4u;`);
  }
  if (vecB && !p.transB) {
    for (const c of groupsN) L.push(`let bg${c} = min(col0 + ${4 * c}u, u.N - 4u) / 4u;`);
  }
  for (const r of rows) for (const c of groupsN) L.push(`var acc${r}_${c} = vec4<f32>();`);
  return L;
}

/** The loads of one operand for four steps of K, and how to name one of its values. */
interface OperandLoads<F> {
  loads: string[];
  at: F;
}

/** A's loads; `at(r, kk)`: element (row r, step kk) of op(A). */
function aLoads(
  p: MatmulParams,
  grid: BodyGrid,
): OperandLoads<(r: number, kk: number) => string> {
  const { vecA, rows, groupsM, kks } = grid;
  const loads: string[] = [];
  if (!p.transA) {
    for (const r of rows) {
      loads.push(
        vecA
          ? `let a${r} = in0[rc${r} * K4 + kq];`
          : `let a${r} = vec4<f32>(${kks.map((kk) => `in0[rc${r} * u.K + k + ${kk}u]`)});`,
      );
    }
    return { loads, at: (r, kk) => `a${r}.${XYZW[kk]}` };
  }
  for (const kk of kks) {
    for (const g of groupsM) {
      loads.push(
        vecA
          ? `let a${kk}_${g} = in0[(k + ${kk}u) * (u.M / 4u) + ag${g}];`
          : `let a${kk}_${g} = vec4<f32>(${
            range(4).map((i) => `in0[(k + ${kk}u) * u.M + rc${4 * g + i}]`)
          });`,
      );
    }
  }
  return { loads, at: (r, kk) => `a${kk}_${r >> 2}.${XYZW[r & 3]}` };
}

/** B's loads; `at(kk, c)`: vec4 of columns 4c..4c+3 at step kk of op(B). */
function bLoads(
  p: MatmulParams,
  grid: BodyGrid,
): OperandLoads<(kk: number, c: number) => string> {
  const { vecB, cols, groupsN, kks } = grid;
  const loads: string[] = [];
  if (!p.transB) {
    for (const kk of kks) {
      for (const c of groupsN) {
        loads.push(
          vecB
            ? `let b${kk}_${c} = in1[(k + ${kk}u) * (u.N / 4u) + bg${c}];`
            : `let b${kk}_${c} = vec4<f32>(${
              range(4).map((i) => `in1[(k + ${kk}u) * u.N + cc${4 * c + i}]`)
            });`,
        );
      }
    }
    return { loads, at: (kk, c) => `b${kk}_${c}` };
  }
  for (const j of cols) {
    loads.push(
      vecB
        ? `let b${j} = in1[cc${j} * K4 + kq];`
        : `let b${j} = vec4<f32>(${kks.map((kk) => `in1[cc${j} * u.K + k + ${kk}u]`)});`,
    );
  }
  return { loads, at: (kk, c) => `vec4<f32>(${range(4).map((i) => `b${4 * c + i}.${XYZW[kk]}`)})` };
}

/** The fused multiply-adds of four steps of K into the accumulators. */
function fmaLines(
  grid: BodyGrid,
  a: (r: number, kk: number) => string,
  b: (kk: number, c: number) => string,
): string[] {
  const fmas: string[] = [];
  for (const kk of grid.kks) {
    for (const r of grid.rows) {
      for (const c of grid.groupsN) {
        fmas.push(`acc${r}_${c} = fma(vec4<f32>(${a(r, kk)}), ${b(kk, c)}, acc${r}_${c});`);
      }
    }
  }
  return fmas;
}

/** The scalar loop body for the K % 4 tail, whatever the bindings' element types. */
function tailLines(p: MatmulParams, grid: BodyGrid): string[] {
  const { vecA, vecB, rows, cols, groupsN } = grid;
  const at = (buf: string, vec: boolean, idx: string) =>
    vec ? `${buf}[(${idx}) / 4u][(${idx}) % 4u]` : `${buf}[${idx}]`;
  const aIdx = (r: number) => p.transA ? `k * u.M + rc${r}` : `rc${r} * u.K + k`;
  const bIdx = (j: number) => p.transB ? `cc${j} * u.K + k` : `k * u.N + cc${j}`;
  const tail: string[] = [];
  for (const j of cols) tail.push(`let t${j} = ${at("in1", vecB, bIdx(j))};`);
  for (const r of rows) {
    tail.push(`let s${r} = ${at("in0", vecA, aIdx(r))};`);
    for (const c of groupsN) {
      tail.push(
        `acc${r}_${c} = fma(vec4<f32>(s${r}), vec4<f32>(${
          range(4).map((i) => `t${4 * c + i}`)
        }), acc${r}_${c});`,
      );
    }
  }
  return tail;
}

/** The bounds-checked stores of the accumulators. */
function storeLines(grid: BodyGrid): string[] {
  const stores: string[] = [];
  for (const r of grid.rows) {
    stores.push(`if (row0 + ${r}u < u.M) {`);
    stores.push(`  let o${r} = (row0 + ${r}u) * u.N + col0;`);
    for (const j of grid.cols) {
      stores.push(
        `  if (col0 + ${j}u < u.N) { out0[o${r} + ${j}u] = acc${r}_${j >> 2}.${XYZW[j & 3]}; }`,
      );
    }
    stores.push(`}`);
  }
  return stores;
}

/** The line groups of {@link kernelText}, in the order they appear. */
interface BodyLines {
  setup: string[];
  loads: string[];
  fmas: string[];
  tail: string[];
  stores: string[];
}

/** The entry point around the line groups, with {@link BLOCK} where the block is picked. */
function kernelText(t: MatmulTiling, lines: BodyLines): string {
  const { setup, loads, fmas, tail, stores } = lines;
  const indent = (xs: string[], n: number) => xs.map((x) => " ".repeat(n) + x).join("\n");
  return `
@compute @workgroup_size(${t.wx * t.wy})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${BLOCK}
  let row0 = ((block / u.blocksX) * ${t.wy}u + lid / ${t.wx}u) * ${t.tm}u;
  let col0 = ((block % u.blocksX) * ${t.wx}u + lid % ${t.wx}u) * ${t.tn}u;
  if (row0 >= u.M || col0 >= u.N) { return; }
  let K4 = u.K / 4u;
${indent(setup, 2)}
  for (var kq = 0u; kq < K4; kq++) {
    let k = kq * 4u;
${indent(loads, 4)}
${indent(fmas, 4)}
  }
  for (var k = K4 * 4u; k < u.K; k++) {
${indent(tail, 4)}
  }
${indent(stores, 2)}
}
`;
}

/** Replaces {@link BLOCK} with the block (and, for a batch, the product) this workgroup runs. */
function withBlock(p: MatmulParams, text: string): string {
  if (!batched(p)) {
    return text.replace(
      BLOCK,
      "let block = wid.x + wid.y * nwg.x;\n  if (block >= u.blocks) { return; }",
    );
  }
  // A batch: the flat workgroup index picks the product, then the block within it; every
  // access is offset to that product's matrices (in units of the binding's elements).
  return text.replace(
    BLOCK,
    `let flat = wid.x + wid.y * nwg.x;
  let bi = flat / u.blocks;
  if (bi >= u.batch) { return; }
  let block = flat % u.blocks;
  let offA = bi * u.strideA;
  let offB = bi * u.strideB;
  let offO = bi * u.M * u.N;`,
  ).replaceAll("in0[", "in0[offA + ").replaceAll("in1[", "in1[offB + ").replaceAll(
    "out0[",
    "out0[offO + ",
  );
}

const BLOCK = "/*block*/";
const batched = (p: MatmulParams) => (p.batch ?? 1) > 1;
/** Strides between products in units of each binding's elements (vec4 or f32). */
function batchStrides(p: MatmulParams): [number, number] {
  const { vecA, vecB } = vectorised(p);
  const a = p.strideA ?? p.M * p.K, b = p.strideB ?? p.K * p.N;
  return [vecA ? a / 4 : a, vecB ? b / 4 : b];
}

/**
 * The WGSL body of a product with `tiling` whose elements are each handed, with their flat
 * index in the output, to `call(value, index)` (a statement: an epilogue's, see
 * matmul_fused.ts) instead of being stored. The accumulators go through an array and one
 * loop, so that the statement appears once in the shader: unrolled over the 256 outputs of
 * an invocation, a compiler such as llvmpipe's takes tens of seconds.
 */
export function matmulBody(
  p: MatmulParams,
  tiling: MatmulTiling,
  call: (value: string, index: string) => string,
): string {
  return body(p, tiling, (grid) => {
    const groups = grid.groupsN.length;
    const lines = [`var res: array<vec4<f32>, ${grid.rows.length * groups}>;`];
    for (const r of grid.rows) {
      for (const c of grid.groupsN) lines.push(`res[${r * groups + c}] = acc${r}_${c};`);
    }
    lines.push(
      `for (var r = 0u; r < ${tiling.tm}u; r++) {`,
      `  if (row0 + r >= u.M) { break; }`,
      `  for (var j = 0u; j < ${tiling.tn}u; j++) {`,
      `    if (col0 + j >= u.N) { break; }`,
      `    ${call(`res[r * ${groups}u + j / 4u][j % 4u]`, "(row0 + r) * u.N + col0 + j")}`,
      `  }`,
      `}`,
    );
    return lines;
  });
}

/** Builds a matmul kernel with the given tiling; {@link matmul} is the tuned one. */
export function createMatmul(tiling: MatmulTiling): KernelSpec<MatmulParams> {
  if (tiling.tm % 4 !== 0 || tiling.tn % 4 !== 0) {
    throw new RangeError(
      `Cannot build a matmul with tiling ${tiling.tm}x${tiling.tn}: both must be multiples of 4`,
    );
  }
  const tag = `${tiling.tm}x${tiling.tn}@${tiling.wx}x${tiling.wy}`;
  return {
    name: "matmul",
    inputTypes: (p) => {
      const { vecA, vecB } = vectorised(p);
      return [vecA ? "vec4<f32>" : "f32", vecB ? "vec4<f32>" : "f32"];
    },
    outputTypes: () => ["f32"],
    uniformFields: [
      ["M", "u32"],
      ["N", "u32"],
      ["K", "u32"],
      ["blocksX", "u32"],
      ["blocks", "u32"],
      ["batch", "u32"],
      ["strideA", "u32"],
      ["strideB", "u32"],
    ],
    uniforms: (p) => {
      const b = blocks(p, tiling);
      return [p.M, p.N, p.K, b.x, b.x * b.y, p.batch ?? 1, ...batchStrides(p)];
    },
    wgsl: (p) => body(p, tiling),
    variant: (p) => {
      const { vecA, vecB } = vectorised(p);
      return `${tag}|${p.transA ? "t" : "n"}${p.transB ? "t" : "n"}|${vecA ? "v" : "s"}${
        vecB ? "v" : "s"
      }${batched(p) ? "|batch" : ""}`;
    },
    workgroups: (p) => {
      const b = blocks(p, tiling);
      return spreadWorkgroups(b.x * b.y * (p.batch ?? 1));
    },
    cpu: ([a, b], p) => [batchedMatmulCpu(a, b, p)],
  };
}

/**
 * The CPU twin: i-k-j loops over float32 accumulators.
 *
 * @example
 * ```ts
 * import { matmulCpu } from "./matmul.ts";
 * const out = matmulCpu(new Float32Array([1, 2]), new Float32Array([3, 4]), {
 *   M: 1, N: 1, K: 2, transA: false, transB: false,
 * });
 * console.assert(out[0] === 11);
 * ```
 */
export function matmulCpu(a: Float32Array, b: Float32Array, p: MatmulParams): Float32Array {
  const { M, N, K, transA, transB } = p;
  const out = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    const row = i * N;
    for (let k = 0; k < K; k++) {
      const aik = transA ? a[k * M + i] : a[i * K + k];
      if (transB) {
        for (let j = 0; j < N; j++) out[row + j] += aik * b[j * K + k];
      } else {
        const bk = k * N;
        for (let j = 0; j < N; j++) out[row + j] += aik * b[bk + j];
      }
    }
  }
  return out;
}

/** The CPU twin of a batch: {@link matmulCpu} on each product's matrices. */
function batchedMatmulCpu(a: Float32Array, b: Float32Array, p: MatmulParams): Float32Array {
  const batch = p.batch ?? 1;
  if (batch === 1) return matmulCpu(a, b, p);
  const { M, N, K } = p;
  const sa = p.strideA ?? M * K, sb = p.strideB ?? K * N;
  const out = new Float32Array(batch * M * N);
  for (let i = 0; i < batch; i++) {
    const c = matmulCpu(a.subarray(i * sa, i * sa + M * K), b.subarray(i * sb, i * sb + K * N), p);
    out.set(c, i * M * N);
  }
  return out;
}

/**
 * The tiling for a device. On a software adapter, 16x16 outputs per invocation in 4x4
 * workgroups (measured). On a GPU, 256 accumulators per invocation would spill registers:
 * 4x4 outputs per invocation in 16x16 workgroups instead (not yet measured on a GPU).
 */
export function matmulTilingFor(software: boolean): MatmulTiling {
  return software ? DEFAULT_MATMUL_TILING : GPU_MATMUL_TILING;
}

/** The tiling for hardware GPUs, see {@link matmulTilingFor}. */
export const GPU_MATMUL_TILING: MatmulTiling = { tm: 4, tn: 4, wx: 16, wy: 16 };

const tagOf = (t: MatmulTiling) => `${t.tm}x${t.tn}@${t.wx}x${t.wy}`;
const specs = new Map<string, KernelSpec<MatmulParams>>();

/** The tiling a product's parameters name (the default's fields where they name none). */
export function matmulTilingOf(p: MatmulParams): MatmulTiling {
  const d = DEFAULT_MATMUL_TILING;
  return { tm: p.tm ?? d.tm, tn: p.tn ?? d.tn, wx: p.wx ?? d.wx, wy: p.wy ?? d.wy };
}

function specFor(p: MatmulParams): KernelSpec<MatmulParams> {
  const tiling = matmulTilingOf(p);
  const tag = tagOf(tiling);
  let spec = specs.get(tag);
  if (!spec) {
    spec = createMatmul(tiling);
    specs.set(tag, spec);
  }
  return spec;
}

/** Matrix product `out0[M, N] = op(in0) * op(in1)`, row-major float32, tiled per `tiling`. */
export const matmul: KernelSpec<MatmulParams> = {
  name: "matmul",
  inputTypes: (p) => specFor(p).inputTypes(p),
  outputTypes: (p) => specFor(p).outputTypes(p),
  uniformFields: createMatmul(DEFAULT_MATMUL_TILING).uniformFields,
  uniforms: (p) => specFor(p).uniforms(p),
  wgsl: (p) => specFor(p).wgsl(p),
  variant: (p) => specFor(p).variant(p),
  workgroups: (p) => specFor(p).workgroups(p),
  cpu: (inputs, p) => specFor(p).cpu(inputs, p),
};
