/**
 * Data parallel across processes, PyTorch's DistributedDataParallel: one model per process
 * (its rank), rank 0's parameters broadcast at the start, and the gradients all-reduced (the
 * mean over ranks) in buckets while backward still runs, the last parameters' bucket first.
 *
 * The collectives run on a host lane of their own, `comm` (lib/devices/async_host.ts): each
 * is an op of the engine, ordered with the others. A bucket's gradients are joined on their
 * device, copied to the host as soon as backward has made them, all-reduced over NATS there,
 * and copied back into `.grad` in place; `opt.step()` queued after `loss.backward()` reads
 * the averaged gradients without any wait in the script. An all-reduce that cannot finish
 * (a rank died, stalled or disagrees) leaves `.grad` as it was and fails the next
 * synchronisation, naming the rank.
 *
 * @module
 */
import { cpu, type Device } from "../devices/device.ts";
import { AsyncHostRuntime, KeptFailure } from "../devices/async_host.ts";
import { engine } from "../engine/engine.ts";
import { noGrad, observeBackward } from "../autograd/tape.ts";
import { zeros } from "../tensor/creation.ts";
import { bucketsOf, throughFlat } from "../nn/buckets.ts";
import { recordOf, type Tensor, wrap } from "../tensor/tensor.ts";
import type { Module } from "../nn/module.ts";
import { DataParallel, type StepResult } from "../nn/data_parallel.ts";
import { defaultGroup } from "./collectives.ts";
import type { ProcessGroup, ReduceOp } from "./process_group.ts";

/**
 * Options of {@link DistributedDataParallel}.
 *
 * @example
 * ```ts
 * import type { DistributedDataParallelOptions } from "../../mod.ts";
 * const options: DistributedDataParallelOptions = { bucketBytes: 1 << 20 };
 * console.log(options.bucketBytes); // 1048576
 * ```
 */
export interface DistributedDataParallelOptions {
  /**
   * The most bytes of gradients in one bucket (one all-reduce). PyTorch's default is 25 MiB.
   * @default {262144}
   */
  bucketBytes?: number;
  /**
   * Broadcast rank 0's parameters (and thus its initialisation) to every rank at the start.
   * @default {true}
   */
  broadcastParameters?: boolean;
  /**
   * Several devices of this process: a {@link DataParallel} over them inside, whose replicas'
   * gradients are summed on the host first and then all-reduced across processes (a process
   * reduces locally first). Steps then go through {@link DistributedDataParallel.forwardBackward}.
   * @default {undefined: the model's own device, steps through forward() and backward()}
   */
  devices?: readonly Device[];
}

const lanes = new WeakMap<ProcessGroup, AsyncHostRuntime>();

/** The `comm` lane of `group`: its collectives, as async host kernels. */
function commLane(group: ProcessGroup): AsyncHostRuntime {
  let lane = lanes.get(group);
  if (!lane) {
    lane = AsyncHostRuntime.open("comm", {
      // The input is kept as it was (a copy is reduced): a failure hands it back unchanged.
      all_reduce: async ([x], p) => {
        try {
          return [
            await group.allReduce(x.slice(), JSON.parse(p.shape as string), p.op as ReduceOp),
          ];
        } catch (e) {
          throw new KeptFailure(e instanceof Error ? e.message : String(e), [x], { cause: e });
        }
      },
      broadcast: async ([x], p) => {
        try {
          return [await group.broadcast(x.slice(), JSON.parse(p.shape as string), p.src as number)];
        } catch (e) {
          throw new KeptFailure(e instanceof Error ? e.message : String(e), [x], { cause: e });
        }
      },
    });
    lanes.set(group, lane);
  }
  return lane;
}

/** `t` (a host tensor) through the collective `kernel` on `group`'s comm lane: a host tensor. */
function collective(
  group: ProcessGroup,
  kernel: "all_reduce" | "broadcast",
  t: Tensor,
  params: Record<string, number | string>,
): Tensor {
  // The comm lane issues in order (its runtime is inOrder): collectives start in the same
  // order on every rank, even when a later one's input is ready first.
  const lane = commLane(group);
  const [out] = engine().submit({
    name: kernel === "all_reduce" ? "allReduce" : "broadcast",
    kind: "run",
    device: lane.device,
    kernel,
    // The shape travels as text: kernel parameters are flat values.
    params: { ...params, shape: JSON.stringify(t.shape) },
    inputs: [recordOf(t)],
    outputShapes: [t.shape],
    outputDevice: cpu(),
  });
  return wrap(out);
}

/**
 * A model trained by every process of the process group on its share of the data: the
 * gradients of `loss.backward()` are the mean over ranks when backward's queued work is done,
 * so any optimizer, stepping after backward, keeps the ranks equal. Call
 * `initProcessGroup()` first; run one process per device (`deno task launch`).
 *
 * @example
 * ```ts ignore
 * import { DistributedDataParallel, initProcessGroup, Linear, SGD, tryGpu } from "./mod.ts";
 * await initProcessGroup(); // RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the launcher
 * const model = new Linear(784, 10).to(await tryGpu());
 * const ddp = new DistributedDataParallel(model);
 * const opt = new SGD(ddp.parameters(), { lr: 0.1 });
 * // per step, on this rank's share of the batch (DistributedSampler's split):
 * // opt.zeroGrad(); ddp.forward(x).crossEntropy(y).backward(); opt.step();
 * ```
 */
export class DistributedDataParallel<M extends Module = Module> {
  /** The model this process trains. */
  readonly module: M;
  /** See {@link DistributedDataParallelOptions.bucketBytes}. */
  readonly bucketBytes: number;
  readonly #group: ProcessGroup;
  readonly #params: Tensor[];
  /** Parameter indices per bucket, the last parameters first (backward reaches them first). */
  readonly #buckets: number[][];
  readonly #bucketOf = new Map<Tensor, number>();
  /** Per bucket: its parameters whose gradient this backward pass has completed. */
  #ready: Set<number>[] = [];
  #launched: boolean[] = [];
  #active = false;
  readonly #stop: () => void;
  readonly #local: DataParallel | undefined;

  /**
   * Wraps `model` (on the device this rank uses). Throws without a process group, for a
   * model without parameters and for bad options.
   */
  constructor(model: M, options: DistributedDataParallelOptions = {}) {
    this.#group = defaultGroup("make a DistributedDataParallel");
    this.module = model;
    this.bucketBytes = options.bucketBytes ?? 262144;
    if (!(this.bucketBytes > 0)) {
      throw new RangeError(
        `Cannot make a DistributedDataParallel with bucketBytes ${this.bucketBytes}: it must be > 0`,
      );
    }
    this.#params = model.parameters();
    if (this.#params.length === 0) {
      throw new RangeError("Cannot make a DistributedDataParallel of a model without parameters");
    }
    // First: the local replicas are copies of these values.
    if (options.broadcastParameters ?? true) this.#broadcastParameters();
    if (options.devices !== undefined) {
      // Local replicas: DataParallel sums them on the host, then the ranks average the sums.
      this.#local = new DataParallel(model, options.devices, {
        bucketBytes: this.bucketBytes,
        reduce: (bucket) => collective(this.#group, "all_reduce", bucket, { op: "mean" }),
      });
    }
    this.#buckets = bucketsOf(this.#params, this.bucketBytes);
    this.#buckets.forEach((b, bi) => b.forEach((pi) => this.#bucketOf.set(this.#params[pi], bi)));
    this.#reset();
    this.#stop = this.#local ? () => {} : observeBackward({
      gradReady: (leaf) => this.#gradReady(leaf),
      finished: () => this.#finished(),
    });
  }

  /**
   * With several local `devices`: one step on this rank's share of the batch, split between
   * them as {@link DataParallel.forwardBackward} does; the gradients end up averaged over
   * every replica of every rank. Throws a TypeError without `devices`.
   */
  forwardBackward(
    x: Tensor,
    labels: Tensor,
    lossFn: (output: Tensor, labels: Tensor) => Tensor,
  ): StepResult {
    if (!this.#local) {
      throw new TypeError(
        "Cannot run forwardBackward on a DistributedDataParallel of one device: call " +
          "ddp.forward(x), then backward() on the loss (or give { devices })",
      );
    }
    return this.#local.forwardBackward(x, labels, lossFn);
  }

  /**
   * With several local `devices` (or `devices` given at all): the {@link DataParallel} over
   * them, whose replicas hold this rank's copies of the model; else undefined.
   */
  get dataParallel(): DataParallel | undefined {
    return this.#local;
  }

  /** The model's output for `input` (the model's own forward). */
  forward(input: Tensor): Tensor {
    return this.module.forward(input);
  }

  /**
   * The parameters to optimise: the model's (every rank updates its own copy with the same
   * gradients), and with several local devices every replica's.
   */
  parameters(): Tensor[] {
    return this.#local ? this.#local.parameters() : this.module.parameters();
  }

  /** Stops watching backward passes; the model stays as it is. */
  dispose(): void {
    this.#stop();
  }

  /** Rank 0's values into every rank's parameters, in place, queued. */
  #broadcastParameters(): void {
    noGrad(() => {
      for (const p of this.#params) {
        const onHost = p.to(cpu(), { nonBlocking: true });
        const from0 = collective(this.#group, "broadcast", onHost, { src: 0 });
        p.copy_(from0);
        from0.dispose();
        if (onHost !== p) onHost.dispose();
      }
    });
  }

  #reset(): void {
    this.#ready = this.#buckets.map(() => new Set());
    this.#launched = this.#buckets.map(() => false);
    this.#active = false;
  }

  #gradReady(leaf: Tensor): void {
    const bi = this.#bucketOf.get(leaf);
    if (bi === undefined) return;
    this.#active = true;
    this.#ready[bi].add(this.#params.indexOf(leaf));
    if (this.#ready[bi].size === this.#buckets[bi].length) this.#launch(bi);
  }

  /** Buckets with a parameter backward never reached go now, that gradient taken as zeros. */
  #finished(): void {
    if (!this.#active) return;
    // In bucket order, the same on every rank, so the collectives match.
    this.#buckets.forEach((_, bi) => {
      if (!this.#launched[bi]) this.#launch(bi);
    });
    this.#reset();
  }

  /** The mean over ranks of bucket `bi`'s gradients, into `.grad` in place (queued). */
  #launch(bi: number): void {
    this.#launched[bi] = true;
    const params = this.#buckets[bi].map((pi) => this.#params[pi]);
    noGrad(() => {
      const zeroed = params.flatMap((p) => p.grad ? [] : [zeros(p.shape, { device: p.device })]);
      let z = 0;
      const grads = params.map((p) => p.grad ?? zeroed[z++]);
      const means = throughFlat(grads, (joined) => {
        const onHost = joined.to(cpu(), { nonBlocking: true });
        const mean = collective(this.#group, "all_reduce", onHost, { op: "mean" });
        if (onHost !== joined) onHost.dispose();
        return mean;
      });
      params.forEach((p, i) => {
        if (p.grad) p.grad.copy_(means[i]);
        else p.grad = means[i].to(p.device);
        if (p.grad !== means[i]) means[i].dispose();
      });
      for (const t of zeroed) t.dispose();
    });
  }
}

/** The device of a model's first parameter (where DDP's gradients live). */
export function deviceOf(model: Module): Device {
  return model.parameters()[0]?.device ?? cpu();
}
