/**
 * The options and autograd hook types of the Tensor API.
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";

/**
 * Options of {@link Tensor.to}.
 *
 * @example
 * ```ts
 * import { cpu, ones } from "../../mod.ts";
 * const onHost = ones([2]).to(cpu(), { nonBlocking: true });
 * console.log(onHost.device.name); // "cpu"
 * ```
 */
export interface ToOptions {
  /**
   * true: the copy runs as soon as its input is ready, overlapping later work. false (as in
   * PyTorch): ops submitted after it are not sent before it has landed.
   * @default {false}
   */
  nonBlocking?: boolean;
}

/**
 * Options of {@link Tensor.mm}.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * const a = fromArray([1, 2, 3, 4, 5, 6], [3, 2]);
 * console.log(a.mm(a, { transA: true }).shape); // [2, 2]
 * ```
 */
export interface MmOptions {
  /**
   * Use this tensor transposed (it is read as stored, never copied).
   * @default {false}
   */
  transA?: boolean;
  /**
   * Use the other tensor transposed.
   * @default {false}
   */
  transB?: boolean;
}

/**
 * Options of {@link Tensor.softmaxCrossEntropy}.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * const { grad } = fromArray([0, 0], [1, 2]).softmaxCrossEntropy(fromArray([0], [1]), { scale: 2 });
 * console.log(await grad.data()); // Float32Array [-1, 1]
 * ```
 */
export interface SoftmaxCrossEntropyOptions {
  /**
   * Factor of the gradient: 1 / batch size gives the gradient of the mean loss.
   * @default {1}
   */
  scale?: number;
}

/**
 * Options of {@link Tensor.sub_}.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * const p = fromArray([1, 1], [2]);
 * p.sub_(fromArray([1, 2], [2]), { alpha: 0.5 });
 * console.log(await p.data()); // Float32Array [0.5, 0]
 * ```
 */
export interface SubOptions {
  /**
   * Factor of the subtrahend: `this -= alpha * other`.
   * @default {1}
   */
  alpha?: number;
}

/**
 * Options of {@link Tensor.sum}, {@link Tensor.mean}, {@link Tensor.max}, {@link Tensor.min},
 * {@link Tensor.argmax} and {@link Tensor.argmin}.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * console.log(fromArray([1, 2, 3, 4], [2, 2]).mean(1, { keepdim: true }).shape); // [2, 1]
 * ```
 */
export interface ReduceOptions {
  /**
   * Keep the reduced axis with size 1 (so the result broadcasts against the input).
   * @default {false}
   */
  keepdim?: boolean;
}

/**
 * Options of {@link Tensor.backward}.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * const x = fromArray([3], [1], { requiresGrad: true });
 * const y = x.mul(x).sum();
 * y.backward(undefined, { retainGraph: true });
 * y.backward(); // the graph was kept: the gradients add up
 * console.log(await x.grad!.data()); // Float32Array [12]
 * ```
 */
export interface BackwardOptions {
  /**
   * Keep the graph so that `backward()` may run through it again.
   * @default {false}
   */
  retainGraph?: boolean;
}

/**
 * The op that made a tensor, for the backward pass (PyTorch's `grad_fn`): its name, its
 * inputs and what its gradient rule needs. Made by the autograd layer.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * const x = fromArray([1, 2], [2], { requiresGrad: true });
 * console.log(x.gradFn, x.exp().gradFn?.name); // undefined "exp"
 * ```
 */
export interface GradFn {
  /** The op's name, as in the trace (`"mm"`, `"add"`, ...). */
  readonly name: string;
  /** Where the op was created, for errors. */
  readonly site: Error;
}

/**
 * The hooks through which the autograd layer (lib/autograd) sees the ops. The Tensor class
 * records nothing itself; the layer installs these when it is loaded (mod.ts loads it).
 */
export interface GradRecorder {
  /** Whether ops are being recorded now (false inside `noGrad`). */
  enabled(): boolean;
  /** Records `out = op(inputs)` when an input requires grad; `ctx` is what its rule needs. */
  record(out: Tensor, op: string, inputs: readonly Tensor[], ctx: OpContext): void;
  /** Runs the backward pass from `t`. */
  backward(t: Tensor, gradient: Tensor | undefined, options: BackwardOptions): void;
}

/** What a gradient rule needs besides the inputs: options of the op and tensors it saved. */
export type OpContext = Readonly<Record<string, unknown>>;
