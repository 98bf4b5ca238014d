/**
 * Shape arithmetic of the shape and indexing ops (permute, slice, cat, matmul): plain
 * functions of shapes that check the arguments and throw the op's RangeError, so the
 * Tensor methods only queue work.
 *
 * @module
 */
import { broadcastShape } from "../kernels/broadcast.ts";

const fmt = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/**
 * `dims` as a permutation of `[0, rank)` (negative dims count from the end). Throws a
 * RangeError naming the shape unless it is one.
 *
 * @example
 * ```ts
 * import { permutation } from "./shapes.ts";
 * console.log(permutation([2, 3, 4], [-1, 0, 1])); // [2, 0, 1]
 * ```
 */
export function permutation(shape: readonly number[], dims: readonly number[]): number[] {
  const rank = shape.length;
  const perm = dims.map((d) => Number.isInteger(d) && d < 0 ? d + rank : d);
  const ok = perm.length === rank &&
    perm.every((d) => Number.isInteger(d) && d >= 0 && d < rank) &&
    new Set(perm).size === rank;
  if (!ok) {
    throw new RangeError(
      `Cannot permute shape ${fmt(shape)} to dims ${fmt(dims)}: dims must name each of the ` +
        `${rank} dimensions once, as whole numbers in [${-rank}, ${rank - 1}]`,
    );
  }
  return perm;
}

/** What {@link sliceRange} resolves: the first index, the step and how many entries. */
export interface SliceRange {
  start: number;
  step: number;
  length: number;
}

/**
 * Python's `range(size)[start:end:step]` for a whole-number `step >= 1`: negative indices
 * count from the end, out-of-range ones are clamped. Throws a RangeError for a bad step,
 * an index that is not a whole number, or an empty slice (tensors have no size-0 dims).
 *
 * @example
 * ```ts
 * import { sliceRange } from "./shapes.ts";
 * console.log(sliceRange(10, -4, undefined, 2)); // { start: 6, step: 2, length: 2 }
 * ```
 */
export function sliceRange(
  size: number,
  start: number | undefined,
  end: number | undefined,
  step: number,
  what = "slice",
): SliceRange {
  const whole = (v: number | undefined) => v === undefined || Number.isInteger(v);
  if (!Number.isInteger(step) || step < 1 || !whole(start) || !whole(end)) {
    throw new RangeError(
      `Cannot ${what} from ${start} to ${end} in steps of ${step}: start and end must be ` +
        `whole numbers (or undefined), step a whole number >= 1`,
    );
  }
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
  const from = clamp(start ?? 0), to = clamp(end ?? size);
  const length = Math.max(0, Math.ceil((to - from) / step));
  if (length === 0) {
    throw new RangeError(
      `Cannot ${what} from ${start} to ${end} in steps of ${step}: no entry of the ${size} is ` +
        `left, and tensors have no dimension of size 0`,
    );
  }
  return { start: from, step, length };
}

/**
 * The shape of `shapes` joined along `axis` (which `cat` resolves first). Throws a
 * RangeError naming the first shape that does not fit the first one.
 *
 * @example
 * ```ts
 * import { catShape } from "./shapes.ts";
 * console.log(catShape([[2, 3], [4, 3]], 0)); // [6, 3]
 * ```
 */
export function catShape(shapes: readonly (readonly number[])[], axis: number): number[] {
  const first = shapes[0];
  for (const [i, s] of shapes.entries()) {
    if (s.length !== first.length || s.some((n, d) => d !== axis && n !== first[d])) {
      throw new RangeError(
        `Cannot cat shapes ${shapes.map(fmt).join(", ")} along axis ${axis}: tensor ${i}'s ` +
          `shape ${fmt(s)} does not match ${fmt(first)} outside that axis`,
      );
    }
  }
  return first.map((n, d) => d === axis ? sum(shapes, d) : n);
}

const sum = (shapes: readonly (readonly number[])[], d: number) =>
  shapes.reduce((acc, s) => acc + s[d], 0);

/** How `torch.matmul` of two shapes runs as products of matrices. */
export interface MatmulPlan {
  /** The result's shape. */
  out: number[];
  /** `a` as at least 2-D: a 1-D `a` is `[1, K]`. */
  canonA: number[];
  /** `b` as at least 2-D: a 1-D `b` is `[K, 1]`. */
  canonB: number[];
  /** The broadcast batch dims. */
  batch: number[];
  /** Rows of each product. */
  M: number;
  /** The inner size. */
  K: number;
  /** Columns of each product. */
  N: number;
}

/**
 * Plans `a @ b` with `torch.matmul`'s semantics: 1-D by 1-D is a dot product, a 1-D operand
 * gains a dimension of 1 that the result drops, and the dims before the last two
 * broadcast. Throws a RangeError naming both shapes when they do not fit.
 *
 * @example
 * ```ts
 * import { matmulPlan } from "./shapes.ts";
 * console.log(matmulPlan([2, 1, 3, 4], [5, 4, 6]).out); // [2, 5, 3, 6]
 * ```
 */
export function matmulPlan(a: readonly number[], b: readonly number[]): MatmulPlan {
  const why = (reason: string) =>
    new RangeError(`Cannot multiply as shapes ${fmt(a)} and ${fmt(b)} ${reason}`);
  if (a.length === 0 || b.length === 0) throw why("do not fit: matmul needs 1-D or more");
  const canonA = a.length === 1 ? [1, a[0]] : [...a];
  const canonB = b.length === 1 ? [b[0], 1] : [...b];
  const [M, K] = canonA.slice(-2);
  const [K2, N] = canonB.slice(-2);
  if (K !== K2) throw why(`do not align: inner sizes are ${K} and ${K2}`);
  const batch = broadcastShape(canonA.slice(0, -2), canonB.slice(0, -2));
  if (!batch) {
    throw why(
      `do not fit: batch dims ${fmt(canonA.slice(0, -2))} and ${
        fmt(canonB.slice(0, -2))
      } do not broadcast`,
    );
  }
  const out = [...batch, ...(a.length > 1 ? [M] : []), ...(b.length > 1 ? [N] : [])];
  return { out, canonA, canonB, batch, M, K, N };
}
