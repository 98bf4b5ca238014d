/**
 * Elementwise Tensor ops: arithmetic with broadcasting, activations, comparisons and in-place updates.
 *
 * @module
 */
import { engine } from "../engine/engine.ts";
import type { BinaryOp, Broadcast, UnaryOp } from "../kernels/elementwise.ts";
import { broadcastShape, stridedParams } from "../kernels/broadcast.ts";
import { binary, unary } from "../kernels/elementwise.ts";
import { binaryStrided } from "../kernels/broadcast.ts";
import { reluBackward, subInPlace } from "../kernels/training.ts";
import { copyInPlace } from "../kernels/copy_inplace.ts";
import { clamp as clampKernel, minmax, type MinMaxOp, minmaxParams } from "../kernels/minmax.ts";
import type { Tensor } from "./tensor.ts";
import {
  gradRecording,
  operandsOf,
  rebind,
  recordOf,
  runKernel,
  TensorCore,
  trackOp,
} from "./core.ts";
import { call, checkShape, fmt, sameShape, sizeOf } from "./checks.ts";
import type { SubOptions } from "./options.ts";

/**
 * The elementwise ops of {@link Tensor} (a layer of the class; use `Tensor`).
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * console.log(await fromArray([1, -2], [2]).relu().add(1).data()); // Float32Array [2, 1]
 * ```
 */
export class ElementwiseTensor extends TensorCore {
  /**
   * Elementwise `this + other` with NumPy broadcasting; `other` may be a number. Throws a
   * RangeError naming both shapes when they do not broadcast.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const a = fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
   * console.log(await a.add(fromArray([10, 20], [2, 1])).data()); // [11, 12, 13, 24, 25, 26]
   * ```
   */
  add(other: Tensor | number): Tensor {
    return this.#binary("add", other);
  }

  /** Elementwise `this - other` with NumPy broadcasting; `other` may be a number. */
  sub(other: Tensor | number): Tensor {
    return this.#binary("sub", other);
  }

  /** Elementwise `this * other` with NumPy broadcasting; `other` may be a number. */
  mul(other: Tensor | number): Tensor {
    return this.#binary("mul", other);
  }

  /**
   * Elementwise `this / other` with NumPy broadcasting; `other` may be a number (not 0).
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([1, 2, 3], [3]).div(fromArray([2], [1])).data()); // [0.5, 1, 1.5]
   * ```
   */
  div(other: Tensor | number): Tensor {
    if (other === 0) throw new RangeError(`Cannot divide ${this} by the number 0`);
    return this.#binary("div", other);
  }

  /** Elementwise max(x, 0). */
  relu(): Tensor {
    return this.#unary("relu");
  }

  /** Elementwise `-x`. */
  neg(): Tensor {
    return this.#unary("neg");
  }

  /** Elementwise `e^x`. */
  exp(): Tensor {
    return this.#unary("exp");
  }

  /** Elementwise natural logarithm (NaN below 0, -Infinity at 0). */
  log(): Tensor {
    return this.#unary("log");
  }

  /**
   * Elementwise hyperbolic tangent, exact to float32 even for large inputs.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(await fromArray([0, 1000], [2]).tanh().data()); // Float32Array [0, 1]
   * ```
   */
  tanh(): Tensor {
    return this.#unary("tanh");
  }

  /** Elementwise `1 / (1 + e^-x)`, without overflow for large inputs. */
  sigmoid(): Tensor {
    return this.#unary("sigmoid");
  }

  /** Elementwise square root (NaN below 0). */
  sqrt(): Tensor {
    return this.#unary("sqrt");
  }

  /**
   * The gradient through relu at this tensor: `dy` where this tensor is positive, else 0.
   * This tensor may be relu's input or its output. Throws a RangeError unless `dy` has this
   * tensor's shape.
   *
   * @example
   * ```ts
   * import { fromArray } from "./creation.ts";
   * const x = fromArray([-1, 2, 0, 3], [4]);
   * console.log(await x.reluBackward(fromArray([5, 6, 7, 8], [4])).data()); // [0, 6, 0, 8]
   * ```
   */
  reluBackward(dy: Tensor): Tensor {
    const [x, g] = operandsOf(this, "take the relu gradient of", dy);
    this.#sameShape("take the relu gradient of", dy);
    return runKernel(this, "relu_backward", reluBackward, { n: this.size }, [x, g], this.shape, 0);
  }

  /**
   * In place: `this -= alpha * other` (PyTorch's `sub_`), the SGD update. Returns this tensor,
   * which now names the new values. Work queued earlier that reads this tensor still sees the
   * old values; work queued later sees the new ones. Throws a RangeError unless `other` has
   * this tensor's shape and `alpha` is finite.
   *
   * @example
   * ```ts
   * import { fromArray } from "./creation.ts";
   * const w = fromArray([1, 2], [2]);
   * const before = w.mul(1);
   * w.sub_(fromArray([10, 10], [2]), { alpha: 0.1 });
   * console.log(await w.data(), await before.data()); // Float32Array [0, 1] Float32Array [1, 2]
   * ```
   */
  sub_(other: Tensor, options: SubOptions = {}): this {
    const [target, g] = operandsOf(this, "update", other);
    if (this.requiresGrad && gradRecording()) {
      throw new TypeError(
        `Cannot update ${this} in place: it requires grad, and autograd records the values ` +
          `it was used with; update parameters inside noGrad(() => ...)`,
      );
    }
    this.#sameShape("update", other);
    if (g === target) {
      throw new TypeError(
        `Cannot update ${this} in place from itself: WebGPU cannot bind one buffer as both ` +
          `input and output (use this.mul(1 - alpha) instead)`,
      );
    }
    const alpha = options.alpha ?? 1;
    if (!Number.isFinite(alpha)) {
      throw new RangeError(`Cannot update ${this} with alpha ${alpha}: it must be finite`);
    }
    const e = engine();
    const [updated] = e.submit({
      name: "sub_",
      kind: "run",
      device: this.device,
      ...call(subInPlace, { n: this.size, alpha }),
      inputs: [g],
      inPlace: target,
      outputShapes: [this.shape],
      flops: 2 * this.size,
    });
    // This tensor now names the new version; the old one lives on for the work that reads it.
    rebind(this, target, updated);
    e.dispose(target);
    return this;
  }

  /**
   * In place: this tensor's values become `src`'s (PyTorch's `copy_`), `src` broadcast to
   * this shape and copied from its device when it lives on another. Returns this tensor, which
   * keeps its identity and now names the new values; work queued earlier still sees the old
   * ones. The copy is not recorded for autograd. Throws a RangeError when `src` does not
   * broadcast to this shape, a TypeError when this tensor requires grad while grad is on.
   *
   * @example
   * ```ts
   * import { fromArray, noGrad } from "../../mod.ts";
   * const w = fromArray([1, 2, 3, 4], [2, 2], { requiresGrad: true });
   * noGrad(() => w.copy_(fromArray([5, 6], [2])));
   * console.log(await w.data(), w.requiresGrad); // Float32Array [5, 6, 5, 6] true
   * ```
   */
  copy_(src: Tensor): this {
    const [target] = operandsOf(this, "copy into");
    if (!(src instanceof TensorCore)) {
      throw new TypeError(`Cannot copy ${String(src)} into ${this}: it is not a Tensor`);
    }
    if (src.disposed) throw new TypeError(`Cannot copy ${src} into ${this}: it was disposed`);
    if (this.requiresGrad && gradRecording()) {
      throw new TypeError(
        `Cannot copy into ${this} in place: it requires grad, and autograd records the values ` +
          `it was used with; copy inside noGrad(() => ...)`,
      );
    }
    const fits = broadcastShape(src.shape, this.shape);
    if (!fits || !sameShape(fits, this.shape)) {
      throw new RangeError(
        `Cannot copy shape ${fmt(src.shape)} into shape ${fmt(this.shape)}: it does not ` +
          `broadcast to it`,
      );
    }
    if (recordOf(src) === target) return this;
    const temporaries: Tensor[] = [];
    let from = src;
    if (from.device !== this.device) temporaries.push(from = from.to(this.device));
    if (!sameShape(from.shape, this.shape)) temporaries.push(from = from.expandTo(this.shape));
    const e = engine();
    const [updated] = e.submit({
      name: "copy_",
      kind: "run",
      device: this.device,
      ...call(copyInPlace, { n: this.size }),
      inputs: [recordOf(from)],
      inPlace: target,
      outputShapes: [this.shape],
    });
    for (const t of temporaries) t.dispose();
    rebind(this, target, updated);
    e.dispose(target);
    return this;
  }

  /**
   * Elementwise maximum of this and `other` with NumPy broadcasting (`torch.maximum`): NaN
   * if either is NaN, and 0 of -0 and 0. A tie shares the gradient evenly. Throws a
   * RangeError when the shapes do not broadcast.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const a = fromArray([1, 5, NaN, -0], [4]);
   * console.log(await a.maximum(fromArray([2, 3, 0, 0], [4])).data()); // [2, 5, NaN, 0]
   * ```
   */
  maximum(other: Tensor): Tensor {
    return this.#minmax("maximum", other);
  }

  /** Elementwise minimum (`torch.minimum`): -0 of -0 and 0; see {@link Tensor.maximum}. */
  minimum(other: Tensor): Tensor {
    return this.#minmax("minimum", other);
  }

  /**
   * Each element limited to `[min, max]` (either bound may be left out), as
   * `minimum(maximum(x, min), max)`: NaN stays NaN, and `min > max` gives `max` everywhere.
   * The gradient passes where `min <= x <= max`. Throws a TypeError for a bound that is not
   * a number or when both are missing.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const a = fromArray([-2, 0.5, 3, NaN], [4]);
   * console.log(await a.clamp(0, 1).data(), await a.clamp(undefined, 0).data());
   * // Float32Array [0, 0.5, 1, NaN] Float32Array [-2, 0, 0, NaN]
   * ```
   */
  clamp(min?: number, max?: number): Tensor {
    const [a] = operandsOf(this, "clamp");
    if (min === undefined && max === undefined) {
      throw new TypeError(`Cannot clamp ${this} without bounds: give min, max or both`);
    }
    for (const [name, v] of [["min", min], ["max", max]] as const) {
      if (v !== undefined && typeof v !== "number") {
        throw new TypeError(`Cannot clamp ${this} with ${name} ${String(v)}: it must be a number`);
      }
    }
    const lo = min ?? -Infinity, hi = max ?? Infinity;
    const out = runKernel(this, "clamp", clampKernel, { n: this.size, lo, hi }, [a], this.shape, 0);
    return trackOp(out, "clamp", [this], { lo, hi });
  }

  #minmax(op: MinMaxOp, other: Tensor): Tensor {
    const [a, b] = operandsOf(this, `take the ${op} of`, other);
    const shape = broadcastShape(this.shape, other.shape);
    if (!shape) {
      throw new RangeError(
        `Cannot take the ${op} of shapes ${fmt(this.shape)} and ${fmt(other.shape)}: they do ` +
          `not broadcast (sizes must be equal or 1, aligned from the last dimension)`,
      );
    }
    const out = checkShape(shape, this.device, op);
    const params = minmaxParams(op, this.shape, other.shape, out);
    const t = runKernel(this, op, minmax, params, [a, b], out, sizeOf(out));
    return trackOp(t, op, [this, other], {});
  }

  #sameShape(what: string, other: Tensor): void {
    if (
      other.shape.length !== this.shape.length || other.shape.some((n, i) => n !== this.shape[i])
    ) {
      throw new RangeError(
        `Cannot ${what} ${this} with ${other}: the shapes ${fmt(this.shape)} and ${
          fmt(other.shape)
        } differ`,
      );
    }
  }

  #binary(op: BinaryOp, other: Tensor | number): Tensor {
    if (typeof other === "number") {
      const [a] = operandsOf(this, op);
      if (!Number.isFinite(other)) {
        throw new RangeError(`Cannot ${op} ${this} and ${other}: the scalar must be finite`);
      }
      const params = this.#bparams(op, "scalar", other);
      const out = runKernel(this, op, binary, params, [a], this.shape, this.size);
      return trackOp(out, op, [this], { scalar: other });
    }
    const [a, b] = operandsOf(this, op, other);
    const shape = broadcastShape(this.shape, other.shape);
    if (!shape) {
      throw new RangeError(
        `Cannot ${op} shapes ${fmt(this.shape)} and ${fmt(other.shape)}: they do not ` +
          `broadcast (sizes must be equal or 1, aligned from the last dimension)`,
      );
    }
    const out = checkShape(shape, this.device, op);
    const n = sizeOf(out);
    const last = out[out.length - 1] ?? 1;
    const fits = sameShape(this.shape, out);
    const broadcast: Broadcast | undefined = !fits
      ? undefined
      : sameShape(other.shape, out)
      ? "same"
      : other.size === 1
      ? "one"
      : other.size === last && other.shape[other.shape.length - 1] === last
      ? "row"
      : undefined;
    const t = broadcast
      ? runKernel(this, op, binary, { ...this.#bparams(op, broadcast, 0), n }, [a, b], out, n)
      : runKernel(
        this,
        op,
        binaryStrided,
        stridedParams(op, this.shape, other.shape, out),
        [
          a,
          b,
        ],
        out,
        n,
      );
    // div's rule reads its output: d(a/b)/db = -(a/b)/b.
    return trackOp(t, op, [this, other], op === "div" ? { out: t } : {});
  }

  #unary(op: Exclude<UnaryOp, "copy">): Tensor {
    const [a] = operandsOf(this, op);
    const out = runKernel(this, op, unary, { op, n: this.size }, [a], this.shape, this.size);
    return trackOp(out, op, [this], { out });
  }

  #bparams(op: BinaryOp, broadcast: Broadcast, scalar: number) {
    return { op, broadcast, n: this.size, cols: this.shape[this.shape.length - 1] ?? 1, scalar };
  }
}
