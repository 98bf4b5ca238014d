/**
 * Reducing Tensor ops: sums, means, extremes, arg-extremes, softmax and the losses.
 *
 * @module
 */
import { engine } from "../engine/engine.ts";
import { binary } from "../kernels/elementwise.ts";
import { sumCols, sumRows } from "../kernels/layout.ts";
import { logSoftmax, softmaxCrossEntropy } from "../kernels/training.ts";
import { argReduce, type ArgReduceOp } from "../kernels/reduce_index.ts";
import { logSumExp as logSumExpKernel, softmax as softmaxKernel } from "../kernels/softmax.ts";
import type { Tensor } from "./tensor.ts";
import { axisIndex, operandsOf, runKernel, splitAt, trackOp, wrap } from "./core.ts";
import { call, fmt } from "./checks.ts";
import { checkLabels } from "./labels.ts";
import type { ReduceOptions, SoftmaxCrossEntropyOptions } from "./options.ts";
import { ElementwiseTensor } from "./elementwise_ops.ts";

/**
 * The reductions of {@link Tensor} (a layer of the class; use `Tensor`).
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * console.log(await fromArray([1, 2, 3, 4], [2, 2]).sum(1).data()); // Float32Array [3, 7]
 * ```
 */
export class ReductionTensor extends ElementwiseTensor {
  /**
   * Softmax cross-entropy of each row of these logits (`[rows, classes]`) against `labels`,
   * a 1-D tensor of `rows` class indices: per-row `losses` (`[rows]`) and the gradient of
   * `scale * sum(losses)` with respect to the logits. Numerically stable for large logits.
   * Throws a RangeError for shapes that do not fit; a label outside [0, classes) gives NaN.
   *
   * @example
   * ```ts
   * import { fromArray } from "./creation.ts";
   * const logits = fromArray([0, 0, 1000, 0], [2, 2]);
   * const { losses, grad } = logits.softmaxCrossEntropy(fromArray([1, 0], [2]), { scale: 0.5 });
   * console.log(await losses.data()); // Float32Array [0.6931..., 0]
   * console.log(await grad.data()); // Float32Array [0.25, -0.25, 0, 0]
   * ```
   */
  softmaxCrossEntropy(
    labels: Tensor,
    options: SoftmaxCrossEntropyOptions = {},
  ): { losses: Tensor; grad: Tensor } {
    const what = "take the softmax cross-entropy of";
    const [z, y] = operandsOf(this, what, labels);
    const scale = options.scale ?? 1;
    if (!Number.isFinite(scale)) {
      throw new RangeError(`Cannot ${what} ${this} with scale ${scale}: it must be finite`);
    }
    if (this.shape.length !== 2 || labels.shape.length !== 1 || labels.shape[0] !== this.shape[0]) {
      throw new RangeError(
        `Cannot ${what} shape ${fmt(this.shape)} against labels of shape ${fmt(labels.shape)}: ` +
          `it needs 2-D logits [rows, classes] and labels [rows]`,
      );
    }
    const [rows, cols] = this.shape;
    const [losses, grad] = engine().submit({
      name: "softmax_xent",
      kind: "run",
      device: this.device,
      ...call(softmaxCrossEntropy, { rows, cols, scale }),
      inputs: [z, y],
      outputShapes: [[rows], this.shape],
      flops: 5 * rows * cols,
    });
    return { losses: wrap(losses), grad: wrap(grad) };
  }

  /**
   * Sum of all elements (shape `[]`), or along `axis` (negative counts from the end).
   * Throws a RangeError for an axis the tensor does not have.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const a = fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
   * console.log((await a.sum().data())[0], await a.sum(0).data()); // 21 Float32Array [5, 7, 9]
   * console.log(a.sum(1, { keepdim: true }).shape); // [2, 1]
   * ```
   */
  sum(axis?: number, options: ReduceOptions = {}): Tensor {
    return this.#reduce("sum", "sum", axis, options);
  }

  /** Mean of all elements (shape `[]`), or along `axis`; see {@link Tensor.sum}. */
  mean(axis?: number, options: ReduceOptions = {}): Tensor {
    return this.#reduce("mean", "sum", axis, options);
  }

  /**
   * Maximum of all elements (shape `[]`), or along `axis`; see {@link Tensor.sum}. A NaN
   * makes the maximum NaN. Its gradient goes, as in PyTorch, along an axis to the element
   * `argmax` picks, and over all elements evenly to every element equal to the maximum.
   */
  max(axis?: number, options: ReduceOptions = {}): Tensor {
    return this.#reduce("max", "max", axis, options);
  }

  /**
   * Minimum of all elements (shape `[]`), or along `axis`; see {@link Tensor.sum}. A NaN
   * makes the result NaN. The gradient is PyTorch's: along an axis it goes to the index that
   * {@link Tensor.argmin} picks; of all elements it is shared evenly by those equal to the
   * minimum.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const a = fromArray([3, 1, 2, 0, 5, NaN], [2, 3]);
   * console.log(await a.min(1).data(), await a.min().item()); // Float32Array [1, NaN] NaN
   * ```
   */
  min(axis?: number, options: ReduceOptions = {}): Tensor {
    const { values, ax, keepdim } = this.#argReduce("min", "min", axis, options, "values");
    const ctx = ax === undefined ? { keepdim, out: values } : { axis: ax, keepdim };
    return trackOp(values, "min", [this], ctx);
  }

  /**
   * The index of the maximum of all elements (of the flattened tensor, shape `[]`), or along
   * `axis`, as float32 values (like the library's labels; exact below 2^24). The first index
   * of the maximum; the first NaN's where there is one (PyTorch). No gradient.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const a = fromArray([1, 7, 7, NaN, 0, NaN], [2, 3]);
   * console.log(await a.argmax(1).data(), await a.argmax().item()); // Float32Array [1, 0] 3
   * ```
   */
  argmax(axis?: number, options: ReduceOptions = {}): Tensor {
    return this.#argReduce("argmax", "max", axis, options, "indices").indices;
  }

  /** The index of the minimum; see {@link Tensor.argmax}. */
  argmin(axis?: number, options: ReduceOptions = {}): Tensor {
    return this.#argReduce("argmin", "min", axis, options, "indices").indices;
  }

  /**
   * `exp(x) / sum(exp(x))` along `axis` (default: the last), computed stably. A line holding
   * NaN or +Infinity is NaN, as in PyTorch.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([0, 0, 1000, 0], [2, 2]).softmax().data()); // [0.5, 0.5, 1, 0]
   * ```
   */
  softmax(axis = -1): Tensor {
    const [a] = operandsOf(this, "take the softmax of");
    const ax = axisIndex(this, axis, "take the softmax of");
    const { outer, mid, inner } = splitAt(this, ax);
    const params = { outer, mid, inner };
    const out = runKernel(this, "softmax", softmaxKernel, params, [a], this.shape, 5 * this.size);
    return trackOp(out, "softmax", [this], { axis: ax, out });
  }

  /**
   * `log(sum(exp(x)))` of all elements (shape `[]`), or along `axis`, computed stably
   * (PyTorch's `logsumexp`): a +Infinity makes it +Infinity, nothing but -Infinity gives
   * -Infinity, and a NaN NaN. Its gradient is `exp(x - result)` times the incoming one.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const l = await fromArray([0, 0, 1000, 1000], [2, 2]).logSumExp(1).data();
   * console.log(l.map((v) => Math.round(v * 1000) / 1000)); // [0.693, 1000.693]
   * ```
   */
  logSumExp(axis?: number, options: ReduceOptions = {}): Tensor {
    const [a] = operandsOf(this, "take the log-sum-exp of");
    const { ax, keepdim, lines, shape } = this.#lines(axis, options, "take the log-sum-exp of");
    const out = runKernel(this, "logSumExp", logSumExpKernel, lines, [a], shape, 4 * this.size);
    return trackOp(out, "logSumExp", [this], { axis: ax, keepdim, out });
  }

  /**
   * The value of a one-element tensor, once computed (PyTorch's `item()`): a
   * synchronisation point like {@link Tensor.data}. Throws a RangeError at once, before
   * anything is queued, for any other size.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([1, 2, 3], [3]).sum().item()); // 6
   * ```
   */
  item(): Promise<number> {
    operandsOf(this, "take the item of");
    if (this.size !== 1) {
      throw new RangeError(
        `Cannot take the item of ${this}: it has ${this.size} elements, item() needs exactly one`,
      );
    }
    return this.data().then((v) => v[0]);
  }

  /**
   * The lines a reduction along `axis` (all elements when undefined) combines, as
   * `[outer, mid, inner]`, and the shape of its result.
   */
  #lines(axis: number | undefined, options: ReduceOptions, what: string) {
    const keepdim = options.keepdim ?? false;
    const ax = axis === undefined ? undefined : axisIndex(this, axis, what);
    const lines = ax === undefined ? { outer: 1, mid: this.size, inner: 1 } : splitAt(this, ax);
    const shape = ax === undefined
      ? (keepdim ? this.shape.map(() => 1) : [])
      : this.shape.length === 0
      ? []
      : keepdim
      ? this.shape.map((s, i) => i === ax ? 1 : s)
      : this.shape.filter((_, i) => i !== ax);
    return { ax, keepdim, lines, shape };
  }

  /** Values and indices of the min or max along `axis` (all elements when undefined). */
  #argReduce(
    name: string,
    op: ArgReduceOp,
    axis: number | undefined,
    options: ReduceOptions,
    keep: "values" | "indices",
  ): { values: Tensor; indices: Tensor; ax?: number; keepdim: boolean } {
    const [a] = operandsOf(this, `take the ${name} of`);
    const { ax, keepdim, lines, shape } = this.#lines(axis, options, `take the ${name} of`);
    const { outer, mid, inner } = lines;
    const e = engine();
    const [values, indices] = e.submit({
      name,
      kind: "run",
      device: this.device,
      ...call(argReduce, { op, outer, mid, inner }),
      inputs: [a],
      outputShapes: [shape, shape],
      flops: this.size,
    });
    e.dispose(keep === "values" ? indices : values);
    const kept = wrap(keep === "values" ? values : indices);
    return { values: kept, indices: kept, ax, keepdim };
  }

  /**
   * `log(softmax(this))` along `axis` (default: the last), computed stably.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const p = await fromArray([0, 0, 1000, 0], [2, 2]).logSoftmax(1).data();
   * console.log(p.map((v) => Math.round(v * 1000) / 1000)); // [-0.693, -0.693, 0, -1000]
   * ```
   */
  logSoftmax(axis = -1): Tensor {
    const [a] = operandsOf(this, "take the log-softmax of");
    const ax = axisIndex(this, axis, "take the log-softmax of");
    const { outer, mid, inner } = splitAt(this, ax);
    const out = runKernel(
      this,
      "logSoftmax",
      logSoftmax,
      { outer, mid, inner },
      [a],
      this.shape,
      5 * this.size,
    );
    return trackOp(out, "logSoftmax", [this], { axis: ax, out });
  }

  /**
   * The mean cross-entropy of these logits (`[batch, classes]`) against `labels`, a 1-D
   * tensor of `batch` class indices (whole numbers stored as float32) on the same device:
   * a scalar (shape `[]`), like PyTorch's `F.cross_entropy`. Throws a RangeError for shapes
   * that do not fit, and for a label outside [0, classes) when the labels are host values
   * already computed; otherwise such a label fails the op at the next synchronisation.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const logits = fromArray([0, 0, 1000, 0], [2, 2], { requiresGrad: true });
   * const loss = logits.crossEntropy(fromArray([1, 0], [2]));
   * console.log(loss.shape, (await loss.data())[0]); // [] 0.3465...
   * loss.backward();
   * console.log(await logits.grad!.data()); // Float32Array [0.25, -0.25, 0, 0]
   * ```
   */
  crossEntropy(labels: Tensor): Tensor {
    const what = "take the cross-entropy of";
    const [z, y] = operandsOf(this, what, labels);
    if (this.shape.length !== 2 || labels.shape.length !== 1 || labels.shape[0] !== this.shape[0]) {
      throw new RangeError(
        `Cannot ${what} shape ${fmt(this.shape)} against labels of shape ${fmt(labels.shape)}: ` +
          `it needs 2-D logits [batch, classes] and labels [batch]`,
      );
    }
    const [rows, cols] = this.shape;
    const gate = checkLabels(labels, y, cols, this.device);
    const e = engine();
    const [losses, grad] = e.submit({
      name: "crossEntropy",
      kind: "run",
      device: this.device,
      ...call(softmaxCrossEntropy, { rows, cols, scale: 1 / rows }),
      inputs: [z, y],
      outputShapes: [[rows], this.shape],
      flops: 5 * rows * cols,
    });
    const [loss] = e.submit({
      name: "crossEntropy",
      kind: "run",
      device: this.device,
      ...call(sumRows, { rows: 1, cols: rows, scale: 1 / rows }),
      inputs: [losses],
      outputShapes: [[]],
      flops: rows,
    });
    e.dispose(losses);
    let checkedLoss = loss;
    if (gate) {
      // loss + 0: made only once the labels' check has passed, so a bad label fails it.
      [checkedLoss] = e.submit({
        name: "crossEntropy",
        kind: "run",
        device: this.device,
        ...call(binary, { op: "add", broadcast: "one", n: 1, cols: 1, scalar: 0 }),
        inputs: [loss, gate],
        outputShapes: [[]],
      });
      e.dispose(loss);
      e.dispose(gate);
    }
    const out = wrap(checkedLoss);
    const g = wrap(grad);
    if (!trackOp(out, "crossEntropy", [this], { grad: g }).gradFn) g.dispose();
    return out;
  }

  #reduce(
    name: "sum" | "mean" | "max",
    op: "sum" | "max",
    axis: number | undefined,
    options: ReduceOptions,
  ): Tensor {
    const [a] = operandsOf(this, name);
    const keepdim = options.keepdim ?? false;
    const n = this.size;
    let out: Tensor;
    let ax: number | undefined;
    if (axis === undefined) {
      const shape = keepdim ? this.shape.map(() => 1) : [];
      const params = { rows: 1, cols: n, op, scale: name === "mean" ? 1 / n : 1 };
      out = runKernel(this, name, sumRows, params, [a], shape, n);
    } else {
      ax = axisIndex(this, axis, name);
      const { outer, mid, inner } = splitAt(this, ax);
      const shape = this.shape.length === 0
        ? []
        : keepdim
        ? this.shape.map((s, i) => i === ax ? 1 : s)
        : this.shape.filter((_, i) => i !== ax);
      const scale = name === "mean" ? 1 / mid : 1;
      out = inner === 1
        ? runKernel(this, name, sumRows, { rows: outer, cols: mid, op, scale }, [a], shape, n)
        : runKernel(
          this,
          name,
          sumCols,
          { outer, rows: mid, cols: inner, op, scale },
          [a],
          shape,
          n,
        );
    }
    return trackOp(out, name, [this], { axis: ax, keepdim, out });
  }
}
