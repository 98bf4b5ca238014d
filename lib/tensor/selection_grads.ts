/**
 * The gradients of the selecting ops (`min`, `maximum`, `minimum`, `clamp`), as PyTorch
 * defines them, for lib/autograd's rules. They run while grad is off (during backward), so
 * they record nothing; each takes tensors on one device and returns new ones.
 *
 * @module
 */
import { engine } from "../engine/engine.ts";
import type { KernelParams, KernelSpec } from "../kernels/kernel.ts";
import { tieMask, valueSelectingBackward as selectKernel } from "../kernels/reduce_index.ts";
import { clampBackward as clampKernel, minmaxBackward as minmaxKernel } from "../kernels/minmax.ts";
import { type MinMaxOp, minmaxParams } from "../kernels/minmax.ts";
import { recordOf, type Tensor, wrap } from "./tensor.ts";

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function run<P extends KernelParams>(
  name: string,
  spec: KernelSpec<P>,
  params: P,
  inputs: readonly Tensor[],
  shapes: (readonly number[])[],
): Tensor[] {
  return engine().submit({
    name,
    kind: "run",
    device: inputs[0].device,
    kernel: spec.name,
    params,
    inputs: inputs.map(recordOf),
    outputShapes: shapes,
  }).map(wrap);
}

/**
 * PyTorch's `value_selecting_reduction_backward`: `gy` (the gradient of `min(axis)`, with
 * or without the kept axis) placed at `indices` along `axis` of zeros of `shape`.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * import { valueSelectingBackward } from "./selection_grads.ts";
 * const g = valueSelectingBackward(fromArray([5, 6], [2]), fromArray([2, 0], [2]), [2, 3], 1);
 * console.log(await g.data()); // Float32Array [0, 0, 5, 6, 0, 0]
 * ```
 */
export function valueSelectingBackward(
  gy: Tensor,
  indices: Tensor,
  shape: readonly number[],
  axis: number,
): Tensor {
  const outer = sizeOf(shape.slice(0, axis));
  const inner = sizeOf(shape.slice(axis + 1));
  const mid = shape[axis] ?? 1;
  return run("min_backward", selectKernel, { outer, mid, inner }, [gy, indices], [shape])[0];
}

/**
 * PyTorch's `evenly_distribute_backward`: the gradient `gy` of a full reduction to `value`,
 * shared evenly by the elements of `x` equal to it (the NaNs, when it is NaN).
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * import { evenlyDistributeBackward } from "./selection_grads.ts";
 * const x = fromArray([1, 3, 1], [3]);
 * const g = evenlyDistributeBackward(fromArray([1], []), x, fromArray([1], []));
 * console.log(await g.data()); // Float32Array [0.5, 0, 0.5]
 * ```
 */
export function evenlyDistributeBackward(gy: Tensor, x: Tensor, value: Tensor): Tensor {
  const [mask] = run("min_backward", tieMask, { n: x.size }, [x, value], [x.shape]);
  const count = mask.sum();
  const spread = mask.mul(gy);
  const g = spread.div(count);
  for (const t of [mask, count, spread]) t.dispose();
  return g;
}

/**
 * The gradients of `maximum(a, b)` or `minimum(a, b)` given `gy`, both at `gy`'s shape (sum
 * them down to the operands' shapes): `gy` to the selected operand, half of it to each on a
 * tie, all of it to both where either is NaN, as PyTorch's rule.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * import { minmaxBackward } from "./selection_grads.ts";
 * const [ga, gb] = minmaxBackward(fromArray([1, 1], [2]), fromArray([1, 5], [2]), fromArray([1], [1]), "maximum");
 * console.log(await ga.data(), await gb.data()); // Float32Array [0.5, 1] Float32Array [0.5, 0]
 * ```
 */
export function minmaxBackward(gy: Tensor, a: Tensor, b: Tensor, op: MinMaxOp): [Tensor, Tensor] {
  const params = minmaxParams(op, a.shape, b.shape, gy.shape);
  const [ga, gb] = run(`${op}_backward`, minmaxKernel, params, [a, b, gy], [gy.shape, gy.shape]);
  return [ga, gb];
}

/**
 * The gradient of `clamp(lo, hi)` at `x` given `gy`: `gy` where `lo <= x <= hi`, else 0
 * (NaN gets 0), as PyTorch's `clamp_backward`.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * import { clampBackward } from "./selection_grads.ts";
 * const g = clampBackward(fromArray([1, 1, 1], [3]), fromArray([-2, 0, 2], [3]), 0, 1);
 * console.log(await g.data()); // Float32Array [0, 1, 0]
 * ```
 */
export function clampBackward(gy: Tensor, x: Tensor, lo: number, hi: number): Tensor {
  return run("clamp_backward", clampKernel, { n: x.size, lo, hi }, [x, gy], [x.shape])[0];
}
