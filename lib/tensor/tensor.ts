/**
 * The Tensor API (float32). Every op checks its arguments at the call, throws at once for
 * bad input, and otherwise returns a new tensor at once while the work runs asynchronously.
 *
 * The class is built in layers, one file per family of ops: core.ts (records, `to`, `data`,
 * `dispose`), elementwise_ops.ts, reductions.ts, linalg.ts and shape_ops.ts.
 *
 * @module
 */
import { setTensorClass } from "./core.ts";
import { LinalgTensor } from "./linalg.ts";

export type {
  BackwardOptions,
  GradFn,
  GradRecorder,
  MmOptions,
  OpContext,
  ReduceOptions,
  SoftmaxCrossEntropyOptions,
  SubOptions,
  ToOptions,
} from "./options.ts";
export { checkDevice, checkShape, describe } from "./checks.ts";
export {
  moveInPlace,
  noteValues,
  recordOf,
  setCreationHook,
  setGradRecorder,
  TensorCore,
  trackOp,
  wrap,
} from "./core.ts";
export { ElementwiseTensor } from "./elementwise_ops.ts";
export { ReductionTensor } from "./reductions.ts";
export { ShapeTensor } from "./shape_ops.ts";
export { LinalgTensor } from "./linalg.ts";

/**
 * A float32 tensor on one device. Ops return at once; `data()` waits for the values.
 * Its members are documented on the layers it is built from, one family each:
 * {@link TensorCore} (shape, device, `to`, `data`, `dispose`, autograd), {@link ElementwiseTensor},
 * {@link ReductionTensor}, {@link ShapeTensor} and {@link LinalgTensor}.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * const t = fromArray([1, 2, 3, 4], [2, 2]);
 * console.log(t.shape, t.size, t.dtype, t.device.name); // [2, 2] 4 "float32" "cpu"
 * console.log(await t.add(1).mul(t).sum().data()); // Float32Array [40]
 * ```
 */
export class Tensor extends LinalgTensor {}

setTensorClass(Tensor);
