/**
 * torch.distributed's functions on the default process group: initProcessGroup, getRank,
 * getWorldSize, allReduce, broadcast, allGather, barrier, destroyProcessGroup. Tensors on
 * any device; GPU tensors are read back and written back in place.
 *
 * @module
 */

import { Tensor } from "../tensor/tensor.ts";
import { fromArray } from "../tensor/creation.ts";
import { cpu } from "../devices/device.ts";
import { noGrad } from "../autograd/tape.ts";
import { engine } from "../engine/engine.ts";
import { ProcessGroup, type ReduceOp } from "./process_group.ts";
import type { ProcessGroupOptions } from "./options.ts";
import { TracePublisher } from "./trace_publisher.ts";

let group: ProcessGroup | undefined;
let joining: Promise<ProcessGroup> | undefined;
let publisher: TracePublisher | undefined;

/**
 * The default process group, for autopar's own layers (DistributedDataParallel); throws an
 * Error saying to call initProcessGroup() when there is none.
 */
export function defaultGroup(what: string): ProcessGroup {
  return current(what);
}

function current(what: string): ProcessGroup {
  if (!group) {
    throw new Error(`Cannot ${what}: no process group; call await initProcessGroup() first`);
  }
  return group;
}

function checkTensor(t: unknown, what: string): Tensor {
  if (!(t instanceof Tensor)) {
    throw new TypeError(`Cannot ${what} ${String(t)}: it is not a Tensor`);
  }
  if (t.disposed) throw new TypeError(`Cannot ${what} ${t}: it was disposed`);
  return t;
}

/** Each tensor's latest in-place collective: the next one on it reads its result. */
const pendingWrites = new WeakMap<Tensor, Promise<unknown>>();

/**
 * `t`'s values for a collective called now: as of this call, or, while an earlier in-place
 * collective on `t` is still running, as of its result (the order of one stream in torch).
 */
function readValues(t: Tensor): Promise<Float32Array> {
  const before = pendingWrites.get(t);
  const values = before ? before.then(() => t.data()) : t.data();
  values.catch(() => {}); // reported through the collective
  return values;
}

function trackWrite(t: Tensor, done: Promise<unknown>): void {
  const settled = done.catch(() => {});
  pendingWrites.set(t, settled);
  settled.then(() => {
    if (pendingWrites.get(t) === settled) pendingWrites.delete(t);
  });
}

/** Writes `values` into `t` in place, queued on t's device (a host tensor uploaded). */
function writeBack(t: Tensor, values: Float32Array): void {
  const src = fromArray(values, t.shape, { device: cpu() });
  noGrad(() => t.copy_(src));
  src.dispose();
}

/**
 * Joins the job's process group (torch's `init_process_group` with env://): connects to the
 * NATS server, registers this rank in the job's key-value bucket and waits until all
 * `worldSize` ranks have, bounded by `timeoutMs`. Options default from RANK, WORLD_SIZE,
 * LOCAL_RANK, AUTOPAR_NATS_URL or MASTER_ADDR + MASTER_PORT, AUTOPAR_JOB. Rejects with a
 * DistributedError naming the URL when the server cannot be reached, or naming the ranks
 * still missing at the timeout; throws an Error when a group is already initialized.
 *
 * @example
 * ```ts ignore
 * import { destroyProcessGroup, getRank, getWorldSize, initProcessGroup } from "../../mod.ts";
 * await initProcessGroup(); // RANK=0 WORLD_SIZE=2 AUTOPAR_NATS_URL=nats://127.0.0.1:4222
 * console.log(getRank(), getWorldSize()); // 0 2
 * await destroyProcessGroup();
 * ```
 */
export async function initProcessGroup(options: ProcessGroupOptions = {}): Promise<void> {
  if (group || joining) {
    throw new Error(
      "Cannot initialize the process group: it is already initialized; " +
        "call destroyProcessGroup() first",
    );
  }
  joining = ProcessGroup.create(options);
  try {
    const g = await joining;
    if (options.trace ?? Deno.env.get("AUTOPAR_TRACE") === "1") publisher = await publishTrace(g);
    group = g;
  } finally {
    joining = undefined;
  }
}

/** The trace publisher of `g`; a failure to start it is a warning, never a failed join. */
async function publishTrace(g: ProcessGroup): Promise<TracePublisher | undefined> {
  try {
    return await TracePublisher.start({
      url: g.url,
      job: g.job,
      rank: g.rank,
      worldSize: g.worldSize,
    });
  } catch (e) {
    console.warn(`[rank ${g.rank}] ${e instanceof Error ? e.message : e}; training goes on`);
    return undefined;
  }
}

/**
 * `done`, with a trace event on the `comm` lane (as DistributedDataParallel's collectives
 * have) once it settles, while someone observes the trace.
 */
function traced<T>(
  op: string,
  g: ProcessGroup,
  t: Tensor | undefined,
  done: Promise<T>,
): Promise<T> {
  const e = engine();
  if (!e.events.observed) return done;
  const id = e.nextId();
  const queued = performance.now();
  const emit = (error?: string) =>
    e.events.next({
      id,
      op,
      device: "comm",
      lane: "host",
      queued,
      start: queued,
      end: performance.now(),
      shape: t?.shape,
      bytes: t && t.size * 4,
      deps: [],
      label: `${op} over ${g.worldSize} ranks`,
      error,
    });
  done.then(() => emit(), (err) => emit(err instanceof Error ? err.message : String(err)));
  return done;
}

/**
 * Leaves the process group (torch's `destroy_process_group`): waits for the collectives
 * already queued, removes this rank's key and closes the connection. Does nothing when no
 * group is initialized.
 *
 * @example
 * ```ts
 * import { destroyProcessGroup, isInitialized } from "../../mod.ts";
 * await destroyProcessGroup(); // no group: nothing to do
 * console.log(isInitialized()); // false
 * ```
 */
export async function destroyProcessGroup(): Promise<void> {
  const g = group;
  const p = publisher;
  group = undefined;
  publisher = undefined;
  try {
    await g?.destroy();
  } finally {
    await p?.close(); // after the last collectives, so that their events go out too
  }
}

/**
 * Whether a process group is initialized (torch's `is_initialized`).
 *
 * @example
 * ```ts
 * import { isInitialized } from "../../mod.ts";
 * console.log(isInitialized()); // false
 * ```
 */
export function isInitialized(): boolean {
  return group !== undefined;
}

/**
 * This process's rank in the group, 0 to getWorldSize() - 1. Throws an Error when no group
 * is initialized.
 *
 * @example
 * ```ts ignore
 * import { getRank, initProcessGroup } from "../../mod.ts";
 * await initProcessGroup({ rank: 0, worldSize: 1 });
 * console.log(getRank()); // 0
 * ```
 */
export function getRank(): number {
  return current("get the rank").rank;
}

/**
 * The number of processes in the group. Throws an Error when no group is initialized.
 *
 * @example
 * ```ts ignore
 * import { getWorldSize, initProcessGroup } from "../../mod.ts";
 * await initProcessGroup({ rank: 0, worldSize: 1 });
 * console.log(getWorldSize()); // 1
 * ```
 */
export function getWorldSize(): number {
  return current("get the world size").worldSize;
}

/** Options of {@linkcode allReduce}. */
export interface AllReduceOptions {
  /**
   * How the ranks' values combine: elementwise "sum", "mean" (the sum divided by the world
   * size), "max" or "min".
   * @default {"sum"}
   */
  op?: ReduceOp;
  /**
   * Return a {@linkcode Work} handle at once instead of a promise (torch's `async_op`).
   * @default {false}
   */
  async?: boolean;
}

/**
 * A collective in flight (torch's `Work`): `wait()` resolves once its result is written
 * back, or rejects with its error.
 *
 * @example
 * ```ts ignore
 * import { allReduce, ones } from "../../mod.ts";
 * const t = ones([4]);
 * const work = allReduce(t, { async: true });
 * await work.wait();
 * console.log(work.isCompleted()); // true
 * ```
 */
export class Work {
  #done = false;
  #promise: Promise<void>;
  /** Wraps the promise of a collective. */
  constructor(promise: Promise<void>) {
    this.#promise = promise.finally(() => {
      this.#done = true;
    });
    this.#promise.catch(() => {}); // reported through wait()
  }
  /** Resolves once the collective is done; rejects with its error. */
  wait(): Promise<void> {
    return this.#promise;
  }
  /** Whether the collective has finished, successfully or not. */
  isCompleted(): boolean {
    return this.#done;
  }
}

/**
 * Reduces `tensor` across all ranks, in place (torch's `all_reduce`): afterwards it names the
 * result, the same bits on every rank. The values are read when this is called (after the
 * result of an earlier allReduce or broadcast on the same tensor still running). Up to 8
 * ranks, each sends every segment straight to the rank that reduces it, which publishes the
 * result once (two hops); beyond, a ring (reduce-scatter, then all-gather), each rank sending
 * about 2(N-1)/N of the tensor; AUTOPAR_ALLREDUCE=ring|direct chooses. Returns a
 * promise, or a {@linkcode Work} with `{ async: true }`. Throws a TypeError for a tensor
 * that is not one or was disposed, a RangeError for an unknown op, an Error without a group;
 * the promise rejects with a DistributedError when a rank dies, stalls (`timeoutMs`) or has
 * another shape, or the server is lost. A failed all-reduce leaves the tensor as it was.
 *
 * @example
 * ```ts ignore
 * import { allReduce, fromArray, getRank } from "../../mod.ts";
 * const t = fromArray([getRank(), 1], [2]);
 * await allReduce(t, { op: "sum" }); // 2 ranks
 * console.log(await t.data()); // Float32Array [1, 2]
 * ```
 */
export function allReduce(tensor: Tensor, options: AllReduceOptions & { async: true }): Work;
/**
 * {@linkcode allReduce} without `async`: a promise that resolves once the result is written.
 *
 * @example
 * ```ts ignore
 * import { allReduce, ones } from "../../mod.ts";
 * const t = ones([3]);
 * await allReduce(t, { op: "mean" });
 * console.log(await t.data()); // Float32Array [1, 1, 1]
 * ```
 */
export function allReduce(
  tensor: Tensor,
  options?: AllReduceOptions & { async?: false },
): Promise<void>;
/**
 * {@linkcode allReduce} with `async` not known until run time: a promise or a Work.
 *
 * @example
 * ```ts ignore
 * import { allReduce, ones, Work } from "../../mod.ts";
 * const r = allReduce(ones([3]), { async: Math.random() < 0.5 });
 * await (r instanceof Work ? r.wait() : r);
 * ```
 */
export function allReduce(tensor: Tensor, options?: AllReduceOptions): Promise<void> | Work;
export function allReduce(tensor: Tensor, options: AllReduceOptions = {}): Promise<void> | Work {
  const op = options.op ?? "sum";
  const t = checkTensor(tensor, "allReduce");
  if (!["sum", "mean", "max", "min"].includes(op)) {
    throw new RangeError(
      `Cannot allReduce with op ${JSON.stringify(op)}: it must be "sum", "mean", "max" or "min"`,
    );
  }
  const g = current("allReduce");
  const p = traced(
    "allReduce",
    g,
    t,
    g.allReduce(readValues(t), t.shape, op).then((out) => writeBack(t, out)),
  );
  trackWrite(t, p);
  if (options.async) return new Work(p);
  return p;
}

/**
 * Rank `src`'s `tensor` on every rank, in place (torch's `broadcast`): the other ranks'
 * tensors take its values. Throws a TypeError for a bad tensor, a RangeError for a `src`
 * outside the group; the promise rejects with a DistributedError as allReduce's does.
 *
 * @example
 * ```ts ignore
 * import { broadcast, fromArray, getRank } from "../../mod.ts";
 * const t = fromArray([getRank()], [1]);
 * await broadcast(t, 0);
 * console.log(await t.data()); // Float32Array [0]
 * ```
 */
export function broadcast(tensor: Tensor, src: number): Promise<void> {
  const t = checkTensor(tensor, "broadcast");
  const g = current("broadcast");
  if (!Number.isInteger(src) || src < 0 || src >= g.worldSize) {
    throw new RangeError(
      `Cannot broadcast from rank ${src}: the ranks are 0 to ${g.worldSize - 1}`,
    );
  }
  const p = traced(
    "broadcast",
    g,
    t,
    g.broadcast(readValues(t), t.shape, src).then((out) => {
      if (g.rank !== src) writeBack(t, out);
    }),
  );
  trackWrite(t, p);
  return p;
}

/**
 * Every rank's `tensor`, in rank order (torch's `all_gather`, which fills a list): a new
 * tensor per rank on `tensor`'s device, each of its shape. For one tensor of shape
 * [N * d0, ...] (torch's `all_gather_into_tensor`), `cat(await allGather(t))`. Throws as
 * broadcast does; rejects with a DistributedError when the ranks' shapes differ.
 *
 * @example
 * ```ts ignore
 * import { allGather, fromArray, getRank } from "../../mod.ts";
 * const parts = await allGather(fromArray([getRank()], [1])); // 2 ranks
 * console.log(await parts[1].data()); // Float32Array [1]
 * ```
 */
export function allGather(tensor: Tensor): Promise<Tensor[]> {
  const t = checkTensor(tensor, "allGather");
  const g = current("allGather");
  const n = t.size;
  return traced("allGather", g, t, g.allGather(readValues(t), t.shape)).then((all) =>
    Array.from(
      { length: g.worldSize },
      (_, r) => fromArray(all.subarray(r * n, (r + 1) * n), t.shape, { device: t.device }),
    )
  );
}

/**
 * Resolves once every rank has reached it (torch's `barrier`); rejects with a
 * DistributedError naming the ranks that did not within the timeout.
 *
 * @example
 * ```ts ignore
 * import { barrier } from "../../mod.ts";
 * await barrier();
 * ```
 */
export function barrier(): Promise<void> {
  const g = current("barrier");
  return traced("barrier", g, undefined, g.barrier());
}
