/**
 * The core of a Tensor: the records registry, the autograd hooks, construction, `to`,
 * `data`, `dispose`, and the helpers the op families share.
 *
 * @module
 */
import type { GradOp } from "./grad_ops.ts";
import type { Device } from "../devices/device.ts";
import { engine, type TensorRecord } from "../engine/engine.ts";
import { latest } from "../engine/capture.ts";
import { submitCopy } from "../engine/copies.ts";
import { isHostVisible } from "../devices/capabilities.ts";
import type { KernelParams, KernelSpec } from "../kernels/kernel.ts";
import { unary } from "../kernels/elementwise.ts";
import { formatTensor } from "./format.ts";
import type { Tensor } from "./tensor.ts";
import { checkDevice, checkShape, describe, fmt, setTensorTest, sizeOf } from "./checks.ts";
import { inheritFacts, noteRecordValues, rememberValues, valuesNow } from "./labels.ts";
import type { BackwardOptions, GradFn, GradRecorder, OpContext, ToOptions } from "./options.ts";

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

const records = new WeakMap<TensorCore, TensorRecord>();
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
export function recordOf(t: TensorCore): TensorRecord {
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
  return make(rec);
}

let make: (rec: TensorRecord) => Tensor;

/** Names the class that `wrap` makes (called once by tensor.ts, which defines `Tensor`). */
export function setTensorClass(tensor: new (rec: TensorRecord) => Tensor): void {
  make = (rec) => new tensor(rec);
}

/** Whether autograd is loaded and recording (not inside `noGrad`). */
export function gradRecording(): boolean {
  return recorder?.enabled() ?? false;
}

/**
 * Notes, for `crossEntropy`, whether the values `t` was made from are class indices, so
 * that labels uploaded to a device need no check there (creation functions call it).
 */
export function noteValues(t: Tensor, values: ArrayLike<number>): void {
  noteRecordValues(recordOf(t), values);
}

let track: (out: Tensor, op: GradOp, inputs: readonly TensorCore[], ctx: OpContext) => Tensor;

/**
 * Records `out = op(inputs)` for autograd when an input requires grad and grad is on, as
 * the Tensor's own ops do (for autopar's functions over tensors, such as `cat`).
 */
export function trackOp(
  out: Tensor,
  op: GradOp,
  inputs: readonly TensorCore[],
  ctx: OpContext,
): Tensor {
  return track(out, op, inputs, ctx);
}

/**
 * The core layer of {@link Tensor}: its records, construction, copies, reads and disposal,
 * and the helpers its op families share. Use `Tensor`; this class is not made directly.
 *
 * @example
 * ```ts
 * import { cpu, fromArray } from "../../mod.ts";
 * const t = fromArray([1, 2], [2]).to(cpu());
 * console.log(t.shape, await t.data()); // [2] Float32Array [1, 2]
 * ```
 */
export class TensorCore {
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
    track = (out, op, inputs, ctx) => {
      if (recorder && inputs.some((t) => t.#gradWanted) && recorder.enabled()) {
        out.#gradWanted = true;
        recorder.record(out, op, inputs as readonly Tensor[], ctx);
      }
      return out;
    };
  }

  /** Made by autopar's creation functions and ops, not by users. */
  constructor(rec: TensorRecord) {
    this.shape = rec.shape;
    this.#device = rec.device;
    records.set(this, rec);
    collected.register(this, rec, rec);
    onCreate?.(this as unknown as Tensor);
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
    Object.defineProperty(TensorCore.prototype, "requiresGrad", {
      get(this: TensorCore): boolean {
        return this.#gradWanted;
      },
      set(this: TensorCore, value: boolean) {
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
    recorder.backward(this as unknown as Tensor, gradient, options);
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
    const [a] = operandsOf(this, "detach");
    return runKernel(this, "detach", unary, { op: "copy", n: this.size }, [a], this.shape, 0);
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
    operandsOf(this, "copy");
    if (target === this.device) return this as unknown as Tensor;
    return trackOp(this.#copyTo(target, options), "to", [this], {});
  }

  /** A copy on `target` (another device), not recorded for autograd. */
  #copyTo(target: Device, options: ToOptions): Tensor {
    const [a] = operandsOf(this, "copy");
    checkShape(this.shape, target, `copy to ${target.name}`);
    const label = `${this.device.name}->${target.name}`;
    const out = submitCopy(engine(), a, target, { nonBlocking: options.nonBlocking, label });
    const moved = wrap(out);
    inheritFacts(a, recordOf(moved));
    return moved;
  }

  /**
   * The values, once computed. A synchronisation point: rejects with an AggregateError of
   * the failure that kept this tensor from being computed.
   */
  async data(): Promise<Float32Array> {
    const [a] = operandsOf(this, "read data of");
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

  /** The text of `Deno.inspect`. */
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
}

/**
 * The records of `t` and `others` for an op named by `what`: throws a TypeError for a
 * value that is not a Tensor, a disposed one or one on another device, an Error for a
 * device that was lost.
 */
export function operandsOf(t: TensorCore, what: string, ...others: TensorCore[]): TensorRecord[] {
  const recs = [t, ...others].map((o) => {
    if (!(o instanceof TensorCore)) {
      throw new TypeError(`Cannot ${what} ${t} and ${describe(o)}: the operand is not a Tensor`);
    }
    const rec = recordOf(o);
    if (rec.disposed) throw new TypeError(`Cannot ${what} ${o}: it was disposed`);
    return rec;
  });
  for (const o of others) {
    if (o.device !== t.device) {
      throw new TypeError(
        `Cannot ${what} tensors on different devices, ${t.device.name} and ${o.device.name}: ` +
          `move one with .to(device) first`,
      );
    }
  }
  const gone = engine().deviceProblem(t.device);
  if (gone) throw new Error(`Cannot ${what} ${t}: ${gone}`);
  return recs;
}

/** The axis `axis` of `t` (negative from the end) as an index; a RangeError when out of range. */
export function axisIndex(t: TensorCore, axis: number, what: string): number {
  const rank = Math.max(t.shape.length, 1);
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(
      `Cannot ${what} shape ${fmt(t.shape)} along axis ${describe(axis)}: ` +
        `axis must be a whole number in [${-rank}, ${rank - 1}]`,
    );
  }
  return axis < 0 ? axis + rank : axis;
}

/** The shape of `t` as `[outer, mid, inner]` around `axis`. */
export function splitAt(
  t: TensorCore,
  axis: number,
): { outer: number; mid: number; inner: number } {
  return {
    outer: sizeOf(t.shape.slice(0, axis)),
    mid: t.shape[axis] ?? 1,
    inner: sizeOf(t.shape.slice(axis + 1)),
  };
}

/** Queues kernel `spec` on the device of `t` and wraps its one output, of `shape`. */
export function runKernel<P extends KernelParams>(
  t: TensorCore,
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
    device: t.device,
    kernel: spec.name,
    params,
    inputs,
    outputShapes: [shape],
    flops,
  });
  return wrap(out);
}

/** Makes `t` name `updated`, the new version of `target` after an in-place op. */
export function rebind(t: TensorCore, target: TensorRecord, updated: TensorRecord): void {
  collected.unregister(target);
  records.set(t, updated);
  collected.register(t, updated, updated);
}

setTensorTest((value) => value instanceof TensorCore);
