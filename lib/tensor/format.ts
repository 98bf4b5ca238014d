/**
 * How a tensor prints (`console.log(t)`, `Deno.inspect(t)`), like PyTorch's repr: the values
 * when they are known without waiting, nested by dimension and elided beyond
 * {@link EDGE_ITEMS} at each end of a long dimension, then the shape, dtype and device.
 *
 * @module
 */

/** What {@link formatTensor} shows of a tensor. */
export interface TensorSummary {
  readonly shape: readonly number[];
  /** The device's name, for example `"gpu:0"`. */
  readonly device: string;
  readonly requiresGrad: boolean;
  /** The values (row-major), when they are known; otherwise only the shape is shown. */
  readonly values?: ArrayLike<number>;
  readonly disposed?: boolean;
}

/** Entries shown at each end of a dimension longer than twice this. */
export const EDGE_ITEMS = 3;

/** The shown indices of a dimension of `size`, with -1 where entries are elided. */
function shownIndices(size: number): number[] {
  if (size <= 2 * EDGE_ITEMS) return Array.from({ length: size }, (_, i) => i);
  return [
    ...Array.from({ length: EDGE_ITEMS }, (_, i) => i),
    -1,
    ...Array.from({ length: EDGE_ITEMS }, (_, i) => size - EDGE_ITEMS + i),
  ];
}

/** The flat indices of the values shown, in order. */
function shownFlat(shape: readonly number[]): number[] {
  let flat = [0];
  let stride = shape.reduce((a, b) => a * b, 1);
  for (const size of shape) {
    stride /= size;
    const here = shownIndices(size).filter((i) => i >= 0);
    flat = flat.flatMap((base) => here.map((i) => base + i * stride));
  }
  return flat;
}

/**
 * A formatter for these values, as PyTorch picks one: whole numbers as they are, else four
 * decimals, or scientific notation when the magnitudes span too much for that.
 */
function formatterFor(values: readonly number[]): (v: number) => string {
  const finite = values.filter(Number.isFinite);
  const special = (v: number) =>
    Number.isNaN(v) ? "nan" : v === Infinity ? "inf" : v === -Infinity ? "-inf" : undefined;
  const whole = finite.every((v) => Number.isInteger(v) && Math.abs(v) < 1e8);
  if (whole) return (v) => special(v) ?? (Object.is(v, -0) ? "-0" : String(v));
  const sizes = finite.map(Math.abs).filter((v) => v > 0);
  const hi = Math.max(...sizes), lo = Math.min(...sizes);
  const scientific = hi >= 1e8 || lo < 1e-4 || hi / lo > 1000;
  return (v) => {
    const s = special(v);
    if (s) return s;
    if (!scientific) return v.toFixed(4);
    return v.toExponential(4).replace(/e([+-])(\d)$/, "e$10$2");
  };
}

/**
 * The repr of a tensor: `Tensor([[1, 2], [3, 4]], shape=[2, 2], dtype=float32, device=gpu:0)`
 * when its values are given, else `Tensor(shape=[2, 2], dtype=float32, device=gpu:0)`;
 * `requiresGrad=true` and `disposed` are added when they hold.
 *
 * @example
 * ```ts
 * import { formatTensor } from "./format.ts";
 * const s = formatTensor({ shape: [2], device: "cpu", requiresGrad: false, values: [0.5, NaN] });
 * console.log(s); // "Tensor([0.5000, nan], shape=[2], dtype=float32, device=cpu)"
 * ```
 */
export function formatTensor(t: TensorSummary): string {
  const tail = [
    `shape=[${t.shape.join(", ")}]`,
    "dtype=float32",
    `device=${t.device}`,
    ...(t.requiresGrad ? ["requiresGrad=true"] : []),
    ...(t.disposed ? ["disposed"] : []),
  ].join(", ");
  const values = t.values;
  if (!values || t.disposed) return `Tensor(${tail})`;
  const format = formatterFor(shownFlat(t.shape).map((i) => values[i]));
  const nest = (dim: number, base: number, stride: number): string => {
    if (dim === t.shape.length) return format(values[base]);
    const inner = stride / t.shape[dim];
    const parts = shownIndices(t.shape[dim]).map((i) =>
      i < 0 ? "..." : nest(dim + 1, base + i * inner, inner)
    );
    return `[${parts.join(", ")}]`;
  };
  const size = t.shape.reduce((a, b) => a * b, 1);
  return `Tensor(${nest(0, 0, size)}, ${tail})`;
}
