/**
 * The baseline of bench/mlp.ts: the chapter's MLP with its gradients written by hand, as
 * autopar trained it before autograd (lib/train/trainer.ts now trains it with autograd,
 * the layers and DataParallel). Kept here, outside lib/, to measure autograd's cost.
 *
 * The book's two-layer MLP (784 -> 256 -> 10 with ReLU, softmax cross-entropy) trained by
 * minibatch SGD, data parallel: each minibatch is split between the devices, each holding a
 * replica of the parameters. Each layer's gradients are copied to the host as soon as they
 * are computed, summed there, and the sums update every replica in place. The code writes
 * the maths only; the engine overlaps the copies with the backward pass still running.
 *
 * @module
 */
import { cpu, type Device } from "../lib/devices/device.ts";
import { fromArray, rand, zeros } from "../lib/tensor/creation.ts";
import type { Tensor } from "../lib/tensor/tensor.ts";
import { CLASSES, type Dataset, PIXELS } from "../lib/train/mnist.ts";
import { countCorrect } from "../lib/train/trainer.ts";
import { shards } from "../lib/nn/data_parallel.ts";

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
  /**
   * How many steps late an update is applied. 0 is plain synchronous SGD: the next step's
   * forward pass waits for this step's gradients to go to the host and back. With k > 0,
   * each step's summed gradients are applied after the forward and backward passes of the k
   * steps after it are queued (k-step-delayed SGD), so the round trip through the host runs
   * while the devices compute; {@link DataParallelMlp.flush} applies the updates still pending.
   * @default {0}
   */
  staleness?: number;
  /**
   * false: each replica is updated with its own gradients only and nothing leaves the
   * devices. Not data-parallel SGD (the replicas drift apart): it measures what the devices
   * give without the gradients' round trip, the ceiling of bench/mlp.ts.
   * @default {true}
   */
  exchange?: boolean;
}

/** Per-row losses and logits of one step, one tensor per device, where they were computed. */
export interface StepOutputs {
  losses: Tensor[];
  logits: Tensor[];
  rows: number[];
}

/** Uniform in [-a, a) with a = sqrt(6 / (fanIn + fanOut)) (Glorot), the same bits everywhere. */
function glorot(shape: [number, number], device: Device, seed: number): Tensor {
  const a = Math.sqrt(6 / (shape[0] + shape[1]));
  return rand(shape, { device, seed }).sub(0.5).mul(2 * a);
}

/**
 * The two-layer MLP with one replica per device. One device (or the host alone) is the same
 * code: the gradients then stay where they are.
 *
 * @example
 * ```ts
 * import { cpu } from "../lib/devices/device.ts";
 * import { DataParallelMlp } from "./manual_mlp.ts";
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
  readonly staleness: number;
  readonly exchange: boolean;
  /** Summed gradients not yet applied, already sent to each device, oldest first. */
  #pending: Tensor[][][] = [];

  /** Makes identical replicas on `devices`. Throws a RangeError without devices. */
  constructor(readonly devices: readonly Device[], options: MlpOptions = {}) {
    if (devices.length === 0) {
      throw new RangeError("Cannot make an MLP on no devices: give at least one");
    }
    this.inputs = options.inputs ?? PIXELS;
    this.hidden = options.hidden ?? 256;
    this.outputs = options.outputs ?? CLASSES;
    this.lr = options.lr ?? 0.1;
    this.staleness = options.staleness ?? 0;
    this.exchange = options.exchange ?? true;
    if (!Number.isInteger(this.staleness) || this.staleness < 0 || this.staleness > 8) {
      throw new RangeError(`staleness must be a whole number from 0 to 8, got ${this.staleness}`);
    }
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
    const rowsOut: number[] = [];
    const grads: Tensor[][] = shards(count, this.devices.length).map(([from, to], d) => {
      const device = this.devices[d];
      const p = this.replicas[d];
      const rows = to - from;
      rowsOut.push(rows);
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
      // The losses and logits stay on the device until the epoch's end: a copy to the host
      // per step would make the device's Worker wait for the step's work (see
      // webgpu_worker.ts), and they are read all at once.
      losses.push(l);
      logitsOut.push(logits);
      const send = (g: Tensor) => this.exchange ? move(g, this.aggregator) : g;
      // Layer 2's gradients go to the host while layer 1's backward pass runs.
      const dw2 = send(dz2.mm(h, { transA: true }));
      const db2 = send(dz2.sum(0));
      const dz1 = h.reluBackward(dz2.mm(p.w2));
      const dw1 = send(x.mm(dz1, { transA: true }));
      const db1 = send(dz1.sum(0));
      for (const t of [x, y, h, dz2, dz1]) t.dispose();
      return [dw2, db2, dw1, db1];
    });
    if (!this.exchange) {
      this.#apply(grads);
      return { losses, logits: logitsOut, rows: rowsOut };
    }
    // The sums go to every device as soon as they are ready; with staleness k they are
    // applied after the passes of the k steps after this one.
    const sums = PARAMETER_NAMES.map((_, i) => grads.map((g) => g[i]).reduce((a, b) => a.add(b)));
    const sent = this.devices.map((device) =>
      sums.map((sum) => sum.to(device, { nonBlocking: true }))
    );
    const kept = new Set(sent.flat());
    for (const t of [...grads.flat(), ...sums]) if (!kept.has(t) && !t.disposed) t.dispose();
    this.#pending.push(sent);
    while (this.#pending.length > this.staleness) this.#apply(this.#pending.shift()!);
    return { losses, logits: logitsOut, rows: rowsOut };
  }

  /** Applies the updates still pending (with staleness > 0), oldest first; returns at once. */
  flush(): void {
    for (const sent of this.#pending.splice(0)) this.#apply(sent);
  }

  /** Frees every replica's parameters and a pending update; the MLP cannot be used after. */
  dispose(): void {
    for (const t of this.#pending.splice(0).flat(2)) t.dispose();
    for (const p of this.replicas) for (const name of PARAMETER_NAMES) p[name].dispose();
  }

  /** Subtracts `lr` times the summed gradients `sent[d]` (on device d) from replica d. */
  #apply(sent: Tensor[][]): void {
    this.replicas.forEach((p, d) => {
      PARAMETER_NAMES.forEach((name, i) => {
        p[name].sub_(sent[d][i], { alpha: this.lr });
        sent[d][i].dispose();
      });
    });
  }

  /** The mean loss of the first replica on `count` rows, after {@link flush} (waits). */
  async loss(images: Float32Array, labels: Float32Array, count: number): Promise<number> {
    this.flush();
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
   * Accuracy and mean loss on `data` after {@link flush}, in chunks of `chunk` rows spread
   * over the replicas.
   */
  async evaluate(data: Dataset, chunk = 1000): Promise<{ accuracy: number; loss: number }> {
    this.flush();
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

  /** The values of one replica's parameters after {@link flush}, by name. */
  async parameters(replica = 0): Promise<Record<(typeof PARAMETER_NAMES)[number], Float32Array>> {
    this.flush();
    const p = this.replicas[replica];
    const [w2, b2, w1, b1] = await Promise.all(PARAMETER_NAMES.map((n) => p[n].data()));
    return { w2, b2, w1, b1 };
  }
}
