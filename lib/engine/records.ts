/**
 * What the engine tracks: a tensor's storage ({@link TensorRecord}) and an op
 * ({@link OpNode}), linked both ways: an op reads records and produces records, and each
 * record knows its producer and how many unsent ops still read it.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import type { Command, OpParams } from "../devices/protocol.ts";
import { isHostVisible } from "../devices/capabilities.ts";
import type { OpError } from "./errors.ts";

/** A tensor's storage as the engine sees it. Host values live in the engine's host store. */
export interface TensorRecord {
  readonly id: number;
  readonly device: Device;
  readonly shape: readonly number[];
  readonly bytes: number;
  /** pending: producer not sent; sent: producer on its lane; done: computed; failed. */
  state: "pending" | "sent" | "done" | "failed";
  /** The op that produces it, if any. */
  producer?: OpNode;
  /** The root failure when `state` is "failed". */
  error?: OpError;
  /** Ops not yet sent that read it. */
  unsentReaders: number;
  disposed: boolean;
  freed: boolean;
  /** Internal temporaries (readbacks, staging of uploads and device-to-device copies). */
  internal: boolean;
  /** An in-place op that will overwrite this storage once every earlier reader has gone. */
  writer?: OpNode;
  /** The in-place op's output now owns this storage: freeing this one frees nothing. */
  movedTo?: TensorRecord;
  settledWaiters?: (() => void)[];
  /**
   * Shared by the versions in-place ops made of one tensor, naming the newest (set when the op
   * making it is submitted). No version points at the next: one that is held (by a captured
   * step, or a Tensor not used since) keeps only itself and the newest alive.
   */
  versions?: { newest: TensorRecord };
}

/** One op as the engine schedules it. */
export interface OpNode {
  readonly id: number;
  readonly name: string;
  readonly device: Device;
  /** "program": a segment of a captured step, run on its device in one go (capture.ts). */
  readonly kind: "run" | "read" | "write" | "program";
  readonly kernel?: string;
  readonly params?: OpParams;
  /**
   * Emptied once the op has finished (with `inPlace`, `adopts`, `prev` and `after`), so that a
   * record's producer does not keep every tensor and op before it alive.
   */
  inputs: TensorRecord[];
  readonly outputs: TensorRecord[];
  /** The tensor an in-place op overwrites (also its last input): its output takes the storage. */
  inPlace?: TensorRecord;
  readonly site: Error;
  /** A program op's segment. */
  readonly segment?: SegmentRef;
  /** Inputs of a program op that its outputs update in place (see OpRequest.adopts). */
  adopts?: TensorRecord[];
  /** An op that must have been sent before this one (the segment before, on this device). */
  prev?: OpNode;
  readonly queued: number;
  readonly bytes: number;
  readonly flops?: number;
  readonly label?: string;
  /** A blocking op submitted before this one: this one waits until it has finished. */
  after?: OpNode;
  state: "waiting" | "sent" | "done" | "failed";
  /** Commands to send right after this op (see Engine.command). */
  then?: Command[];
  finishWaiters?: (() => void)[];
}

/**
 * A segment of a device program as the engine submits it: its ids on the device and the
 * recorded ops it stands for (whose names and sites its errors give).
 */
export interface SegmentRef {
  program: number;
  segment: number;
  /**
   * For each of the segment's kernels, in order: its op, or for a fused kernel a name that
   * lists its ops (`fused(mul, add)`), the first one's site, and the ops themselves.
   */
  ops: { name: string; site: Error; fused?: { name: string; site: Error }[] }[];
  /** For each output: the input it updates in place (index into inputs), if any. */
  adopts: (number | undefined)[];
}

/** An op to submit. */
export interface OpRequest {
  name: string;
  device: Device;
  kind: OpNode["kind"];
  kernel?: string;
  params?: OpParams;
  inputs: TensorRecord[];
  outputShapes: (readonly number[])[];
  flops?: number;
  label?: string;
  internal?: boolean;
  /** Ops submitted after this one are not sent before it has finished (blocking copies). */
  blocking?: boolean;
  /**
   * Where the op was created, for its errors; a replay passes the recorded op's.
   * @default {a new Error here}
   */
  site?: Error;
  /**
   * Overwrite this tensor (a "run" op whose kernel is `inPlace`): the one output is a new
   * version that takes over its storage. The op waits until every op submitted earlier that
   * reads the old version has been sent to the same in-order lane or has finished; ops that
   * read the output wait for the op as for any producer.
   */
  inPlace?: TensorRecord;
  /**
   * Where the outputs live, when not on `device` (a "read" op's are on the host): an op on a
   * host lane of its own (lib/devices/async_host.ts) gives host tensors.
   * @default {device}
   */
  outputDevice?: Device;
  /** A "program" op's segment; its outputs live on `device`. */
  segment?: SegmentRef;
  /** See {@link OpNode.prev}. */
  prev?: OpNode;
}

/** The number of elements of `shape`. */
export const elementsOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Whether `t` lives in device memory (counted by `liveBuffers()`), not on the host. */
export const onDevice = (t: TensorRecord): boolean => !isHostVisible(t.device);
