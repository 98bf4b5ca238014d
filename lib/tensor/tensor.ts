/**
 * The Tensor API (float32). Every op checks its arguments at the call, throws at once for
 * bad input, and otherwise returns a new tensor at once while the work runs asynchronously.
 *
 * @module
 */
import type { GradOp } from "./grad_ops.ts";
import { cpu, type Device } from "../devices/device.ts";
import { engine, type TensorRecord } from "../engine/engine.ts";
import type { OpRequest } from "../engine/records.ts";
import { latest } from "../engine/capture.ts";
import { submitCopy } from "../engine/copies.ts";
import { isHostVisible } from "../devices/capabilities.ts";
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
import {
  assertIndices,
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
import { matmulPlan, permutation, sliceRange } from "./shapes.ts";
import { copyInPlace } from "../kernels/copy_inplace.ts";
import { argReduce, type ArgReduceOp } from "../kernels/reduce_index.ts";
import { clamp as clampKernel, minmax, type MinMaxOp, minmaxParams } from "../kernels/minmax.ts";
import { softmax as softmaxKernel } from "../kernels/softmax.ts";
import { formatTensor } from "./format.ts";

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
/** Moves `t` to another device in place; set by the Tensor class, which owns the records. */
let moveTo: (t: Tensor, device: Device) => void;

/**
 * Moves `t` to `device` in place: `t` keeps its identity (and `requiresGrad`) and names a
 * copy there; its old storage is freed once queued work is done with it. Its gradient moves
 * with it. What `Module.to()` does to parameters, like PyTorch's `module.to()`. Throws like
 * {@link Tensor.to}.
 *
 * @example
 * ```ts
 * import { cpu, fromArray } from "../../mod.ts";
 * import { moveInPlace } from "./tensor.ts";
 * const w = fromArray([1, 2], [2], { requiresGrad: true });
 * moveInPlace(w, cpu()); // already there: nothing happens
 * console.log(w.device.name, w.requiresGrad); // "cpu" true
 * ```
 */
export function moveInPlace(t: Tensor, device: Device): void {
  moveTo(t, device);
  if (t.grad) moveTo(t.grad, device);
}

const collected = new FinalizationRegistry<TensorRecord>((rec) => engine().dispose(rec));

/** The engine's record of a tensor (for autopar's own layers, not for users). */
export function recordOf(t: Tensor): TensorRecord {
  let rec = records.get(t);
  if (!rec) throw new TypeError(`Cannot use ${String(t)}: it is not an autopar Tensor`);
  const newest = latest(rec);
  if (newest !== rec) {
    // Updated in place by a replayed step (capture.ts): this tensor names the newest version.
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

let track: (out: Tensor, op: GradOp, inputs: readonly Tensor[], ctx: OpContext) => Tensor;

/**
 * Records `out = op(inputs)` for autograd when an input requires grad and grad is on, as
 * the Tensor's own ops do (for autopar's functions over tensors, such as `cat`).
 */
export function trackOp(
  out: Tensor,
  op: GradOp,
  inputs: readonly Tensor[],
  ctx: OpContext,
): Tensor {
  return track(out, op, inputs, ctx);
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
    : describe(device);
  if (/not a device/.test(problem)) throw new TypeError(`Cannot ${what} on ${name}: ${problem}`);
  throw new Error(`Cannot ${what} on ${name}: ${problem}`);
}

/** A value as a message shows it: strings quoted, BigInts with their `n`, objects by kind. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (Array.isArray(value)) return `[${value.map(describe).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    return value instanceof Tensor ? String(value) : `a ${value.constructor?.name ?? "object"}`;
  }
  return String(value);
}

/**
 * Throws a TypeError unless `shape` is an array, a RangeError unless every size is a whole
 * number >= 1 and the tensor fits `device`.
 */
export function checkShape(shape: unknown, device: Device, what: string): readonly number[] {
  if (!Array.isArray(shape)) {
    throw new TypeError(
      `Cannot ${what} with shape ${describe(shape)}: the shape must be an array of sizes, ` +
        `such as [2, 3] ([] for a scalar)`,
    );
  }
  if (!shape.every((n) => Number.isInteger(n) && n >= 1)) {
    throw new RangeError(
      `Cannot ${what} with shape [${shape.map(describe).join(", ")}]: sizes must be whole ` +
        `numbers >= 1`,
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
  rememberValues(rec, values);
  if (values.length <= CHECK_AT_CREATION) indexFacts.set(rec, factsOf(values, rec));
}

/** Values known without waiting, of small device tensors (for printing). */
const knownValues = new WeakMap<TensorRecord, Float32Array>();
/** Device tensors up to this size remember their values once read or uploaded. */
const REMEMBER_UP_TO = 1024;

function rememberValues(rec: TensorRecord, values: ArrayLike<number>): void {
  if (!isHostVisible(rec.device) && values.length <= REMEMBER_UP_TO) {
    knownValues.set(rec, Float32Array.from(values));
  }
}

/** The values of `rec` if they are known now: a computed host tensor, or remembered. */
function valuesNow(rec: TensorRecord): Float32Array | undefined {
  if (rec.disposed || rec.freed) return undefined;
  if (isHostVisible(rec.device)) {
    return rec.state === "done" ? engine().hostValues(rec) : undefined;
  }
  return knownValues.get(rec);
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
  if (!facts && isHostVisible(rec.device) && rec.state === "done") {
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
        (isHostVisible(given.device) && given.state === "done"
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
  const onHost = !isHostVisible(rec.device)
    ? step({ kind: "read", device: rec.device, inputs: [found], internal: true }, found)
    : found;
  const checked = step({
    kind: "run",
    device: cpu(),
    ...call(assertLabels, { cols, op }),
    inputs: [onHost],
  }, onHost);
  return isHostVisible(device)
    ? checked
    : step({ kind: "write", device, inputs: [checked], internal: true }, checked);
}

/** Throws a RangeError naming the first index value outside [0, bound), if any. */
function verifyIndices(facts: IndexFacts, bound: number, what: string): void {
  const bad = facts.bad ?? (facts.max!.value >= bound ? facts.max : undefined);
  if (bad) {
    throw new RangeError(
      `Cannot ${what}: index ${bad.value} at position ${bad.row} is not a whole number in ` +
        `[0, ${bound})`,
    );
  }
}

/**
 * Checks index values as {@link checkLabels} checks labels: before the op is queued when
 * they are known, throwing a RangeError naming the first bad one; otherwise it queues a
 * check and returns a record on the index's device for the op to take as one more input,
 * so that a bad index fails the op, named by `what`, at the next synchronisation.
 */
function checkIndices(rec: TensorRecord, bound: number, what: string): TensorRecord | undefined {
  const e = engine();
  const known = (r: TensorRecord) =>
    indexFacts.get(r) ??
      (isHostVisible(r.device) && r.state === "done" ? factsOf(e.hostValues(r), r) : undefined);
  const facts = known(rec);
  if (facts) {
    verifyIndices(facts, bound, what);
    const origin = facts.origin;
    e.capture?.check((resolve) => {
      const given = resolve(origin);
      if (!given) return;
      const f = known(given);
      if (!f) {
        throw new TypeError(
          `Cannot replay a step that must ${what} with an index whose values are not known ` +
            `yet: give an index made by fromArray, or host values already computed`,
        );
      }
      verifyIndices(f, bound, what);
    });
    return undefined;
  }
  const step = (req: Omit<OpRequest, "name" | "outputShapes">, temporary?: TensorRecord) => {
    const [out] = e.submit({ name: "checkIndices", outputShapes: [[2]], ...req });
    if (temporary) e.dispose(temporary);
    return out;
  };
  const rows = sizeOf(rec.shape);
  const found = step({
    kind: "run",
    device: rec.device,
    ...call(findBadLabel, { rows, cols: bound }),
    inputs: [rec],
  });
  const onHost = !isHostVisible(rec.device)
    ? step({ kind: "read", device: rec.device, inputs: [found], internal: true }, found)
    : found;
  const checked = step({
    kind: "run",
    device: cpu(),
    ...call(assertIndices, { bound, what }),
    inputs: [onHost],
  }, onHost);
  return isHostVisible(rec.device)
    ? checked
    : step({ kind: "write", device: rec.device, inputs: [checked], internal: true }, checked);
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
  #device: Device;
  /**
   * The gradient accumulated by `backward()` for a tensor that requires grad, on its
   * device; `undefined` until then and after an optimizer's `zeroGrad()`.
   */
  grad: Tensor | undefined = undefined;
  /** The op that made this tensor when it was recorded for autograd; undefined for leaves. */
  gradFn: GradFn | undefined = undefined;
  #gradWanted = false;

  static {
    track = (out, op, inputs, ctx) => out.#track(out, op, inputs, ctx);
  }

  /** Made by autopar's creation functions and ops, not by users. */
  constructor(rec: TensorRecord) {
    this.shape = rec.shape;
    this.#device = rec.device;
    records.set(this, rec);
    collected.register(this, rec, rec);
    onCreate?.(this);
  }

  /** Where the tensor lives (it moves only with its module's `to()`, see {@link moveInPlace}). */
  get device(): Device {
    return this.#device;
  }

  static {
    // Module.to() moves parameters in place, as PyTorch does: their identity is kept, so an
    // optimizer made before the move updates the moved values.
    moveTo = (t, device) => {
      const target = checkDevice(device, "move a tensor");
      if (target === t.#device) return;
      const old = recordOf(t);
      const rec = recordOf(t.#copyTo(target, {}));
      collected.unregister(rec); // the temporary Tensor of `rec` must not free it when collected
      collected.unregister(old);
      records.set(t, rec);
      collected.register(t, rec, rec);
      t.#device = target;
      engine().dispose(old);
    };
  }

  /** Elements in the tensor. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /**
   * Whether ops on this tensor are recorded so that `backward()` can compute its gradient.
   * Set it on leaves (tensors you made, such as parameters); an op's output requires grad
   * when one of its inputs does. Setting it throws a TypeError for a value that is not a boolean, and for false on an op's
   * output.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * const w = fromArray([1, 2], [2]);
   * w.requiresGrad = true;
   * console.log(w.mul(3).requiresGrad); // true
   * ```
   */
  declare requiresGrad: boolean;

  static {
    // An accessor, defined here rather than as get/set so that `deno doc` lists it (its text
    // output leaves get/set pairs out).
    Object.defineProperty(Tensor.prototype, "requiresGrad", {
      get(this: Tensor): boolean {
        return this.#gradWanted;
      },
      set(this: Tensor, value: boolean) {
        if (typeof value !== "boolean") {
          throw new TypeError(
            `Cannot set requiresGrad of ${this} to ${describe(value)}: it must be a boolean`,
          );
        }
        if (!value && this.gradFn) {
          throw new TypeError(
            `Cannot set requiresGrad to false on ${this}, the output of ${this.gradFn.name}: ` +
              `use detach() for a tensor outside the graph`,
          );
        }
        this.#gradWanted = value;
      },
    });
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
    const [target] = this.#operands("copy into");
    if (!(src instanceof Tensor)) {
      throw new TypeError(`Cannot copy ${String(src)} into ${this}: it is not a Tensor`);
    }
    if (src.disposed) throw new TypeError(`Cannot copy ${src} into ${this}: it was disposed`);
    if (this.requiresGrad && recorder?.enabled()) {
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
    const [a] = this.#operands("transpose");
    if (dim0 !== undefined || dim1 !== undefined) {
      if (dim0 === undefined || dim1 === undefined) {
        throw new TypeError(
          `Cannot transpose ${this} with dims ${dim0} and ${dim1}: give two dims, or none for ` +
            `a 2-D tensor`,
        );
      }
      const d0 = this.#axis(dim0, "transpose"), d1 = this.#axis(dim1, "transpose");
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
    const out = this.#run("transpose", transpose, { rows, cols }, [a], [cols, rows], 0);
    return this.#track(out, "transpose", [this], {});
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
    const [a] = this.#operands("permute");
    const list = dims.length === 1 && Array.isArray(dims[0]) ? dims[0] : dims as number[];
    return this.#permute(a, permutation(this.shape, list));
  }

  #permute(a: TensorRecord, dims: readonly number[]): Tensor {
    const strides = contiguousStrides(this.shape);
    const shape = dims.map((d) => this.shape[d]);
    const params = stridedCopyParams(shape, dims.map((d) => strides[d]));
    const out = this.#run("permute", stridedCopy, params, [a], shape, 0);
    return this.#track(out, "permute", [this], { dims });
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
    const [a] = this.#operands("slice");
    const ax = this.#sliceAxis(axis, "slice");
    const { outer, mid, inner } = this.#split(ax);
    const r = sliceRange(
      mid,
      start,
      end,
      step,
      `slice shape ${fmt(this.shape)} along axis ${axis}`,
    );
    const shape = this.shape.map((s, i) => i === ax ? r.length : s);
    const out = r.step === 1
      ? this.#run(
        "slice",
        narrow,
        { outer, mid, inner, start: r.start, length: r.length },
        [
          a,
        ],
        shape,
        0,
      )
      : this.#run(
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
    return this.#track(out, "slice", [this], { axis: ax, ...r, size: mid });
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
    const [a] = this.#operands("unslice");
    const ax = this.#sliceAxis(axis, "unslice");
    const { outer, mid: length, inner } = this.#split(ax);
    const whole = [start, step, size].every(Number.isInteger);
    if (!whole || start < 0 || step < 1 || start + (length - 1) * step >= size) {
      throw new RangeError(
        `Cannot place shape ${fmt(this.shape)} from ${start} in steps of ${step} along axis ` +
          `${axis} in size ${size}`,
      );
    }
    const shape = checkShape(this.shape.map((s, i) => i === ax ? size : s), this.device, "unslice");
    const params = { outer, mid: size, inner, start, step, length };
    const out = this.#run("unslice", unslice, params, [a], shape, 0);
    return this.#track(out, "unslice", [this], { axis: ax, start, step, length });
  }

  /** An axis of a tensor of 1-D or more, for slicing and indexing. */
  #sliceAxis(axis: number, what: string): number {
    if (this.shape.length === 0) {
      throw new RangeError(`Cannot ${what} ${this}: it has no dimension (shape [])`);
    }
    return this.#axis(axis, what);
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
    const [a, idx] = this.#operands("index-select", index);
    const ax = this.#sliceAxis(axis, "index-select");
    this.#vectorIndex(index, "index-select");
    const { outer, mid, inner } = this.#split(ax);
    const length = index.size;
    const what = `index-select along axis ${ax} of shape ${fmt(this.shape)}`;
    const shape = checkShape(this.shape.map((s, i) => i === ax ? length : s), this.device, what);
    const gate = checkIndices(idx, mid, what);
    const params = { outer, mid, inner, length, gated: gate !== undefined };
    const out = this.#gated("indexSelect", indexSelect, params, [a, idx], gate, shape);
    return this.#track(out, "indexSelect", [this], { axis: ax, index });
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
    const [a, idx, src] = this.#operands("index-add", index, source);
    const ax = this.#sliceAxis(axis, "index-add");
    this.#vectorIndex(index, "index-add");
    const expected = this.shape.map((s, i) => i === ax ? index.size : s);
    if (!sameShape(source.shape, expected)) {
      throw new RangeError(
        `Cannot index-add shape ${fmt(source.shape)} into shape ${fmt(this.shape)} along axis ` +
          `${ax} at ${index.size} indices: the source must have shape ${fmt(expected)}`,
      );
    }
    const { outer, mid, inner } = this.#split(ax);
    const gate = checkIndices(idx, mid, `index-add along axis ${ax} into shape ${fmt(this.shape)}`);
    const params = { outer, mid, inner, length: index.size, gated: gate !== undefined };
    const out = this.#gated("indexAdd", indexAdd, params, [a, idx, src], gate, this.shape);
    return this.#track(out, "indexAdd", [this, source], { axis: ax, index });
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
    const [a, idx] = this.#operands("gather", index);
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
    return this.#track(out, "gather", [this], { axis: ax, index });
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
    const [a, idx, s] = this.#operands("scatter-add", index, src);
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
    return this.#track(out, "scatterAdd", [this, src], { axis: ax, index });
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
    const out = this.#run(name, spec, params, gate ? [...inputs, gate] : inputs, shape, 0);
    if (gate) engine().dispose(gate);
    return out;
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
    const [a, b] = this.#operands("matmul", other);
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
      const out = this.#run("matmul", matmul, params, [a, b], shape, flops);
      const ctx = { canonA: plan.canonA, canonB: plan.canonB, canonOut };
      return this.#track(out, "matmul", [this, other], ctx);
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
    const x = operand(this, a, plan.canonA);
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
    const out = this.#run("matmul", matmul, params, [x.rec, y.rec], shape, flops);
    const ctx = { canonA: x.canon, canonB: y.canon, canonOut };
    if (!this.#track(out, "matmul", [x.t, y.t], ctx).gradFn) {
      for (const o of [x, y]) if (o.temporary) o.t.dispose();
    }
    return out;
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
    return this.#track(values, "min", [this], ctx);
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
    const [a] = this.#operands("clamp");
    if (min === undefined && max === undefined) {
      throw new TypeError(`Cannot clamp ${this} without bounds: give min, max or both`);
    }
    for (const [name, v] of [["min", min], ["max", max]] as const) {
      if (v !== undefined && typeof v !== "number") {
        throw new TypeError(`Cannot clamp ${this} with ${name} ${String(v)}: it must be a number`);
      }
    }
    const lo = min ?? -Infinity, hi = max ?? Infinity;
    const out = this.#run("clamp", clampKernel, { n: this.size, lo, hi }, [a], this.shape, 0);
    return this.#track(out, "clamp", [this], { lo, hi });
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
    const [a] = this.#operands("take the softmax of");
    const ax = this.#axis(axis, "take the softmax of");
    const { outer, mid, inner } = this.#split(ax);
    const params = { outer, mid, inner };
    const out = this.#run("softmax", softmaxKernel, params, [a], this.shape, 5 * this.size);
    return this.#track(out, "softmax", [this], { axis: ax, out });
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
    this.#operands("take the item of");
    if (this.size !== 1) {
      throw new RangeError(
        `Cannot take the item of ${this}: it has ${this.size} elements, item() needs exactly one`,
      );
    }
    return this.data().then((v) => v[0]);
  }

  /** Values and indices of the min or max along `axis` (all elements when undefined). */
  #argReduce(
    name: string,
    op: ArgReduceOp,
    axis: number | undefined,
    options: ReduceOptions,
    keep: "values" | "indices",
  ): { values: Tensor; indices: Tensor; ax?: number; keepdim: boolean } {
    const [a] = this.#operands(`take the ${name} of`);
    const keepdim = options.keepdim ?? false;
    const ax = axis === undefined ? undefined : this.#axis(axis, `take the ${name} of`);
    const { outer, mid, inner } = ax === undefined
      ? { outer: 1, mid: this.size, inner: 1 }
      : this.#split(ax);
    const shape = ax === undefined
      ? (keepdim ? this.shape.map(() => 1) : [])
      : this.shape.length === 0
      ? []
      : keepdim
      ? this.shape.map((s, i) => i === ax ? 1 : s)
      : this.shape.filter((_, i) => i !== ax);
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

  #minmax(op: MinMaxOp, other: Tensor): Tensor {
    const [a, b] = this.#operands(`take the ${op} of`, other);
    const shape = broadcastShape(this.shape, other.shape);
    if (!shape) {
      throw new RangeError(
        `Cannot take the ${op} of shapes ${fmt(this.shape)} and ${fmt(other.shape)}: they do ` +
          `not broadcast (sizes must be equal or 1, aligned from the last dimension)`,
      );
    }
    const out = checkShape(shape, this.device, op);
    const params = minmaxParams(op, this.shape, other.shape, out);
    const t = this.#run(op, minmax, params, [a, b], out, sizeOf(out));
    return this.#track(t, op, [this, other], {});
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
    this.#operands("copy");
    if (target === this.device) return this;
    return this.#track(this.#copyTo(target, options), "to", [this], {});
  }

  /** A copy on `target` (another device), not recorded for autograd. */
  #copyTo(target: Device, options: ToOptions): Tensor {
    const [a] = this.#operands("copy");
    checkShape(this.shape, target, `copy to ${target.name}`);
    const label = `${this.device.name}->${target.name}`;
    const out = submitCopy(engine(), a, target, { nonBlocking: options.nonBlocking, label });
    const moved = wrap(out);
    inheritFacts(a, moved);
    return moved;
  }

  /**
   * The values, once computed. A synchronisation point: rejects with an AggregateError of
   * the failure that kept this tensor from being computed.
   */
  async data(): Promise<Float32Array> {
    const [a] = this.#operands("read data of");
    const e = engine();
    let rec = a;
    if (!isHostVisible(a.device)) {
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
      rememberValues(a, values);
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

  /**
   * How `console.log` and `Deno.inspect` show the tensor, like PyTorch's repr: its values
   * when they are known without waiting (computed host tensors; small device tensors already
   * read or uploaded), else its shape, dtype and device.
   *
   * @example
   * ```ts
   * import { fromArray } from "../../mod.ts";
   * console.log(Deno.inspect(fromArray([1, 2, 3, 4], [2, 2])));
   * // Tensor([[1, 2], [3, 4]], shape=[2, 2], dtype=float32, device=cpu)
   * ```
   */
  [Symbol.for("Deno.customInspect")](): string {
    return this.#describe();
  }

  /** Node's inspect (`util.inspect`, `console.log` under node:): the same as Deno's. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.#describe();
  }

  #describe(): string {
    const rec = recordOf(this);
    return formatTensor({
      shape: this.shape,
      device: this.device.name,
      requiresGrad: this.#gradWanted,
      values: valuesNow(rec),
      disposed: rec.disposed,
    });
  }

  #operands(what: string, ...others: Tensor[]): TensorRecord[] {
    const recs = [this, ...others].map((t) => {
      if (!(t instanceof Tensor)) {
        throw new TypeError(
          `Cannot ${what} ${this} and ${describe(t)}: the operand is not a Tensor`,
        );
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

  #unary(op: Exclude<UnaryOp, "copy">): Tensor {
    const [a] = this.#operands(op);
    const out = this.#run(op, unary, { op, n: this.size }, [a], this.shape, this.size);
    return this.#track(out, op, [this], { out });
  }

  /** The axis `axis` (negative from the end) as an index; throws a RangeError when out of range. */
  #axis(axis: number, what: string): number {
    const rank = this.shape.length;
    if (!Number.isInteger(axis) || axis < -Math.max(rank, 1) || axis >= Math.max(rank, 1)) {
      throw new RangeError(
        `Cannot ${what} shape ${fmt(this.shape)} along axis ${describe(axis)}: ` +
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
  #track(out: Tensor, op: GradOp, inputs: readonly Tensor[], ctx: OpContext): Tensor {
    if (recorder && inputs.some((t) => t.#gradWanted) && recorder.enabled()) {
      out.#gradWanted = true;
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
