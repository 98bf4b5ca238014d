/**
 * One epoch of minibatch SGD over a dataset: the batches are queued without waiting in
 * between, and the losses and logits are read once, at the end.
 *
 * @module
 */
import { synchronize } from "../engine/sync.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { countCorrect, type DataParallelMlp } from "./mlp.ts";
import { type Dataset, mulberry32, shuffle } from "./mnist.ts";

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
  mlp: DataParallelMlp,
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
  const order = shuffle(Array.from({ length: count }, (_, i) => i), mulberry32(options.seed ?? 0));
  const { inputs } = mlp;
  const images = new Float32Array(batch * inputs);
  const labels = new Float32Array(batch);
  const outputs: { losses: Tensor[]; logits: Tensor[]; labels: Float32Array }[] = [];
  const start = performance.now();
  for (let from = 0; from < count; from += batch) {
    const n = Math.min(batch, count - from);
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
      loss += l.reduce((s, v) => s + v, 0);
      correct += countCorrect(logits[d], out.labels.subarray(row, row + l.length), mlp.outputs);
      row += l.length;
    });
    for (const t of [...out.losses, ...out.logits]) t.dispose();
  }
  return {
    loss: loss / count,
    trainAccuracy: correct / count,
    seconds,
    samplesPerSecond: count / seconds,
    steps: outputs.length,
  };
}
