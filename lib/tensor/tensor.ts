/**
 * The Tensor API (float32). Every op checks its arguments at the call, throws at once for
 * bad input, and otherwise returns a new tensor at once while the work runs asynchronously.
 *
 * @module
 */
import { cpu, type Device } from "../devices/device.ts";
import { WebGpuDevice } from "../devices/webgpu_device.ts";
import { engine, type TensorRecord } from "../engine/engine.ts";
import type { BinaryOp, Broadcast } from "../kernels/elementwise.ts";
import { matmulTilingFor } from "../kernels/matmul.ts";

/** Options of {@link Tensor.to}. */
export interface ToOptions {
  /**
   * true: the copy runs as soon as its input is ready, overlapping later work. false (as in
   * PyTorch): ops submitted after it are not sent before it has landed.
   * @default {false}
   */
  nonBlocking?: boolean;
}

/** Options of {@link Tensor.mm}. */
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

/** Options of {@link Tensor.softmaxCrossEntropy}. */
export interface SoftmaxCrossEntropyOptions {
  /**
   * Factor of the gradient: 1 / batch size gives the gradient of the mean loss.
   * @default {1}
   */
  scale?: number;
}

/** Options of {@link Tensor.sub_}. */
export interface SubOptions {
  /**
   * Factor of the subtrahend: `this -= alpha * other`.
   * @default {1}
   */
  alpha?: number;
}

const records = new WeakMap<Tensor, TensorRecord>();
const collected = new FinalizationRegistry<TensorRecord>((rec) => engine().dispose(rec));

/** The engine's record of a tensor (for autopar's own layers, not for users). */
export function recordOf(t: Tensor): TensorRecord {
  const rec = records.get(t);
  if (!rec) throw new TypeError(`Cannot use ${String(t)}: it is not an autopar Tensor`);
  return rec;
}

/** Wraps an engine record in a Tensor; the record is disposed when the Tensor is collected. */
export function wrap(rec: TensorRecord): Tensor {
  return new Tensor(rec);
}

const fmt = (shape: readonly number[]) => `[${shape.join(", ")}]`;
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Throws a TypeError unless `device` is the host or a device from `tryAllGpus()`. */
export function checkDevice(device: unknown, what: string): Device {
  if (device === cpu() || device instanceof WebGpuDevice) return device as Device;
  throw new TypeError(
    `Cannot ${what} on ${String(device)}: use cpu() or a device from tryAllGpus()/tryGpu()`,
  );
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

/** A float32 tensor on one device. Ops return at once; `data()` waits for the values. */
export class Tensor {
  /** Sizes of each dimension. */
  readonly shape: readonly number[];
  /** The element type; only float32 for now. */
  readonly dtype = "float32" as const;
  /** Where the tensor lives. */
  readonly device: Device;

  /** Made by autopar's creation functions and ops, not by users. */
  constructor(rec: TensorRecord) {
    this.shape = rec.shape;
    this.device = rec.device;
    records.set(this, rec);
    collected.register(this, rec, rec);
  }

  /** Elements in the tensor. */
  get size(): number {
    return sizeOf(this.shape);
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
    const params = { M, N, K, transA, transB, tiling };
    return this.#run("mm", "matmul", params, [a, b], shape, 2 * M * N * K);
  }

  /** Elementwise `this + other`; `other` is a tensor of the same shape, a row vector, or a number. */
  add(other: Tensor | number): Tensor {
    return this.#binary("add", other);
  }

  /** Elementwise `this - other`; `other` is a tensor of the same shape, a row vector, or a number. */
  sub(other: Tensor | number): Tensor {
    return this.#binary("sub", other);
  }

  /** Elementwise `this * other`; `other` is a tensor of the same shape, a row vector, or a number. */
  mul(other: Tensor | number): Tensor {
    return this.#binary("mul", other);
  }

  /** Elementwise max(x, 0). */
  relu(): Tensor {
    const [a] = this.#operands("relu");
    return this.#run("relu", "unary", { op: "relu", n: this.size }, [a], this.shape, this.size);
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
    return this.#run("relu_backward", "relu_backward", { n: this.size }, [x, g], this.shape, 0);
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
      kernel: "softmax_cross_entropy",
      params: { rows, cols, scale },
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
      kernel: "sub_inplace",
      params: { n: this.size, alpha },
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

  /** The transpose of a 2-D tensor. Throws a RangeError for other ranks. */
  transpose(): Tensor {
    const [a] = this.#operands("transpose");
    if (this.shape.length !== 2) {
      throw new RangeError(
        `Cannot transpose shape ${fmt(this.shape)}: transpose needs a 2-D tensor`,
      );
    }
    const [rows, cols] = this.shape;
    return this.#run("transpose", "transpose", { rows, cols }, [a], [cols, rows], 0);
  }

  /**
   * Sum of all elements (shape []), or along `axis` of a 1-D or 2-D tensor. Throws a
   * RangeError for an axis the tensor does not have.
   */
  sum(axis?: number): Tensor {
    const [a] = this.#operands("sum");
    const n = this.size;
    if (axis === undefined) {
      return this.#run("sum", "sum_rows", { rows: 1, cols: n }, [a], [], n);
    }
    const rank = this.shape.length;
    if (!Number.isInteger(axis) || axis < -rank || axis >= rank || rank > 2) {
      throw new RangeError(
        `Cannot sum shape ${fmt(this.shape)} along axis ${axis}: ` +
          (rank > 2
            ? "sum along an axis needs a 1-D or 2-D tensor"
            : `axis must be in [${-rank}, ${rank - 1}]`),
      );
    }
    const ax = axis < 0 ? axis + rank : axis;
    if (rank === 1) return this.#run("sum", "sum_rows", { rows: 1, cols: n }, [a], [], n);
    const [rows, cols] = this.shape;
    return ax === 0
      ? this.#run("sum", "sum_cols", { rows, cols }, [a], [cols], n)
      : this.#run("sum", "sum_rows", { rows, cols }, [a], [rows], n);
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
    const [a] = this.#operands("to");
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
      if (target.kind === "cpu") return wrap(staged);
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
    return wrap(out);
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
      return this.#run(
        op,
        "binary",
        this.#bparams(op, "scalar", other),
        [a],
        this.shape,
        this.size,
      );
    }
    const [a, b] = this.#operands(op, other);
    const same = other.shape.length === this.shape.length &&
      other.shape.every((n, i) => n === this.shape[i]);
    const row = this.shape.length >= 1 && other.shape.length === 1 &&
      other.shape[0] === this.shape[this.shape.length - 1];
    if (!same && !row) {
      throw new RangeError(
        `Cannot ${op} shapes ${fmt(this.shape)} and ${
          fmt(other.shape)
        }: the second must have the ` +
          `same shape or be a row vector of length ${this.shape[this.shape.length - 1] ?? 1}`,
      );
    }
    return this.#run(
      op,
      "binary",
      this.#bparams(op, same ? "same" : "row", 0),
      [a, b],
      this.shape,
      this.size,
    );
  }

  #bparams(op: BinaryOp, broadcast: Broadcast, scalar: number) {
    return { op, broadcast, n: this.size, cols: this.shape[this.shape.length - 1] ?? 1, scalar };
  }

  #run(
    name: string,
    kernelName: string,
    params: Record<string, number | string | boolean>,
    inputs: TensorRecord[],
    shape: readonly number[],
    flops: number,
  ): Tensor {
    const [out] = engine().submit({
      name,
      kind: "run",
      device: this.device,
      kernel: kernelName,
      params,
      inputs,
      outputShapes: [shape],
      flops,
    });
    return wrap(out);
  }
}
