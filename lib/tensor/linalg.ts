/**
 * Linear algebra on Tensors: matrix products.
 *
 * @module
 */
import { type TensorRecord } from "../engine/engine.ts";
import { matmul, matmulTilingFor } from "../kernels/matmul.ts";
import { matmulPlan } from "./shapes.ts";
import type { Tensor } from "./tensor.ts";
import { operandsOf, recordOf, runKernel, trackOp } from "./core.ts";
import { checkShape, fmt, sizeOf } from "./checks.ts";
import type { MmOptions } from "./options.ts";
import { ShapeTensor } from "./shape_ops.ts";

/**
 * The matrix products of {@link Tensor} (a layer of the class; use `Tensor`).
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * const a = fromArray([1, 2, 3, 4], [2, 2]);
 * console.log(await a.matmul(a).data()); // Float32Array [7, 10, 15, 22]
 * ```
 */
export class LinalgTensor extends ShapeTensor {
  /**
   * Matrix product `op(this) @ op(other)` of 2-D tensors on the same device, where `op`
   * transposes an operand whose option says so, without materialising the transpose. Throws
   * a RangeError when the shapes do not align, a TypeError for tensors on different devices
   * or disposed ones.
   *
   * @example
   * ```ts
   * import { fromArray } from "./creation.ts";
   * const a = fromArray([1, 2, 3, 4], [2, 2]);
   * console.log(await a.mm(a).data()); // Float32Array [7, 10, 15, 22]
   * console.log(await a.mm(a, { transA: true }).data()); // Float32Array [10, 14, 14, 20]
   * ```
   */
  mm(other: Tensor, options: MmOptions = {}): Tensor {
    const [a, b] = operandsOf(this, "mm", other);
    const transA = options.transA ?? false;
    const transB = options.transB ?? false;
    if (typeof transA !== "boolean" || typeof transB !== "boolean") {
      throw new TypeError(
        `Cannot multiply with transA ${transA} and transB ${transB}: both must be booleans`,
      );
    }
    if (this.shape.length !== 2 || other.shape.length !== 2) {
      throw new RangeError(
        `Cannot multiply shapes ${fmt(this.shape)} and ${
          fmt(other.shape)
        }: mm needs two 2-D tensors`,
      );
    }
    const [M, K] = transA ? [this.shape[1], this.shape[0]] : this.shape;
    const [K2, N] = transB ? [other.shape[1], other.shape[0]] : other.shape;
    if (K !== K2) {
      const t = (s: readonly number[], tr: boolean) => tr ? `${fmt(s)} transposed` : fmt(s);
      throw new RangeError(
        `Cannot multiply as shapes ${t(this.shape, transA)} and ${t(other.shape, transB)} ` +
          `do not align: inner sizes are ${K} and ${K2}`,
      );
    }
    const shape = checkShape([M, N], this.device, "mm");
    const tiling = matmulTilingFor(this.device.info.software);
    const params = { M, N, K, transA, transB, ...tiling };
    const out = runKernel(this, "mm", matmul, params, [a, b], shape, 2 * M * N * K);
    return trackOp(out, "mm", [this, other], { transA, transB });
  }

  /**
   * Matrix product with `torch.matmul`'s semantics: 1-D by 1-D is a dot product (shape
   * `[]`), 2-D by 2-D is {@link Tensor.mm}, a 1-D operand gains a dimension of 1 that the
   * result drops, and with more dims the leading (batch) dims broadcast:
   * `[2, 1, 3, 4] @ [5, 4, 6]` gives `[2, 5, 3, 6]`. Throws a RangeError naming both shapes
   * when they do not fit, a TypeError for tensors on different devices.
   *
   * @example
   * ```ts
   * import { fromArray, ones } from "../../mod.ts";
   * console.log(ones([2, 1, 3, 4]).matmul(ones([5, 4, 6])).shape); // [2, 5, 3, 6]
   * console.log(await fromArray([1, 2], [2]).matmul(fromArray([3, 4], [2])).data()); // [11]
   * ```
   */
  matmul(other: Tensor): Tensor {
    const [a, b] = operandsOf(this, "matmul", other);
    const plan = matmulPlan(this.shape, other.shape);
    if (this.shape.length === 2 && other.shape.length === 2) return this.mm(other);
    const { batch, M, K, N } = plan;
    const count = sizeOf(batch);
    const shape = checkShape(plan.out, this.device, "matmul");
    const tiling = matmulTilingFor(this.device.info.software);
    const flops = 2 * count * M * N * K;
    const canonOut = [...batch, M, N];
    const own = (canon: readonly number[]) => sizeOf(canon.slice(0, -2));
    if (own(plan.canonB) === 1 && own(plan.canonA) === count) {
      // One product: A's matrices lie one after the other, B is shared.
      const params = { M: count * M, N, K, transA: false, transB: false, ...tiling };
      const out = runKernel(this, "matmul", matmul, params, [a, b], shape, flops);
      const ctx = { canonA: plan.canonA, canonB: plan.canonB, canonOut };
      return trackOp(out, "matmul", [this, other], ctx);
    }
    // Each operand is shared by every product (stride 0), has one matrix per product, or is
    // expanded to the batch first (as torch.matmul does).
    const operand = (t: Tensor, rec: TensorRecord, canon: readonly number[]) => {
      const [rows, cols] = canon.slice(-2);
      if (own(canon) === 1) return { t, rec, canon, stride: 0 };
      if (own(canon) === count) return { t, rec, canon, stride: rows * cols };
      const full = [...batch, rows, cols];
      const e = t.expandTo(checkShape(full, this.device, "matmul"));
      return { t: e, rec: recordOf(e), canon: full, stride: rows * cols, temporary: true };
    };
    const x = operand(this as unknown as Tensor, a, plan.canonA);
    const y = operand(other, b, plan.canonB);
    const params = {
      M,
      N,
      K,
      transA: false,
      transB: false,
      batch: count,
      strideA: x.stride,
      strideB: y.stride,
      ...tiling,
    };
    const out = runKernel(this, "matmul", matmul, params, [x.rec, y.rec], shape, flops);
    const ctx = { canonA: x.canon, canonB: y.canon, canonOut };
    if (!trackOp(out, "matmul", [x.t, y.t], ctx).gradFn) {
      for (const o of [x, y]) if (o.temporary) o.t.dispose();
    }
    return out;
  }
}
