/**
 * Shape and indexing Tensor ops: reshape, narrow, transpose, permute, slice, gather, scatter and broadcasting copies.
 *
 * @module
 */
import { engine, type TensorRecord } from "../engine/engine.ts";
import { broadcastShape, expandParams } from "../kernels/broadcast.ts";
import type { KernelParams, KernelSpec } from "../kernels/kernel.ts";
import { unary } from "../kernels/elementwise.ts";
import { expand } from "../kernels/broadcast.ts";
import { narrow, transpose, unnarrow } from "../kernels/layout.ts";
import {
  contiguousStrides,
  gather,
  indexAdd,
  indexSelect,
  MAX_SCATTER_RANK,
  MAX_STRIDED_RANK,
  scatterAdd,
  stridedCopy,
  stridedCopyParams,
  unslice,
} from "../kernels/shape.ts";
import { permutation, sliceRange } from "./shapes.ts";
import type { Tensor } from "./tensor.ts";
import { axisIndex, operandsOf, recordOf, runKernel, splitAt, trackOp } from "./core.ts";
import { checkShape, fmt, sameShape, sizeOf } from "./checks.ts";
import { checkIndices, inheritFacts } from "./labels.ts";
import { ReductionTensor } from "./reductions.ts";

/**
 * The shape and indexing ops of {@link Tensor} (a layer of the class; use `Tensor`).
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * console.log(fromArray([1, 2, 3, 4], [2, 2]).transpose().shape); // [2, 2]
 * ```
 */
export class ShapeTensor extends ReductionTensor {
  /**
   * The same values in another shape with as many elements (a copy, row-major). One size
   * may be -1: it is inferred. Throws a RangeError when the sizes do not fit.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(fromArray([1, 2, 3, 4, 5, 6], [2, 3]).reshape([3, -1]).shape); // [3, 2]
   * ```
   */
  reshape(shape: readonly number[]): Tensor {
    const [a] = operandsOf(this, "reshape");
    const target = this.#resolveShape(shape);
    const out = runKernel(this, "reshape", unary, { op: "copy", n: this.size }, [a], target, 0);
    return trackOp(out, "reshape", [this], {});
  }

  /**
   * The `length` entries from `start` along `axis` (a copy; PyTorch's `narrow`). Throws a
   * RangeError for a range the tensor does not have.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([1, 2, 3, 4, 5, 6], [3, 2]).narrow(0, 1, 2).data()); // [3, 4, 5, 6]
   * ```
   */
  narrow(axis: number, start: number, length: number): Tensor {
    const [a] = operandsOf(this, "narrow");
    const ax = axisIndex(this, axis, "narrow");
    const { outer, mid, inner } = splitAt(this, ax);
    if (
      !Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 1 ||
      start + length > mid
    ) {
      throw new RangeError(
        `Cannot narrow shape ${fmt(this.shape)} along axis ${axis} to ${length} from ${start}: ` +
          `the range must lie in [0, ${mid})`,
      );
    }
    const shape = this.shape.map((s, i) => i === ax ? length : s);
    const params = { outer, mid, inner, start, length };
    const out = runKernel(this, "narrow", narrow, params, [a], shape, 0);
    inheritFacts(a, recordOf(out));
    return trackOp(out, "narrow", [this], { axis: ax, start, size: mid });
  }

  /**
   * The inverse of {@link Tensor.narrow}, its gradient: this tensor placed from `start`
   * along `axis` in zeros of size `size` there. Throws a RangeError when it does not fit.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([1, 2], [1, 2]).unnarrow(0, 1, 3).data()); // [0, 0, 1, 2, 0, 0]
   * ```
   */
  unnarrow(axis: number, start: number, size: number): Tensor {
    const [a] = operandsOf(this, "unnarrow");
    const ax = axisIndex(this, axis, "unnarrow");
    const { outer, mid: length, inner } = splitAt(this, ax);
    if (!Number.isInteger(start) || !Number.isInteger(size) || start < 0 || start + length > size) {
      throw new RangeError(
        `Cannot place shape ${fmt(this.shape)} from ${start} along axis ${axis} in size ${size}`,
      );
    }
    const shape = this.shape.map((s, i) => i === ax ? size : s);
    const params = { outer, mid: size, inner, start, length };
    return runKernel(this, "unnarrow", unnarrow, params, [a], shape, 0);
  }

  /**
   * This tensor with dimensions `dim0` and `dim1` swapped (negative dims count from the end),
   * like `torch.transpose`; with no dims, the transpose of a 2-D tensor. A copy. Throws a
   * RangeError for a dim the tensor does not have, or for no dims on a tensor that is not 2-D.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([1, 2, 3, 4, 5, 6], [2, 3]).transpose().data()); // [1, 4, 2, 5, 3, 6]
   * console.log(fromArray([1, 2, 3, 4, 5, 6], [1, 2, 3]).transpose(0, -1).shape); // [3, 2, 1]
   * ```
   */
  transpose(dim0?: number, dim1?: number): Tensor {
    const [a] = operandsOf(this, "transpose");
    if (dim0 !== undefined || dim1 !== undefined) {
      if (dim0 === undefined || dim1 === undefined) {
        throw new TypeError(
          `Cannot transpose ${this} with dims ${dim0} and ${dim1}: give two dims, or none for ` +
            `a 2-D tensor`,
        );
      }
      const d0 = axisIndex(this, dim0, "transpose"), d1 = axisIndex(this, dim1, "transpose");
      if (this.shape.length !== 2 || d0 === d1) {
        return this.#permute(a, this.shape.map((_, i) => i === d0 ? d1 : i === d1 ? d0 : i));
      }
    } else if (this.shape.length !== 2) {
      throw new RangeError(
        `Cannot transpose shape ${fmt(this.shape)}: transpose() without dims needs a 2-D ` +
          `tensor; give the two dims to swap`,
      );
    }
    const [rows, cols] = this.shape;
    const out = runKernel(this, "transpose", transpose, { rows, cols }, [a], [cols, rows], 0);
    return trackOp(out, "transpose", [this], {});
  }

  /**
   * This tensor with its dimensions in the order `dims` (each named once; negative dims count
   * from the end), like `torch.permute`; a copy. `dims` may also be one array. Throws a
   * RangeError unless `dims` is a permutation of this tensor's dimensions.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const t = fromArray([1, 2, 3, 4, 5, 6], [1, 2, 3]).permute(2, 0, 1);
   * console.log(t.shape, await t.data()); // [3, 1, 2] Float32Array [1, 4, 2, 5, 3, 6]
   * ```
   */
  permute(...dims: number[] | [readonly number[]]): Tensor {
    const [a] = operandsOf(this, "permute");
    const list = dims.length === 1 && Array.isArray(dims[0]) ? dims[0] : dims as number[];
    return this.#permute(a, permutation(this.shape, list));
  }

  #permute(a: TensorRecord, dims: readonly number[]): Tensor {
    const strides = contiguousStrides(this.shape);
    const shape = dims.map((d) => this.shape[d]);
    const params = stridedCopyParams(shape, dims.map((d) => strides[d]));
    const out = runKernel(this, "permute", stridedCopy, params, [a], shape, 0);
    return trackOp(out, "permute", [this], { dims });
  }

  /**
   * The entries `start, start + step, ...` before `end` along `axis`, like Python's
   * `x[start:end:step]` on that axis (a copy): negative indices count from the end,
   * out-of-range ones are clamped, `step` is a whole number >= 1. Throws a RangeError for
   * bad arguments or an empty slice.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const t = fromArray([0, 1, 2, 3, 4, 5, 6, 7], [2, 4]);
   * console.log(await t.slice(1, 1).data(), await t.slice(-1, 0, undefined, 2).data());
   * // Float32Array [1, 2, 3, 5, 6, 7] Float32Array [0, 2, 4, 6]
   * ```
   */
  slice(axis: number, start?: number, end?: number, step = 1): Tensor {
    const [a] = operandsOf(this, "slice");
    const ax = this.#sliceAxis(axis, "slice");
    const { outer, mid, inner } = splitAt(this, ax);
    const r = sliceRange(
      mid,
      start,
      end,
      step,
      `slice shape ${fmt(this.shape)} along axis ${axis}`,
    );
    const shape = this.shape.map((s, i) => i === ax ? r.length : s);
    const out = r.step === 1
      ? runKernel(
        this,
        "slice",
        narrow,
        { outer, mid, inner, start: r.start, length: r.length },
        [
          a,
        ],
        shape,
        0,
      )
      : runKernel(
        this,
        "slice",
        stridedCopy,
        stridedCopyParams(
          [outer, r.length, inner],
          [mid * inner, r.step * inner, 1],
          r.start * inner,
        ),
        [a],
        shape,
        0,
      );
    return trackOp(out, "slice", [this], { axis: ax, ...r, size: mid });
  }

  /**
   * The inverse of {@link Tensor.slice}, its gradient: this tensor's entries along `axis`
   * placed at `start, start + step, ...` in zeros of size `size` there. Throws a RangeError
   * when they do not fit.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([1, 2], [2]).unslice(0, 1, 2, 4).data()); // [0, 1, 0, 2]
   * ```
   */
  unslice(axis: number, start: number, step: number, size: number): Tensor {
    const [a] = operandsOf(this, "unslice");
    const ax = this.#sliceAxis(axis, "unslice");
    const { outer, mid: length, inner } = splitAt(this, ax);
    const whole = [start, step, size].every(Number.isInteger);
    if (!whole || start < 0 || step < 1 || start + (length - 1) * step >= size) {
      throw new RangeError(
        `Cannot place shape ${fmt(this.shape)} from ${start} in steps of ${step} along axis ` +
          `${axis} in size ${size}`,
      );
    }
    const shape = checkShape(this.shape.map((s, i) => i === ax ? size : s), this.device, "unslice");
    const params = { outer, mid: size, inner, start, step, length };
    const out = runKernel(this, "unslice", unslice, params, [a], shape, 0);
    return trackOp(out, "unslice", [this], { axis: ax, start, step, length });
  }

  /** An axis of a tensor of 1-D or more, for slicing and indexing. */
  #sliceAxis(axis: number, what: string): number {
    if (this.shape.length === 0) {
      throw new RangeError(`Cannot ${what} ${this}: it has no dimension (shape [])`);
    }
    return axisIndex(this, axis, what);
  }

  /**
   * The entries at `index` along `axis` (a copy, like `torch.index_select`): `index` is a
   * 1-D tensor of whole numbers stored as float32, on this tensor's device, and may repeat
   * entries. Throws a RangeError for an index value outside [0, size) when its values are
   * known on the host (made by fromArray, or host values already computed); otherwise such
   * a value fails the op at the next synchronisation.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const t = fromArray([1, 2, 3, 4, 5, 6], [3, 2]);
   * console.log(await t.indexSelect(0, fromArray([2, 0, 2], [3])).data()); // [5, 6, 1, 2, 5, 6]
   * ```
   */
  indexSelect(axis: number, index: Tensor): Tensor {
    const [a, idx] = operandsOf(this, "index-select", index);
    const ax = this.#sliceAxis(axis, "index-select");
    this.#vectorIndex(index, "index-select");
    const { outer, mid, inner } = splitAt(this, ax);
    const length = index.size;
    const what = `index-select along axis ${ax} of shape ${fmt(this.shape)}`;
    const shape = checkShape(this.shape.map((s, i) => i === ax ? length : s), this.device, what);
    const gate = checkIndices(idx, mid, what);
    const params = { outer, mid, inner, length, gated: gate !== undefined };
    const out = this.#gated("indexSelect", indexSelect, params, [a, idx], gate, shape);
    return trackOp(out, "indexSelect", [this], { axis: ax, index });
  }

  /**
   * `this` plus `source` added at `index` along `axis` (out of place, like
   * `torch.index_add`): `source` has this shape with `index.size` entries along `axis`,
   * and entries at a repeated index add up. The gradient of {@link Tensor.indexSelect}.
   * Index values are checked as `indexSelect` checks them.
   *
   * @example
   * ```ts
   * import { fromArray, zeros } from "../../mod.ts";
   * const t = zeros([3]).indexAdd(0, fromArray([2, 0, 2], [3]), fromArray([1, 2, 3], [3]));
   * console.log(await t.data()); // Float32Array [2, 0, 4]
   * ```
   */
  indexAdd(axis: number, index: Tensor, source: Tensor): Tensor {
    const [a, idx, src] = operandsOf(this, "index-add", index, source);
    const ax = this.#sliceAxis(axis, "index-add");
    this.#vectorIndex(index, "index-add");
    const expected = this.shape.map((s, i) => i === ax ? index.size : s);
    if (!sameShape(source.shape, expected)) {
      throw new RangeError(
        `Cannot index-add shape ${fmt(source.shape)} into shape ${fmt(this.shape)} along axis ` +
          `${ax} at ${index.size} indices: the source must have shape ${fmt(expected)}`,
      );
    }
    const { outer, mid, inner } = splitAt(this, ax);
    const gate = checkIndices(idx, mid, `index-add along axis ${ax} into shape ${fmt(this.shape)}`);
    const params = { outer, mid, inner, length: index.size, gated: gate !== undefined };
    const out = this.#gated("indexAdd", indexAdd, params, [a, idx, src], gate, this.shape);
    return trackOp(out, "indexAdd", [this, source], { axis: ax, index });
  }

  #vectorIndex(index: Tensor, what: string): void {
    if (index.shape.length > 1) {
      throw new RangeError(
        `Cannot ${what} ${this} at an index of shape ${fmt(index.shape)}: it must be 1-D`,
      );
    }
  }

  /**
   * The entries picked along `axis` by `index` (like `torch.gather`): `out[i][j][k] =
   * this[i][index[i][j][k]][k]` for axis 1. `index` holds whole numbers stored as float32,
   * has this rank, and no size larger than this tensor's outside `axis`; the result has its
   * shape. Index values are checked as {@link Tensor.indexSelect} checks them.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const t = fromArray([1, 2, 3, 4], [2, 2]);
   * console.log(await t.gather(1, fromArray([0, 0, 1, 0], [2, 2])).data()); // [1, 1, 4, 3]
   * ```
   */
  gather(axis: number, index: Tensor): Tensor {
    const [a, idx] = operandsOf(this, "gather", index);
    const ax = this.#sliceAxis(axis, "gather");
    const what = `gather along axis ${ax} of shape ${fmt(this.shape)}`;
    this.#scatterShapes(what, index, index, ax);
    const gate = checkIndices(idx, this.shape[ax], what);
    const params = {
      n: index.size,
      axis: ax,
      shape: index.shape.join(","),
      strides: contiguousStrides(this.shape).join(","),
      size: this.shape[ax],
      gated: gate !== undefined,
    };
    const out = this.#gated("gather", gather, params, [a, idx], gate, index.shape);
    return trackOp(out, "gather", [this], { axis: ax, index });
  }

  /**
   * `this` plus `src` added at the positions `index` names along `axis` (out of place, like
   * `torch.scatter_add`): for axis 1, `out[i][index[i][j][k]][k] += src[i][j][k]`; entries at
   * a repeated index add up. `index` and `src` have this rank, `index` no size larger than
   * `src`'s, nor than this tensor's outside `axis`. The gradient of {@link Tensor.gather}.
   *
   * @example
   * ```ts
   * import { fromArray, zeros } from "../../mod.ts";
   * const t = zeros([2, 2]).scatterAdd(1, fromArray([0, 0, 1, 0], [2, 2]), fromArray([1, 2, 3, 4], [2, 2]));
   * console.log(await t.data()); // Float32Array [3, 0, 4, 3]
   * ```
   */
  scatterAdd(axis: number, index: Tensor, src: Tensor): Tensor {
    const [a, idx, s] = operandsOf(this, "scatter-add", index, src);
    const ax = this.#sliceAxis(axis, "scatter-add");
    const what = `scatter-add along axis ${ax} into shape ${fmt(this.shape)}`;
    this.#scatterShapes(what, index, src, ax);
    const gate = checkIndices(idx, this.shape[ax], what);
    const params = {
      n: this.size,
      axis: ax,
      shape: this.shape.join(","),
      indexShape: index.shape.join(","),
      indexStrides: contiguousStrides(index.shape).join(","),
      srcStrides: contiguousStrides(src.shape).join(","),
      gated: gate !== undefined,
    };
    const out = this.#gated("scatterAdd", scatterAdd, params, [a, idx, s], gate, this.shape);
    return trackOp(out, "scatterAdd", [this, src], { axis: ax, index });
  }

  /** Throws a RangeError unless `index` fits this tensor and `src` for gather/scatterAdd. */
  #scatterShapes(what: string, index: Tensor, src: Tensor, axis: number): void {
    const rank = this.shape.length;
    const fits = index.shape.length === rank && src.shape.length === rank &&
      index.shape.every((n, d) => n <= src.shape[d] && (d === axis || n <= this.shape[d]));
    if (!fits) {
      const source = src === index ? "" : ` and a source of shape ${fmt(src.shape)}`;
      throw new RangeError(
        `Cannot ${what} with an index of shape ${fmt(index.shape)}${source}: they need ${rank} ` +
          `dims, the index no size larger than the source's, nor than ${fmt(this.shape)} ` +
          `outside axis ${axis}`,
      );
    }
    const most = src === index ? MAX_STRIDED_RANK : MAX_SCATTER_RANK;
    if (rank > most) {
      throw new RangeError(`Cannot ${what}: at most ${most} dimensions are supported`);
    }
  }

  /** Runs an indexing kernel, with the check `gate` as one more input when there is one. */
  #gated<P extends KernelParams>(
    name: string,
    spec: KernelSpec<P>,
    params: P,
    inputs: TensorRecord[],
    gate: TensorRecord | undefined,
    shape: readonly number[],
  ): Tensor {
    const out = runKernel(this, name, spec, params, gate ? [...inputs, gate] : inputs, shape, 0);
    if (gate) engine().dispose(gate);
    return out;
  }

  /** `shape` with a -1 resolved, checked against this tensor's size. */
  #resolveShape(shape: readonly number[]): readonly number[] {
    if (!Array.isArray(shape)) {
      throw new TypeError(`Cannot reshape ${this} to ${shape}: the shape must be an array`);
    }
    const free = shape.filter((n) => n === -1).length;
    const known = sizeOf(shape.filter((n) => n !== -1));
    const resolved = free === 1 && known > 0 && this.size % known === 0
      ? shape.map((n) => n === -1 ? this.size / known : n)
      : shape;
    if (free > 1 || sizeOf(resolved) !== this.size || resolved.some((n) => n < 1)) {
      throw new RangeError(
        `Cannot reshape shape ${fmt(this.shape)} (${this.size} elements) to ${
          fmt(shape)
        }: the sizes must multiply to ${this.size}, with at most one -1`,
      );
    }
    return checkShape(resolved, this.device, "reshape");
  }

  /**
   * This tensor broadcast to `shape` (NumPy's `broadcast_to`, materialised as a copy).
   * Throws a RangeError when it does not broadcast to exactly that shape.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([1, 2], [2, 1]).expandTo([2, 2]).data()); // [1, 1, 2, 2]
   * ```
   */
  expandTo(shape: readonly number[]): Tensor {
    const [a] = operandsOf(this, "expand");
    const target = broadcastShape(this.shape, shape);
    if (!target || !sameShape(target, shape)) {
      throw new RangeError(`Cannot expand shape ${fmt(this.shape)} to ${fmt(shape)}`);
    }
    const out = checkShape(shape, this.device, "expand");
    const t = runKernel(this, "expand", expand, expandParams(this.shape, out), [a], out, 0);
    return trackOp(t, "expand", [this], {});
  }
}
