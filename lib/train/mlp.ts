/**
 * The book's two-layer MLP (784 -> 256 -> 10 with ReLU, softmax cross-entropy) trained by
 * minibatch SGD, data parallel: each minibatch is split between the devices, each holding a
 * replica of the parameters. Each layer's gradients are copied to the host as soon as they
 * are computed, summed there, and the sums update every replica in place. The code writes
 * the maths only; the engine overlaps the copies with the backward pass still running.
 *
 * @module
 */
import { cpu, type Device } from "../devices/device.ts";
import { fromArray, rand, zeros } from "../tensor/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { CLASSES, type Dataset, PIXELS } from "./mnist.ts";

/**
 * The parameters of one replica, in the order the backward pass produces their gradients.
 * `w1` is `[inputs, hidden]`; `w2` is `[outputs, hidden]` (as PyTorch's Linear stores it): with
 * 10 outputs, llvmpipe runs `dz2^T h` about 40x faster than `h^T dz2` (measured).
 */
export interface MlpParameters {
  w2: Tensor;
  b2: Tensor;
  w1: Tensor;
  b1: Tensor;
}

/** The names of {@link MlpParameters}, gradients of the last layer first. */
export const PARAMETER_NAMES = ["w2", "b2", "w1", "b1"] as const;

/** Options of {@link DataParallelMlp}. */
export interface MlpOptions {
  /**
   * Inputs per sample.
   * @default {784}
   */
  inputs?: number;
  /**
   * Hidden units.
   * @default {256}
   */
  hidden?: number;
  /**
   * Classes.
   * @default {10}
   */
  outputs?: number;
  /**
   * Learning rate of SGD.
   * @default {0.1}
   */
  lr?: number;
  /**
   * Seed of the initial weights (the same on every device).
   * @default {1}
   */
  seed?: number;
}

/** Per-row losses and logits of one step, on the host; read them once the step is done. */
export interface StepOutputs {
  losses: Tensor[];
  logits: Tensor[];
}

/** Uniform in [-a, a) with a = sqrt(6 / (fanIn + fanOut)) (Glorot), the same bits everywhere. */
function glorot(shape: [number, number], device: Device, seed: number): Tensor {
  const a = Math.sqrt(6 / (shape[0] + shape[1]));
  return rand(shape, { device, seed }).sub(0.5).mul(2 * a);
}

/** Row ranges that split `count` rows as evenly as possible into `parts`. */
export function shards(count: number, parts: number): [number, number][] {
  return Array.from({ length: parts }, (_, i) => [
    Math.floor((count * i) / parts),
    Math.floor((count * (i + 1)) / parts),
  ]);
}

/**
 * The two-layer MLP with one replica per device. One device (or the host alone) is the same
 * code: the gradients then stay where they are.
 *
 * @example
 * ```ts
 * import { cpu } from "../devices/device.ts";
 * import { DataParallelMlp } from "./mlp.ts";
 * const mlp = new DataParallelMlp([cpu()], { inputs: 4, hidden: 8, outputs: 3, lr: 0.5 });
 * const x = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]);
 * const y = new Float32Array([0, 1, 2]);
 * const before = await mlp.loss(x, y, 3);
 * for (let i = 0; i < 20; i++) mlp.step(x, y, 3);
 * console.log((await mlp.loss(x, y, 3)) < before); // true
 * ```
 */
export class DataParallelMlp {
  /** One replica of the parameters per device. */
  readonly replicas: MlpParameters[];
  /** Where the gradients are summed: the host with several devices, else the one device. */
  readonly aggregator: Device;
  readonly inputs: number;
  readonly hidden: number;
  readonly outputs: number;
  lr: number;

  /** Makes identical replicas on `devices`. Throws a RangeError without devices. */
  constructor(readonly devices: readonly Device[], options: MlpOptions = {}) {
    if (devices.length === 0) {
      throw new RangeError("Cannot make an MLP on no devices: give at least one");
    }
    this.inputs = options.inputs ?? PIXELS;
    this.hidden = options.hidden ?? 256;
    this.outputs = options.outputs ?? CLASSES;
    this.lr = options.lr ?? 0.1;
    const seed = options.seed ?? 1;
    this.aggregator = devices.length > 1 ? cpu() : devices[0];
    this.replicas = devices.map((device) => ({
      w1: glorot([this.inputs, this.hidden], device, seed),
      b1: zeros([this.hidden], { device }),
      w2: glorot([this.outputs, this.hidden], device, seed + 1),
      b2: zeros([this.outputs], { device }),
    }));
  }

  /** The logits of `x` (`[rows, inputs]`) by the replica `p`. */
  static forward(p: MlpParameters, x: Tensor): Tensor {
    const h = x.mm(p.w1).add(p.b1).relu();
    return h.mm(p.w2, { transB: true }).add(p.b2);
  }

  /**
   * Queues one SGD step on the first `count` rows of `images` with `labels`, split between
   * the devices, and returns at once. The update uses the mean gradient over the batch.
   */
  step(images: Float32Array, labels: Float32Array, count: number): StepOutputs {
    const scale = 1 / count;
    const losses: Tensor[] = [];
    const logitsOut: Tensor[] = [];
    const grads: Tensor[][] = shards(count, this.devices.length).map(([from, to], d) => {
      const device = this.devices[d];
      const p = this.replicas[d];
      const rows = to - from;
      const x = fromArray(images.subarray(from * this.inputs, to * this.inputs), [
        rows,
        this.inputs,
      ], { device });
      const y = fromArray(labels.subarray(from, to), [rows], { device });
      const h = x.mm(p.w1).add(p.b1).relu();
      const logits = h.mm(p.w2, { transB: true }).add(p.b2);
      const { losses: l, grad: dz2 } = logits.softmaxCrossEntropy(y, { scale });
      // A copy to the host; the source is freed once the copy has read it.
      const move = (t: Tensor, to: Device) => {
        const copy = t.to(to, { nonBlocking: true });
        if (copy !== t) t.dispose();
        return copy;
      };
      losses.push(move(l, cpu()));
      logitsOut.push(logits.to(cpu(), { nonBlocking: true }));
      const send = (g: Tensor) => move(g, this.aggregator);
      // Layer 2's gradients go to the host while layer 1's backward pass runs.
      const dw2 = send(dz2.mm(h, { transA: true }));
      const db2 = send(dz2.sum(0));
      const dz1 = h.reluBackward(dz2.mm(p.w2));
      const dw1 = send(x.mm(dz1, { transA: true }));
      const db1 = send(dz1.sum(0));
      for (const t of [x, y, h, dz2, dz1]) t.dispose();
      if (logitsOut[d] !== logits) logits.dispose();
      return [dw2, db2, dw1, db1];
    });
    PARAMETER_NAMES.forEach((name, i) => {
      const sum = grads.map((g) => g[i]).reduce((a, b) => a.add(b));
      this.replicas.forEach((p, d) => {
        const g = sum.to(this.devices[d], { nonBlocking: true });
        p[name].sub_(g, { alpha: this.lr });
        if (g !== sum) g.dispose();
      });
      sum.dispose();
    });
    for (const g of grads.flat()) if (!g.disposed) g.dispose();
    return { losses, logits: logitsOut };
  }

  /** The mean loss of the first replica on `count` rows (waits for the values). */
  async loss(images: Float32Array, labels: Float32Array, count: number): Promise<number> {
    const p = this.replicas[0];
    const device = this.devices[0];
    const x = fromArray(images.subarray(0, count * this.inputs), [count, this.inputs], {
      device,
    });
    const y = fromArray(labels.subarray(0, count), [count], { device });
    const { losses } = DataParallelMlp.forward(p, x).softmaxCrossEntropy(y);
    const values = await losses.data();
    return values.reduce((s, v) => s + v, 0) / count;
  }

  /**
   * Accuracy and mean loss on `data`, in chunks of `chunk` rows spread over the replicas.
   */
  async evaluate(data: Dataset, chunk = 1000): Promise<{ accuracy: number; loss: number }> {
    const pending: Promise<[Float32Array, Float32Array]>[] = [];
    shards(data.count, Math.ceil(data.count / chunk)).forEach(([from, to], i) => {
      const d = i % this.devices.length;
      const device = this.devices[d];
      const x = fromArray(data.images.subarray(from * this.inputs, to * this.inputs), [
        to - from,
        this.inputs,
      ], { device });
      const y = fromArray(data.labels.subarray(from, to), [to - from], { device });
      const logits = DataParallelMlp.forward(this.replicas[d], x);
      const { losses } = logits.softmaxCrossEntropy(y);
      pending.push(Promise.all([logits.data(), losses.data()]));
    });
    const results = await Promise.all(pending);
    let correct = 0;
    let loss = 0;
    let row = 0;
    for (const [logits, losses] of results) {
      correct += countCorrect(logits, data.labels.subarray(row, row + losses.length), this.outputs);
      loss += losses.reduce((s, v) => s + v, 0);
      row += losses.length;
    }
    return { accuracy: correct / data.count, loss: loss / data.count };
  }

  /** The values of one replica's parameters, by name. */
  async parameters(replica = 0): Promise<Record<(typeof PARAMETER_NAMES)[number], Float32Array>> {
    const p = this.replicas[replica];
    const [w2, b2, w1, b1] = await Promise.all(PARAMETER_NAMES.map((n) => p[n].data()));
    return { w2, b2, w1, b1 };
  }
}

/** How many rows of `logits` (`outputs` per row) have their largest value at the label. */
export function countCorrect(logits: Float32Array, labels: Float32Array, outputs: number): number {
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    let best = 0;
    for (let j = 1; j < outputs; j++) {
      if (logits[r * outputs + j] > logits[r * outputs + best]) best = j;
    }
    if (best === labels[r]) correct++;
  }
  return correct;
}
