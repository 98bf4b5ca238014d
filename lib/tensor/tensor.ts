/**
 * The Tensor API (float32). Every op checks its arguments at the call, throws at once for
 * bad input, and otherwise returns a new tensor at once while the work runs asynchronously.
 *
 * @module
 */
import { cpu, type Device } from "../devices/device.ts";
import { engine, type TensorRecord } from "../engine/engine.ts";
import type { OpRequest } from "../engine/records.ts";
import { latest } from "../engine/capture.ts";
import type { BinaryOp, Broadcast, UnaryOp } from "../kernels/elementwise.ts";
import { broadcastShape, expandParams, stridedParams } from "../kernels/broadcast.ts";
import type { KernelParams, KernelSpec } from "../kernels/kernel.ts";
import { binary, unary } from "../kernels/elementwise.ts";
import { binaryStrided, expand } from "../kernels/broadcast.ts";
import { narrow, sumCols, sumRows, transpose, unnarrow } from "../kernels/layout.ts";
import {
  assertLabels,
  findBadLabel,
  logSoftmax,
  reluBackward,
  softmaxCrossEntropy,
  subInPlace,
} from "../kernels/training.ts";
import { matmul, matmulTilingFor } from "../kernels/matmul.ts";

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
 * Options of {@link Tensor.sum}, {@link Tensor.mean} and {@link Tensor.max}.
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

let recorder: GradRecorder | undefined;
/** Told of every tensor made (set by lib/autograd's forward scopes). */
let onCreate: ((t: Tensor) => void) | undefined;

/** Installs the hook told of every tensor made (called once by lib/autograd). */
export function setCreationHook(hook: (t: Tensor) => void): void {
  onCreate = hook;
}

/** Installs the autograd layer's hooks (called once by lib/autograd). */
export function setGradRecorder(r: GradRecorder): void {
  recorder = r;
}

/** A kernel and its parameters for a request: the parameters are checked against the spec. */
function call<P extends KernelParams>(
  spec: KernelSpec<P>,
  params: P,
): { kernel: string; params: P } {
  return { kernel: spec.name, params };
}

const records = new WeakMap<Tensor, TensorRecord>();
const collected = new FinalizationRegistry<TensorRecord>((rec) => engine().dispose(rec));

/** The engine's record of a tensor (for autopar's own layers, not for users). */
export function recordOf(t: Tensor): TensorRecord {
  let rec = records.get(t);
  if (!rec) throw new TypeError(`Cannot use ${String(t)}: it is not an autopar Tensor`);
  if (rec.successor) {
    // Updated in place by a replayed step (capture.ts): this tensor names the newest version.
    const newest = latest(rec);
    collected.unregister(rec);
    records.set(t, newest);
    collected.register(t, newest, newest);
    rec = newest;
  }
  return rec;
}

/** Wraps an engine record in a Tensor; the record is disposed when the Tensor is collected. */
export function wrap(rec: TensorRecord): Tensor {
  return new Tensor(rec);
}

const fmt = (shape: readonly number[]) => `[${shape.join(", ")}]`;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((n, i) => n === b[i]);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Throws unless `device` is the host or a working device from `tryAllGpus()`: a TypeError
 * for something else, an Error for a device that was closed or lost.
 */
export function checkDevice(device: unknown, what: string): Device {
  const problem = engine().deviceProblem(device);
  if (problem === undefined) return device as Device;
  const d = device as Partial<Device> | null | undefined;
  const name = typeof d === "object" && d !== null && typeof d.name === "string"
    ? d.name
    : String(device);
  if (/not a device/.test(problem)) throw new TypeError(`Cannot ${what} on ${name}: ${problem}`);
  throw new Error(`Cannot ${what} on ${name}: ${problem}`);
}

/** Throws a RangeError unless every size is a whole number >= 1 and the tensor fits `device`. */
export function checkShape(shape: unknown, device: Device, what: string): readonly number[] {
  if (!Array.isArray(shape) || !shape.every((n) => Number.isInteger(n) && n >= 1)) {
    throw new RangeError(
      `Cannot ${what} with shape ${JSON.stringify(shape)}: sizes must be whole numbers >= 1`,
    );
  }
  const bytes = sizeOf(shape) * 4;
  if (bytes > device.info.maxStorageBufferBindingSize) {
    throw new RangeError(
      `Cannot ${what} with shape ${fmt(shape)} on ${device.name}: its ${bytes} bytes exceed the ` +
        `device's largest binding, ${device.info.maxStorageBufferBindingSize} bytes`,
    );
  }
  return Object.freeze([...shape]);
}

/** What is known of a tensor's values as class indices: checked once, where they were made. */
interface IndexFacts {
  /** The tensor whose values these facts describe (slices and copies of it share them). */
  origin: TensorRecord;
  /** The first value that is not a whole number >= 0, and its row. */
  bad?: { row: number; value: number };
  /** Otherwise the first largest value, and its row. */
  max?: { row: number; value: number };
}

const indexFacts = new WeakMap<TensorRecord, IndexFacts>();

/** Labels up to this length are checked as class indices when they are made (cheap). */
const CHECK_AT_CREATION = 4096;

function factsOf(values: ArrayLike<number>, origin: TensorRecord): IndexFacts {
  const max = { row: 0, value: -1 };
  for (let r = 0; r < values.length; r++) {
    const v = values[r];
    if (!(Number.isInteger(v) && v >= 0)) return { origin, bad: { row: r, value: v } };
    if (v > max.value) [max.row, max.value] = [r, v];
  }
  return { origin, max };
}

/** A slice or copy of `from` is known to hold class indices if `from` is (conservatively). */
function inheritFacts(from: TensorRecord, to: Tensor): void {
  const f = indexFacts.get(from);
  if (f) indexFacts.set(recordOf(to), f);
}

/**
 * Notes, for `crossEntropy`, whether the values `t` was made from are class indices, so
 * that labels uploaded to a device need no check there (creation functions call it).
 */
export function noteValues(t: Tensor, values: ArrayLike<number>): void {
  const rec = recordOf(t);
  if (values.length <= CHECK_AT_CREATION) indexFacts.set(rec, factsOf(values, rec));
}

/** Throws a RangeError naming the first label out of [0, cols), if any. */
function verifyFacts(facts: IndexFacts, cols: number, what: string): void {
  const bad = facts.bad ?? (facts.max!.value >= cols ? facts.max : undefined);
  if (bad) {
    throw new RangeError(
      `Cannot take the cross-entropy of ${what}: label ${bad.value} at row ${bad.row} is not ` +
        `a class index in [0, ${cols})`,
    );
  }
}

/**
 * Checks class indices before the op is queued when they are known (noted at creation, or
 * host values already computed): returns undefined or throws naming the label. Otherwise
 * queues a check that fails, naming the first bad label, and returns a record on `device`
 * that is made only when the check passed: the loss depends on it, so reading the loss
 * fails too.
 */
function checkLabels(
  labels: Tensor,
  rec: TensorRecord,
  cols: number,
  device: Device,
): TensorRecord | undefined {
  const e = engine();
  const op = "the cross-entropy";
  let facts = indexFacts.get(rec);
  if (!facts && rec.device.kind === "cpu" && rec.state === "done") {
    facts = factsOf(e.hostValues(rec), rec);
  }
  if (facts) {
    verifyFacts(facts, cols, String(labels));
    // A replay checks the labels it is given, where these came from, before it runs.
    const origin = facts.origin;
    e.capture?.check((resolve) => {
      const given = resolve(origin);
      if (!given) return;
      const known = indexFacts.get(given) ??
        (given.device.kind === "cpu" && given.state === "done"
          ? factsOf(e.hostValues(given), given)
          : undefined);
      if (!known) {
        throw new TypeError(
          `Cannot replay a step with labels whose values are not known yet: give labels made ` +
            `by fromArray, or host values already computed`,
        );
      }
      verifyFacts(known, cols, `the labels Tensor${fmt(given.shape)}`);
    });
    return undefined;
  }
  // Each step consumes the previous step's temporary (never the labels themselves).
  const step = (req: Omit<OpRequest, "name" | "outputShapes">, temporary?: TensorRecord) => {
    const [out] = e.submit({ name: "checkLabels", outputShapes: [[2]], ...req });
    if (temporary) e.dispose(temporary);
    return out;
  };
  const found = step({
    kind: "run",
    device: rec.device,
    ...call(findBadLabel, { rows: rec.shape[0], cols }),
    inputs: [rec],
  });
  const onHost = rec.device.kind === "webgpu"
    ? step({ kind: "read", device: rec.device, inputs: [found], internal: true }, found)
    : found;
  const checked = step({
    kind: "run",
    device: cpu(),
    ...call(assertLabels, { cols, op }),
    inputs: [onHost],
  }, onHost);
  return device.kind === "cpu"
    ? checked
    : step({ kind: "write", device, inputs: [checked], internal: true }, checked);
}

/**
 * A float32 tensor on one device. Ops return at once; `data()` waits for the values.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * const t = fromArray([1, 2, 3, 4], [2, 2]);
 * console.log(t.shape, t.size, t.dtype, t.device.name); // [2, 2] 4 "float32" "cpu"
 * console.log(await t.add(1).mul(t).sum().data()); // Float32Array [40]
 * ```
 */
export class Tensor {
  /** Sizes of each dimension. */
  readonly shape: readonly number[];
  /** The element type; only float32 for now. */
  readonly dtype = "float32" as const;
  /** Where the tensor lives. */
  readonly device: Device;
  /**
   * The gradient accumulated by `backward()` for a tensor that requires grad, on its
   * device; `undefined` until then and after an optimizer's `zeroGrad()`.
   */
  grad: Tensor | undefined = undefined;
  /** The op that made this tensor when it was recorded for autograd; undefined for leaves. */
  gradFn: GradFn | undefined = undefined;
  #requiresGrad = false;

  /** Made by autopar's creation functions and ops, not by users. */
  constructor(rec: TensorRecord) {
    this.shape = rec.shape;
    this.device = rec.device;
    records.set(this, rec);
    collected.register(this, rec, rec);
    onCreate?.(this);
  }

  /** Elements in the tensor. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /**
   * Whether ops on this tensor are recorded so that `backward()` can compute its gradient.
   * Set it on leaves (tensors you made, such as parameters); an op's output requires grad
   * when one of its inputs does. Throws a TypeError when set to false on an op's output.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const w = fromArray([1, 2], [2]);
   * w.requiresGrad = true;
   * console.log(w.mul(3).requiresGrad); // true
   * ```
   */
  get requiresGrad(): boolean {
    return this.#requiresGrad;
  }

  set requiresGrad(value: boolean) {
    if (typeof value !== "boolean") {
      throw new TypeError(`Cannot set requiresGrad of ${this} to ${value}: it must be a boolean`);
    }
    if (!value && this.gradFn) {
      throw new TypeError(
        `Cannot set requiresGrad to false on ${this}, the output of ${this.gradFn.name}: ` +
          `use detach() for a tensor outside the graph`,
      );
    }
    this.#requiresGrad = value;
  }

  /**
   * Computes the gradient of this scalar with respect to every tensor that requires grad and
   * that it was computed from, and accumulates it into their `.grad`. Returns at once: the
   * gradients are queued work like any op. The graph is freed as it goes unless
   * `retainGraph` is set. Throws before queuing anything when this is not a scalar (give
   * `gradient` of this shape then), does not require grad, or its graph was freed.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const x = fromArray([1, 2, 3], [3], { requiresGrad: true });
   * x.mul(x).sum().backward(); // d/dx sum(x^2) = 2x
   * console.log(await x.grad!.data()); // Float32Array [2, 4, 6]
   * ```
   */
  backward(gradient?: Tensor, options: BackwardOptions = {}): void {
    if (!recorder) {
      throw new TypeError(`Cannot run backward(): import autopar from mod.ts to load autograd`);
    }
    recorder.backward(this, gradient, options);
  }

  /**
   * A tensor with this one's values that is not part of any graph (a copy on the same
   * device): gradients do not flow through it.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const x = fromArray([1, 2], [2], { requiresGrad: true });
   * console.log(x.mul(2).detach().requiresGrad); // false
   * ```
   */
  detach(): Tensor {
    const [a] = this.#operands("detach");
    return this.#run("detach", unary, { op: "copy", n: this.size }, [a], this.shape, 0);
  }

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
    const [a, b] = this.#operands("mm", other);
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
    const out = this.#run("mm", matmul, params, [a, b], shape, 2 * M * N * K);
    return this.#track(out, "mm", [this, other], { transA, transB });
  }

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
    const [a] = this.#operands("reshape");
    const target = this.#resolveShape(shape);
    const out = this.#run("reshape", unary, { op: "copy", n: this.size }, [a], target, 0);
    return this.#track(out, "reshape", [this], {});
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
    const [x, g] = this.#operands("take the relu gradient of", dy);
    this.#sameShape("take the relu gradient of", dy);
    return this.#run("relu_backward", reluBackward, { n: this.size }, [x, g], this.shape, 0);
  }

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
    const [z, y] = this.#operands(what, labels);
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
    const [target, g] = this.#operands("update", other);
    if (this.requiresGrad && recorder?.enabled()) {
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
    collected.unregister(target);
    records.set(this, updated);
    collected.register(this, updated, updated);
    e.dispose(target);
    return this;
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
    const [a] = this.#operands("narrow");
    const ax = this.#axis(axis, "narrow");
    const { outer, mid, inner } = this.#split(ax);
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
    const out = this.#run("narrow", narrow, params, [a], shape, 0);
    inheritFacts(a, out);
    return this.#track(out, "narrow", [this], { axis: ax, start, size: mid });
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
    const [a] = this.#operands("unnarrow");
    const ax = this.#axis(axis, "unnarrow");
    const { outer, mid: length, inner } = this.#split(ax);
    if (!Number.isInteger(start) || !Number.isInteger(size) || start < 0 || start + length > size) {
      throw new RangeError(
        `Cannot place shape ${fmt(this.shape)} from ${start} along axis ${axis} in size ${size}`,
      );
    }
    const shape = this.shape.map((s, i) => i === ax ? size : s);
    const params = { outer, mid: size, inner, start, length };
    return this.#run("unnarrow", unnarrow, params, [a], shape, 0);
  }

  /** The transpose of a 2-D tensor. Throws a RangeError for other ranks. */
  transpose(): Tensor {
    const [a] = this.#operands("transpose");
    if (this.shape.length !== 2) {
      throw new RangeError(
        `Cannot transpose shape ${fmt(this.shape)}: transpose needs a 2-D tensor`,
      );
    }
    const [rows, cols] = this.shape;
    const out = this.#run("transpose", transpose, { rows, cols }, [a], [cols, rows], 0);
    return this.#track(out, "transpose", [this], {});
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
   * Maximum of all elements (shape `[]`), or along `axis`; see {@link Tensor.sum}. Its
   * gradient goes to every element equal to the maximum.
   */
  max(axis?: number, options: ReduceOptions = {}): Tensor {
    return this.#reduce("max", "max", axis, options);
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
    const [a] = this.#operands("take the log-softmax of");
    const ax = this.#axis(axis, "take the log-softmax of");
    const { outer, mid, inner } = this.#split(ax);
    const out = this.#run(
      "logSoftmax",
      logSoftmax,
      { outer, mid, inner },
      [a],
      this.shape,
      5 * this.size,
    );
    return this.#track(out, "logSoftmax", [this], { axis: ax, out });
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
    const [z, y] = this.#operands(what, labels);
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
    if (!this.#track(out, "crossEntropy", [this], { grad: g }).gradFn) g.dispose();
    return out;
  }

  /**
   * A copy on `device` (the same tensor when it is already there). A copy between two
   * WebGPU devices goes through the host.
   *
   * @example
   * ```ts
   * import { cpu } from "../devices/device.ts";
   * import { ones } from "./creation.ts";
   * const y = ones([2, 2]).to(cpu(), { nonBlocking: true });
   * console.log(y.device.name); // "cpu"
   * ```
   */
  to(device: Device, options: ToOptions = {}): Tensor {
    const target = checkDevice(device, "copy a tensor");
    const [a] = this.#operands("copy");
    if (target === this.device) return this;
    checkShape(this.shape, target, `copy to ${target.name}`);
    const e = engine();
    const label = `${this.device.name}->${target.name}`;
    let staged = a;
    if (this.device.kind === "webgpu") {
      [staged] = e.submit({
        name: "copy",
        kind: "read",
        device: this.device,
        inputs: [a],
        outputShapes: [this.shape],
        internal: target.kind === "webgpu",
        label,
        blocking: !options.nonBlocking && target.kind === "cpu",
      });
      if (target.kind === "cpu") {
        const onHost = wrap(staged);
        inheritFacts(a, onHost);
        return this.#track(onHost, "to", [this], {});
      }
    }
    const [out] = e.submit({
      name: "copy",
      kind: "write",
      device: target,
      inputs: [staged],
      outputShapes: [this.shape],
      label,
      blocking: !options.nonBlocking,
    });
    if (staged !== a) e.dispose(staged);
    const moved = wrap(out);
    inheritFacts(a, moved);
    return this.#track(moved, "to", [this], {});
  }

  /**
   * The values, once computed. A synchronisation point: rejects with an AggregateError of
   * the failure that kept this tensor from being computed.
   */
  async data(): Promise<Float32Array> {
    const [a] = this.#operands("read data of");
    const e = engine();
    let rec = a;
    if (a.device.kind === "webgpu") {
      [rec] = e.submit({
        name: "data",
        kind: "read",
        device: a.device,
        inputs: [a],
        outputShapes: [a.shape],
        internal: true,
      });
    } else e.retain(a); // a dispose() while this waits must not drop the values
    try {
      await e.settled(rec);
      if (rec.state === "failed") {
        e.markReported(rec.error!);
        throw new AggregateError([rec.error!], `Cannot read ${this}: ${rec.error!.message}`);
      }
      const values = e.hostValues(rec);
      return rec === a ? values.slice() : values;
    } finally {
      if (rec === a) e.release(a);
      else e.dispose(rec);
    }
  }

  /** Frees the storage once the work that reads it is done. Later use throws a TypeError. */
  dispose(): void {
    const rec = recordOf(this);
    collected.unregister(rec);
    engine().dispose(rec);
  }

  /** True after `dispose()`. */
  get disposed(): boolean {
    return recordOf(this).disposed;
  }

  /** For messages: `Tensor[2, 3] on gpu:0`. */
  toString(): string {
    return `Tensor${fmt(this.shape)} on ${this.device.name}`;
  }

  #operands(what: string, ...others: Tensor[]): TensorRecord[] {
    const recs = [this, ...others].map((t) => {
      if (!(t instanceof Tensor)) {
        throw new TypeError(`Cannot ${what} ${this} and ${String(t)}: the operand is not a Tensor`);
      }
      const rec = recordOf(t);
      if (rec.disposed) throw new TypeError(`Cannot ${what} ${t}: it was disposed`);
      return rec;
    });
    for (const t of others) {
      if (t.device !== this.device) {
        throw new TypeError(
          `Cannot ${what} tensors on different devices, ${this.device.name} and ${t.device.name}: ` +
            `move one with .to(device) first`,
        );
      }
    }
    const gone = engine().deviceProblem(this.device);
    if (gone) throw new Error(`Cannot ${what} ${this}: ${gone}`);
    return recs;
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
      const [a] = this.#operands(op);
      if (!Number.isFinite(other)) {
        throw new RangeError(`Cannot ${op} ${this} and ${other}: the scalar must be finite`);
      }
      const params = this.#bparams(op, "scalar", other);
      const out = this.#run(op, binary, params, [a], this.shape, this.size);
      return this.#track(out, op, [this], { scalar: other });
    }
    const [a, b] = this.#operands(op, other);
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
      ? this.#run(op, binary, { ...this.#bparams(op, broadcast, 0), n }, [a, b], out, n)
      : this.#run(
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
    return this.#track(t, op, [this, other], op === "div" ? { out: t } : {});
  }

  #unary(op: UnaryOp): Tensor {
    const [a] = this.#operands(op);
    const out = this.#run(op, unary, { op, n: this.size }, [a], this.shape, this.size);
    return this.#track(out, op, [this], { out });
  }

  /** The axis `axis` (negative from the end) as an index; throws a RangeError when out of range. */
  #axis(axis: number, what: string): number {
    const rank = this.shape.length;
    if (!Number.isInteger(axis) || axis < -Math.max(rank, 1) || axis >= Math.max(rank, 1)) {
      throw new RangeError(
        `Cannot ${what} shape ${fmt(this.shape)} along axis ${axis}: ` +
          `axis must be a whole number in [${-Math.max(rank, 1)}, ${Math.max(rank, 1) - 1}]`,
      );
    }
    return axis < 0 ? axis + Math.max(rank, 1) : axis;
  }

  /** The shape as `[outer, mid, inner]` around `axis`. */
  #split(axis: number): { outer: number; mid: number; inner: number } {
    return {
      outer: sizeOf(this.shape.slice(0, axis)),
      mid: this.shape[axis] ?? 1,
      inner: sizeOf(this.shape.slice(axis + 1)),
    };
  }

  #reduce(
    name: "sum" | "mean" | "max",
    op: "sum" | "max",
    axis: number | undefined,
    options: ReduceOptions,
  ): Tensor {
    const [a] = this.#operands(name);
    const keepdim = options.keepdim ?? false;
    const n = this.size;
    let out: Tensor;
    let ax: number | undefined;
    if (axis === undefined) {
      const shape = keepdim ? this.shape.map(() => 1) : [];
      const params = { rows: 1, cols: n, op, scale: name === "mean" ? 1 / n : 1 };
      out = this.#run(name, sumRows, params, [a], shape, n);
    } else {
      ax = this.#axis(axis, name);
      const { outer, mid, inner } = this.#split(ax);
      const shape = this.shape.length === 0
        ? []
        : keepdim
        ? this.shape.map((s, i) => i === ax ? 1 : s)
        : this.shape.filter((_, i) => i !== ax);
      const scale = name === "mean" ? 1 / mid : 1;
      out = inner === 1
        ? this.#run(name, sumRows, { rows: outer, cols: mid, op, scale }, [a], shape, n)
        : this.#run(name, sumCols, { outer, rows: mid, cols: inner, op, scale }, [a], shape, n);
    }
    return this.#track(out, name, [this], { axis: ax, keepdim, out });
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

  /** Records `out = op(inputs)` for autograd when an input requires grad and grad is on. */
  #track(out: Tensor, op: string, inputs: readonly Tensor[], ctx: OpContext): Tensor {
    if (recorder && inputs.some((t) => t.#requiresGrad) && recorder.enabled()) {
      out.#requiresGrad = true;
      recorder.record(out, op, inputs, ctx);
    }
    return out;
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
    const [a] = this.#operands("expand");
    const target = broadcastShape(this.shape, shape);
    if (!target || !sameShape(target, shape)) {
      throw new RangeError(`Cannot expand shape ${fmt(this.shape)} to ${fmt(shape)}`);
    }
    const out = checkShape(shape, this.device, "expand");
    const t = this.#run("expand", expand, expandParams(this.shape, out), [a], out, 0);
    return this.#track(t, "expand", [this], {});
  }

  #bparams(op: BinaryOp, broadcast: Broadcast, scalar: number) {
    return { op, broadcast, n: this.size, cols: this.shape[this.shape.length - 1] ?? 1, scalar };
  }

  #run<P extends KernelParams>(
    name: string,
    spec: KernelSpec<P>,
    params: P,
    inputs: TensorRecord[],
    shape: readonly number[],
    flops: number,
  ): Tensor {
    const [out] = engine().submit({
      name,
      kind: "run",
      device: this.device,
      kernel: spec.name,
      params,
      inputs,
      outputShapes: [shape],
      flops,
    });
    return wrap(out);
  }
}
