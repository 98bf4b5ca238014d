/**
 * Data parallelism for any model made of {@link Module}s, after PyTorch's
 * DistributedDataParallel: a replica per device, each batch split between them, backward on
 * every replica, and the gradients all-reduced in buckets, in the reverse order of the
 * parameters, so that the first bucket's exchange starts while the rest of backward runs.
 *
 * @module
 */
import { cpu, type Device } from "../devices/device.ts";
import { engine } from "../engine/engine.ts";
import { isHostVisible } from "../devices/capabilities.ts";
import { noGrad, release, runBackward } from "../autograd/tape.ts";
import { fromArray, zeros } from "../tensor/creation.ts";
import { bucketsOf, throughFlat } from "./buckets.ts";
import { recordOf, type Tensor } from "../tensor/tensor.ts";
import type { TensorRecord } from "../engine/engine.ts";
import { type Module, replicate } from "./module.ts";

/**
 * Options of {@link DataParallel}.
 *
 * @example
 * ```ts
 * import { cpu, DataParallel, Linear } from "../../mod.ts";
 * const dp = new DataParallel(new Linear(4, 2), [cpu(), cpu()], { staleness: 1 });
 * console.log(dp.replicas.length, dp.staleness); // 2 1
 * ```
 */
export interface DataParallelOptions {
  /**
   * How many steps late the averaged gradients reach `.grad`. 0 is synchronous data-parallel
   * SGD: each step's update waits for its gradients to go through the host and back. With
   * k > 0 a step's `.grad` holds the averaged gradients of the step k before it
   * (k-step-delayed SGD), so the round trip runs while the devices compute;
   * {@link DataParallel.flush} puts the ones still pending.
   * @default {0}
   */
  staleness?: number;
  /**
   * The most bytes of gradients in one bucket; a bucket's exchange starts when backward has
   * produced all of its gradients on a replica. PyTorch's first bucket is 1 MiB.
   * @default {262144}
   */
  bucketBytes?: number;
  /**
   * false: each replica keeps its own gradients and nothing leaves the devices. Not data
   * parallel SGD (the replicas drift apart): it measures what the devices give without the
   * exchange, the ceiling of bench/mlp.ts.
   * @default {true}
   */
  exchange?: boolean;
  /**
   * A reduction across processes of each bucket's gradients, once the replicas' are summed
   * on the host: given one 1-D host tensor per bucket (its parameters' gradients, joined),
   * it returns the tensor to use instead. DistributedDataParallel passes the mean over ranks,
   * so a process with several devices reduces locally first.
   * @default {undefined: none}
   */
  reduce?: (bucket: Tensor) => Tensor;
}

/**
 * What one {@link DataParallel.forwardBackward} queued: per replica, on its device.
 *
 * @example
 * ```ts
 * import { cpu, DataParallel, fromArray, Linear } from "../../mod.ts";
 * const dp = new DataParallel(new Linear(2, 2), [cpu(), cpu()]);
 * const x = fromArray([1, 2, 3, 4, 5, 6], [3, 2]);
 * const r = dp.forwardBackward(x, fromArray([0, 1, 0], [3]), (out, y) => out.crossEntropy(y));
 * console.log(r.rows, r.outputs[1].shape); // [1, 2] [2, 2]
 * ```
 */
export interface StepResult {
  /** Each replica's loss on its share of the batch (a scalar). */
  losses: Tensor[];
  /** Each replica's model output on its share. */
  outputs: Tensor[];
  /** Rows of the batch each replica took. */
  rows: number[];
}

/** Row ranges that split `count` rows as evenly as possible into `parts`. */
export function shards(count: number, parts: number): [number, number][] {
  return Array.from({ length: parts }, (_, i) => [
    Math.floor((count * i) / parts),
    Math.floor((count * (i + 1)) / parts),
  ]);
}

/**
 * A model replicated on several devices and trained on split batches. `parameters()` holds
 * every replica's parameters, so one optimizer updates them all with the same averaged
 * gradients and the replicas stay equal.
 *
 * @example
 * ```ts
 * import { cpu, DataParallel, fromArray, Linear, SGD } from "../../mod.ts";
 * const dp = new DataParallel(new Linear(2, 2, { seed: 1 }), [cpu(), cpu()]);
 * const opt = new SGD(dp.parameters(), { lr: 0.5 });
 * const x = fromArray([1, 0, 0, 1, 1, 1, 0, 0], [4, 2]);
 * const y = fromArray([0, 1, 0, 1], [4]);
 * const before = await dp.forwardBackward(x, y, (out, y) => out.crossEntropy(y)).losses[0].data();
 * for (let i = 0; i < 20; i++) {
 *   opt.zeroGrad();
 *   dp.forwardBackward(x, y, (out, y) => out.crossEntropy(y));
 *   opt.step();
 * }
 * const after = await dp.forwardBackward(x, y, (out, y) => out.crossEntropy(y)).losses[0].data();
 * console.log(after[0] < before[0]); // true
 * ```
 */
export class DataParallel<M extends Module = Module> {
  /** One replica per device; replica 0 is the model given, moved to the first device. */
  readonly replicas: M[];
  /** See {@link DataParallelOptions.staleness}. */
  readonly staleness: number;
  /** See {@link DataParallelOptions.bucketBytes}. */
  readonly bucketBytes: number;
  /** See {@link DataParallelOptions.exchange}. */
  readonly exchange: boolean;
  /** Averaged gradients not yet put into `.grad`, per step, per replica, per parameter. */
  #pending: Tensor[][][] = [];
  readonly #reduce: ((bucket: Tensor) => Tensor) | undefined;
  /** Each replica's parameter records at the last step, to see which were updated since. */
  #seen: TensorRecord[][] | undefined;

  /** Replicates `model` on `devices`. Throws a RangeError without devices or for bad options. */
  constructor(model: M, readonly devices: readonly Device[], options: DataParallelOptions = {}) {
    if (devices.length === 0) {
      throw new RangeError("Cannot make a DataParallel on no devices: give at least one");
    }
    this.staleness = options.staleness ?? 0;
    this.bucketBytes = options.bucketBytes ?? 262144;
    this.exchange = options.exchange ?? true;
    this.#reduce = options.reduce;
    if (!Number.isInteger(this.staleness) || this.staleness < 0 || this.staleness > 8) {
      throw new RangeError(
        `Cannot make a DataParallel with staleness ${this.staleness}: it must be a whole ` +
          `number from 0 to 8`,
      );
    }
    if (!(this.bucketBytes > 0)) {
      throw new RangeError(
        `Cannot make a DataParallel with bucketBytes ${this.bucketBytes}: it must be > 0`,
      );
    }
    model.to(devices[0]);
    this.replicas = devices.map((d, i) => i === 0 ? model : replicate(model, d));
  }

  /** Every replica's parameters, replica by replica (hand them all to one optimizer). */
  parameters(): Tensor[] {
    return this.replicas.flatMap((r) => r.parameters());
  }

  /**
   * Queues one step on a batch and returns at once: splits `x` and `labels` by rows
   * between the replicas, runs each replica's forward pass and `lossFn`, then its backward
   * pass seeded with its share of the batch, so that the summed gradients are those of the
   * whole batch's mean loss; the gradients are exchanged in buckets as backward produces
   * them and land in every replica's `.grad` (`staleness` steps later). Throws a RangeError
   * when there are fewer rows than devices.
   */
  forwardBackward(
    x: Tensor,
    labels: Tensor,
    lossFn: (output: Tensor, labels: Tensor) => Tensor,
  ): StepResult {
    const count = x.shape[0];
    if (!(count >= this.devices.length) || labels.shape[0] !== count) {
      throw new RangeError(
        `Cannot split a batch of ${count} rows (labels: ${labels.shape[0]}) between ` +
          `${this.devices.length} devices: it needs as many rows as devices, and a label per row`,
      );
    }
    const params = this.replicas.map((r) => r.parameters());
    this.#syncReplicas(params);
    const buckets = bucketsOf(params[0], this.bucketBytes);
    // Per bucket: how many of its gradients each replica has produced, and their copies.
    const ready = buckets.map(() => this.devices.map(() => 0));
    const onHost = buckets.map((b) => b.map(() => [] as Tensor[]));
    const bucketOf = new Map<Tensor, number>();
    for (const ps of params) {
      buckets.forEach((b, bi) => b.forEach((pi) => bucketOf.set(ps[pi], bi)));
    }
    // One device has nothing to exchange, but staleness must still delay its gradients.
    const exchange = this.exchange &&
      (this.devices.length > 1 || this.staleness > 0 || this.#reduce !== undefined);
    const averaged: Tensor[][] = this.devices.map(() => []);
    const result: StepResult = { losses: [], outputs: [], rows: [] };
    shards(count, this.devices.length).forEach(([from, to], d) => {
      const device = this.devices[d];
      const xs = shard(x, from, to, device);
      const ys = shard(labels, from, to, device);
      const output = this.replicas[d].forward(xs);
      const loss = lossFn(output, ys);
      release(xs);
      release(ys);
      result.losses.push(loss);
      result.outputs.push(output);
      result.rows.push(to - from);
      const seed = fromArray([(to - from) / count], [], { device });
      runBackward(loss, seed, {
        onGradReady: (p) => {
          const bi = bucketOf.get(p);
          if (bi === undefined || !exchange) return;
          ready[bi][d]++;
          if (ready[bi][d] === buckets[bi].length) {
            this.#send(bi, d, buckets, params, onHost, averaged);
          }
        },
      });
      seed.dispose();
      // A bucket with a parameter that backward never reached (unused in this step) is sent
      // now, that parameter's gradient taken as zeros (DDP's find_unused_parameters).
      if (exchange) {
        buckets.forEach((b, bi) => {
          if (ready[bi][d] < b.length) this.#send(bi, d, buckets, params, onHost, averaged);
        });
      }
    });
    if (!exchange) return result;
    // .grad now holds each replica's own share; it waits for the averaged gradients.
    for (const ps of params) {
      for (const p of ps) {
        p.grad?.dispose();
        p.grad = undefined;
      }
    }
    this.#pending.push(averaged);
    while (this.#pending.length > this.staleness) this.#put(this.#pending.shift()!);
    return result;
  }

  /**
   * Puts the oldest averaged gradients still pending (with staleness > 0) into `.grad`;
   * returns false when none was left. Apply them all with
   * `while (dp.flush()) { opt.step(); opt.zeroGrad(); }`.
   */
  flush(): boolean {
    const step = this.#pending.shift();
    if (step) this.#put(step);
    return step !== undefined;
  }

  /**
   * Keeps the replicas equal when only the model given (replica 0) was updated since the
   * last step, as when an optimizer was given `model.parameters()` instead of
   * `dp.parameters()`: its new values are copied to the other replicas (what PyTorch's
   * nn.DataParallel does each step), and their unused gradients dropped. Throws a TypeError
   * when a replica other than 0 was updated apart from replica 0.
   */
  #syncReplicas(params: Tensor[][]): void {
    const now = params.map((ps) => ps.map(recordOf));
    const seen = this.#seen;
    if (seen && params.length > 1) {
      noGrad(() => {
        params[0].forEach((p0, i) => {
          const moved = now.map((recs, r) => recs[i] !== seen[r][i]);
          if (moved.every((m) => m === moved[0])) return;
          if (!moved[0]) {
            throw new TypeError(
              `Cannot run a DataParallel step: parameter ${i} of replica ` +
                `${moved.indexOf(true)} changed while the model's did not; update every ` +
                `replica (give dp.parameters() to the optimizer)`,
            );
          }
          params.forEach((ps, r) => {
            if (r === 0 || moved[r]) return;
            ps[i].copy_(p0);
            ps[i].grad?.dispose();
            ps[i].grad = undefined;
            now[r][i] = recordOf(ps[i]);
          });
        });
      });
    }
    this.#seen = now;
  }

  /** Replica d's gradients of bucket bi go to the host; the last replica's trigger the sums. */
  #send(
    bi: number,
    d: number,
    buckets: number[][],
    params: Tensor[][],
    onHost: Tensor[][][],
    averaged: Tensor[][],
  ): void {
    const host = cpu();
    noGrad(() => {
      if (this.devices.length === 1 && !this.#reduce) {
        // Nothing to average: the gradients wait, copied, for their step (staleness).
        for (const pi of buckets[bi]) {
          const p = params[d][pi];
          averaged[d][pi] = p.grad?.detach() ?? zeros(p.shape, { device: p.device });
        }
        return;
      }
      buckets[bi].forEach((pi, k) => {
        const p = params[d][pi];
        onHost[bi][k][d] = p.grad
          ? p.grad.to(host, { nonBlocking: true })
          : zeros(p.shape, { device: host });
      });
      if (onHost[bi][0].filter(Boolean).length < this.devices.length) return;
      const sums = buckets[bi].map((_, k) => {
        const parts = onHost[bi][k];
        let sum = parts[0];
        for (const part of parts.slice(1)) {
          const next = sum.add(part);
          if (sum !== parts[0]) sum.dispose();
          sum = next;
        }
        return sum;
      });
      const reduced = this.#reduce ? throughFlat(sums, this.#reduce) : sums;
      buckets[bi].forEach((pi, k) => {
        const parts = onHost[bi][k];
        const sum = reduced[k];
        this.devices.forEach((device, r) => {
          averaged[r][pi] = sum.device === device
            ? sum.detach()
            : sum.to(device, { nonBlocking: true });
        });
        for (const part of parts) part.dispose();
        if (sum !== parts[0]) sum.dispose();
        if (sums[k] !== sum && sums[k] !== parts[0]) sums[k].dispose();
      });
    });
  }

  /** Replaces each replica's `.grad` with `step`'s averaged gradients. */
  #put(step: Tensor[][]): void {
    noGrad(() => {
      this.replicas.forEach((replica, r) => {
        replica.parameters().forEach((p, i) => {
          const g = step[r]?.[i];
          if (g === undefined) return;
          p.grad?.dispose();
          p.grad = g;
        });
      });
    });
  }
}

/** Rows [from, to) of `t` on `device`: straight from the host values when they are there. */
function shard(t: Tensor, from: number, to: number, device: Device): Tensor {
  const rec = recordOf(t);
  // Straight from the values, unless a capture records the step: a replay must read the
  // tensor it is given, so the slice is an op then.
  if (!engine().capture && isHostVisible(t.device) && rec.state === "done" && !rec.disposed) {
    const row = t.size / t.shape[0];
    const values = engine().hostValues(rec).subarray(from * row, to * row);
    return fromArray(values, [to - from, ...t.shape.slice(1)], { device });
  }
  const part = from === 0 && to === t.shape[0] ? t : t.narrow(0, from, to - from);
  const moved = part.to(device, { nonBlocking: true });
  if (part !== t && moved !== part) part.dispose();
  return moved === t ? noGrad(() => t.detach()) : moved;
}
