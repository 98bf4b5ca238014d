/**
 * Trains a classifier data parallel: a {@link DataParallel} over the devices, SGD, and the
 * mean cross-entropy. The chapter's MLP (784 -> 256 -> 10) is {@link mlp}; any model made
 * of modules trains the same way.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { noGrad } from "../autograd/tape.ts";
import { DataParallel, shards } from "../nn/data_parallel.ts";
import { Linear, type Module, ReLU, Sequential } from "../nn/module.ts";
import { SGD } from "../optim/sgd.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import {
  DistributedDataParallel,
  type DistributedDataParallelOptions,
} from "../distributed/ddp.ts";
import { fromArray } from "../tensor/creation.ts";
import { capture, type Captured, type CaptureOptions } from "../capture/capture.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { CLASSES, type Dataset, PIXELS } from "./mnist.ts";

/** Options of {@link mlp}. */
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
   * Seed of the initial weights.
   * @default {1}
   */
  seed?: number;
}

/**
 * The book's two-layer MLP: Linear, ReLU, Linear.
 *
 * @example
 * ```ts
 * import { mlp } from "../../mod.ts";
 * console.log(mlp({ inputs: 4, hidden: 8, outputs: 3 }).parameters().map((p) => p.shape));
 * // [[8, 4], [8], [3, 8], [3]]
 * ```
 */
export function mlp(options: MlpOptions = {}): Sequential {
  const seed = options.seed ?? 1;
  const hidden = options.hidden ?? 256;
  return new Sequential(
    new Linear(options.inputs ?? PIXELS, hidden, { seed }),
    new ReLU(),
    new Linear(hidden, options.outputs ?? CLASSES, { seed: seed + 2 }),
  );
}

/** Options of {@link Trainer}. */
export interface TrainerOptions {
  /**
   * Learning rate of SGD.
   * @default {0.1}
   */
  lr?: number;
  /**
   * See {@link DataParallelOptions.staleness}.
   * @default {0}
   */
  staleness?: number;
  /**
   * See {@link DataParallelOptions.exchange}.
   * @default {true}
   */
  exchange?: boolean;
  /**
   * Capture the training step on its first call for each batch size and replay it after
   * (see lib/capture/capture.ts): the step's JavaScript (layers, autograd, DataParallel,
   * SGD) runs once, and each later step only resubmits its ops. Needs `staleness: 0`.
   * Options (`{ segments: false }`) go to `capture`.
   * @default {false}
   */
  capture?: boolean | CaptureOptions;
  /**
   * The optimizer of every replica's parameters, made from them: `(params) => new
   * Adam(params, { lr: 1e-3 })`, say. Without it, SGD with `lr`.
   * @default {(params) => new SGD(params, { lr })}
   */
  optimizer?: (params: Tensor[]) => Optimizer;
  /**
   * Train across the processes of the process group (call `await initProcessGroup()`
   * first): a {@link DistributedDataParallel} over this process's `devices` broadcasts rank
   * 0's parameters, and each step's gradients are averaged over every replica of every rank.
   * Each rank steps on its own share of the data (a {@link DistributedSampler}'s, with equal
   * batch sizes on every rank). Options (`{ bucketBytes }`) go to DistributedDataParallel.
   * Needs `staleness: 0`.
   * @default {false}
   */
  distributed?: boolean | Omit<DistributedDataParallelOptions, "devices">;
}

/** Per-replica outputs of one step, where they were computed. */
export interface StepOutputs {
  /** Each replica's mean loss (a scalar). */
  losses: Tensor[];
  /** Each replica's logits. */
  logits: Tensor[];
  /** Rows each replica took. */
  rows: number[];
}

/**
 * Minibatch SGD of a classifier on several devices.
 *
 * @example
 * ```ts
 * import { cpu } from "../devices/device.ts";
 * import { mlp, Trainer } from "./trainer.ts";
 * const t = new Trainer(mlp({ inputs: 4, hidden: 8, outputs: 3 }), [cpu()], { lr: 0.5 });
 * const x = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]);
 * const y = new Float32Array([0, 1, 2]);
 * const data = { images: x, labels: y, count: 3 };
 * const before = (await t.evaluate(data)).loss;
 * for (let i = 0; i < 20; i++) t.step(x, y, 3);
 * console.log((await t.evaluate(data)).loss < before); // true
 * ```
 */
export class Trainer {
  /** The model's replicas, one per device. */
  readonly dp: DataParallel;
  /** With `distributed`: what averages the gradients across the ranks (around `dp`). */
  readonly ddp: DistributedDataParallel | undefined;
  /** The optimizer of every replica's parameters. */
  readonly opt: Optimizer;
  /** Inputs per sample (the first layer's `inFeatures` when it is a Linear). */
  readonly inputs: number;
  /** Classes. */
  readonly outputs: number;
  /** Whether steps are captured and replayed. */
  readonly captured: boolean;
  readonly #captureOptions: CaptureOptions;
  /** One captured step per batch size. */
  readonly #steps = new Map<number, Captured<Tensor[]>>();

  /**
   * Replicates `model` on `devices`. Throws a RangeError without devices, or for `capture`
   * or `distributed` with staleness; an Error for `distributed` without a process group.
   */
  constructor(model: Module, readonly devices: readonly Device[], options: TrainerOptions = {}) {
    this.captured = options.capture !== undefined && options.capture !== false;
    this.#captureOptions = typeof options.capture === "object" ? options.capture : {};
    if (this.captured && (options.staleness ?? 0) > 0) {
      throw new RangeError(
        "Cannot capture a training step with staleness: its pending gradients are state the " +
          "step replaces, which a replay cannot carry over",
      );
    }
    const distributed = options.distributed ?? false;
    if (distributed !== false) {
      if ((options.staleness ?? 0) > 0) {
        throw new RangeError(
          "Cannot train distributed with staleness: the ranks average each step's gradients " +
            "as backward makes them",
        );
      }
      if (devices.length === 0) {
        throw new RangeError("Cannot make a DataParallel on no devices: give at least one");
      }
      const ddpOptions = typeof distributed === "object" ? distributed : {};
      this.ddp = new DistributedDataParallel(model, { ...ddpOptions, devices });
      this.dp = this.ddp.dataParallel!;
    } else {
      this.dp = new DataParallel(model, devices, {
        staleness: options.staleness,
        exchange: options.exchange,
      });
    }
    const lr = options.lr ?? 0.1;
    const params = this.dp.parameters();
    this.opt = options.optimizer ? options.optimizer(params) : new SGD(params, { lr });
    const own = model.parameters();
    this.inputs = own[0].shape[own[0].shape.length - 1];
    this.outputs = own[own.length - 1].shape[0];
  }

  /** Queues one step on the first `count` rows of `images` with `labels`; returns at once. */
  step(images: Float32Array, labels: Float32Array, count: number): StepOutputs {
    const x = fromArray(images.subarray(0, count * this.inputs), [count, this.inputs]);
    const y = fromArray(labels.subarray(0, count), [count]);
    const rows = shards(count, this.devices.length).map(([from, to]) => to - from);
    const run = (x: Tensor, y: Tensor): Tensor[] => {
      this.opt.zeroGrad();
      const r = (this.ddp ?? this.dp).forwardBackward(x, y, (logits, y) => logits.crossEntropy(y));
      this.opt.step();
      return [...r.losses, ...r.outputs];
    };
    let out: Tensor[];
    if (this.captured) {
      let step = this.#steps.get(count);
      if (!step) this.#steps.set(count, step = capture(run, this.#captureOptions));
      out = step.replay(x, y);
    } else out = run(x, y);
    x.dispose();
    y.dispose();
    const n = this.devices.length;
    return { losses: out.slice(0, n), logits: out.slice(n), rows };
  }

  /** How many steps were replays of a captured step (0 without `capture`). */
  get replays(): number {
    let n = 0;
    for (const step of this.#steps.values()) n += step.replays;
    return n;
  }

  /** Applies the updates still pending (with staleness > 0), oldest first; returns at once. */
  flush(): void {
    while (this.dp.flush()) {
      this.opt.step();
      this.opt.zeroGrad();
    }
  }

  /**
   * Accuracy and mean loss on `data` after {@link flush}, in chunks of `chunk` rows spread
   * over the replicas.
   */
  async evaluate(data: Dataset, chunk = 1000): Promise<{ accuracy: number; loss: number }> {
    this.flush();
    const pending = noGrad(() =>
      shards(data.count, Math.ceil(data.count / chunk)).map(([from, to], i) => {
        const d = i % this.devices.length;
        const device = this.devices[d];
        const x = fromArray(data.images.subarray(from * this.inputs, to * this.inputs), [
          to - from,
          this.inputs,
        ], { device });
        const y = fromArray(data.labels.subarray(from, to), [to - from], { device });
        const logits = this.dp.replicas[d].forward(x);
        const loss = logits.crossEntropy(y);
        x.dispose();
        y.dispose();
        return Promise.all([logits.data(), loss.data()]).finally(() => {
          logits.dispose();
          loss.dispose();
        });
      })
    );
    const results = await Promise.all(pending);
    let correct = 0;
    let loss = 0;
    let row = 0;
    for (const [logits, l] of results) {
      const rows = logits.length / this.outputs;
      correct += countCorrect(logits, data.labels.subarray(row, row + rows), this.outputs);
      loss += l[0] * rows;
      row += rows;
    }
    return { accuracy: correct / data.count, loss: loss / data.count };
  }

  /** Frees every replica's parameters; the trainer cannot be used after. */
  dispose(): void {
    this.flush();
    this.opt.dispose();
    this.ddp?.dispose();
    for (const p of this.dp.parameters()) p.dispose();
    // A captured step holds what its last replay made and kept (the gradients).
    for (const step of this.#steps.values()) step.dispose();
    this.#steps.clear();
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
