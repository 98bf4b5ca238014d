/**
 * One epoch of minibatch SGD over a dataset: the batches are queued without waiting in
 * between, and the losses and logits are read once, at the end.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { synchronize } from "../engine/sync.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Sampler } from "../data/distributed_sampler.ts";
import { type Dataset, mulberry32, shuffle } from "./mnist.ts";
import { countCorrect } from "./trainer.ts";

/** What {@link trainEpoch} drives: a {@link Trainer}, or bench/manual_mlp.ts's baseline. */
export interface EpochTrainer {
  readonly devices: readonly Device[];
  /** Inputs per sample. */
  readonly inputs: number;
  /** Classes. */
  readonly outputs: number;
  /** Queues one step on the first `count` rows; per replica: losses, logits and rows. */
  step(
    images: Float32Array,
    labels: Float32Array,
    count: number,
  ): { losses: Tensor[]; logits: Tensor[]; rows: number[] };
  /** Applies the updates still pending. */
  flush(): void;
}

/** Options of {@link trainEpoch}. */
export interface EpochOptions {
  /**
   * Samples per minibatch (the last one may be smaller).
   * @default {128}
   */
  batch?: number;
  /**
   * Seed of the order of the samples (use the epoch's number).
   * @default {0}
   */
  seed?: number;
  /**
   * Train on the first `limit` samples only.
   * @default {every sample}
   */
  limit?: number;
  /**
   * The samples of the epoch, in order: `sampler.indices(seed)`, this rank's share with a
   * {@link DistributedSampler} (made over `limit` samples or the whole data set). Without
   * it, every sample (up to `limit`) shuffled from `seed`.
   * @default {undefined}
   */
  sampler?: Sampler;
}

/** What one epoch did. */
export interface EpochResult {
  /** Mean training loss over the epoch's batches (each with the weights of its step). */
  loss: number;
  /** Share of the training samples classified right during the epoch. */
  trainAccuracy: number;
  /** Wall-clock seconds, from queuing the first step to the last update's completion. */
  seconds: number;
  samplesPerSecond: number;
  steps: number;
}

/** Trains `mlp` for one epoch over `data` in shuffled minibatches; throws what the work threw. */
export async function trainEpoch(
  mlp: EpochTrainer,
  data: Dataset,
  options: EpochOptions = {},
): Promise<EpochResult> {
  const batch = options.batch ?? 128;
  const count = Math.min(options.limit ?? data.count, data.count);
  if (!Number.isInteger(batch) || batch < mlp.devices.length) {
    throw new RangeError(
      `Cannot train with batch ${batch}: it must be a whole number >= ${mlp.devices.length}, ` +
        `the number of devices`,
    );
  }
  const order = options.sampler
    ? options.sampler.indices(options.seed ?? 0)
    : shuffle(Array.from({ length: count }, (_, i) => i), mulberry32(options.seed ?? 0));
  const samples = order.length;
  const { inputs } = mlp;
  const images = new Float32Array(batch * inputs);
  const labels = new Float32Array(batch);
  const outputs: { losses: Tensor[]; logits: Tensor[]; rows: number[]; labels: Float32Array }[] =
    [];
  const start = performance.now();
  for (let from = 0; from < samples; from += batch) {
    const n = Math.min(batch, samples - from);
    for (let r = 0; r < n; r++) {
      const i = order[from + r];
      images.set(data.images.subarray(i * inputs, (i + 1) * inputs), r * inputs);
      labels[r] = data.labels[i];
    }
    const out = mlp.step(images, labels, n);
    outputs.push({ ...out, labels: labels.slice(0, n) });
  }
  mlp.flush();
  await synchronize();
  const seconds = (performance.now() - start) / 1000;
  let loss = 0;
  let correct = 0;
  // Every step's losses and logits are read at once: one readback wait, not one per step.
  const values = await Promise.all(
    outputs.map((out) =>
      Promise.all([
        Promise.all(out.losses.map((t) => t.data())),
        Promise.all(out.logits.map((t) => t.data())),
      ])
    ),
  );
  for (const [i, out] of outputs.entries()) {
    const [losses, logits] = values[i];
    let row = 0;
    losses.forEach((l, d) => {
      // Per-row losses or a replica's mean loss: either way mean * rows is the sum.
      const rows = out.rows[d];
      loss += (l.reduce((s, v) => s + v, 0) / l.length) * rows;
      correct += countCorrect(logits[d], out.labels.subarray(row, row + rows), mlp.outputs);
      row += rows;
    });
    for (const t of [...out.losses, ...out.logits]) t.dispose();
  }
  return {
    loss: loss / samples,
    trainAccuracy: correct / samples,
    seconds,
    samplesPerSecond: samples / seconds,
    steps: outputs.length,
  };
}
