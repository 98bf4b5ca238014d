/**
 * Messages between the engine (main thread) and a device Worker. Plain data only.
 *
 * @module
 */
import type { AdapterListing, WebGpuBackend } from "./backend.ts";
import type { KernelDefinition } from "../kernels/registry.ts";

/**
 * A kernel's parameters as commands carry them: plain, serialisable data (the same shape as
 * the kernels' own `KernelParams`, defined here so that the engine needs no kernel types).
 */
export type OpParams = Record<string, number | string | boolean | undefined>;

/** Runs a registered kernel. */
export interface RunCommand {
  t: "run";
  op: number;
  kernel: string;
  params: OpParams;
  inputs: number[];
  outputs: { id: number; bytes: number }[];
  /** In place: the first output takes over this buffer (it holds the old values). */
  inPlace?: number;
}
/** Creates buffer `buf` holding `data`. */
export interface WriteCommand {
  t: "write";
  op: number;
  buf: number;
  data: ArrayBuffer;
}
/** Reads buffer `buf` back to the main thread. */
export interface ReadCommand {
  t: "read";
  op: number;
  buf: number;
  bytes: number;
}
/** Frees buffer `buf` once the work queued before it is done. */
export interface FreeCommand {
  t: "free";
  buf: number;
}
/** One kernel of a segment of a device program (see {@link DefineCommand}). */
export interface SegmentKernel {
  kernel: string;
  params: OpParams;
  /**
   * The slot bound at each binding, inputs then outputs: slot `s < inputs` is the segment's
   * input `s` (a buffer named when it runs), a larger one the program's static buffer
   * `s - inputs`.
   */
  bind: number[];
}
/** Where an output of a segment comes from, and how it gets its own buffer. */
export interface SegmentOutput {
  slot: number;
  /**
   * "adopt": the output takes the input slot's buffer (an in-place update of an input);
   * "alias": it names the static buffer (read only by later segments of the same replay);
   * "copy": it gets a buffer of its own, copied from the static one at the segment's end.
   */
  as: "adopt" | "alias" | "copy";
}
/**
 * Defines segment `segment` of device program `program`: a recorded run of kernels that a
 * replay encodes in one go, with static buffers made once, pipelines and uniforms resolved
 * once, and bind groups built at its first run.
 */
export interface DefineCommand {
  t: "define";
  program: number;
  segment: number;
  /** Bytes of each input slot. */
  inputs: number[];
  /** Bytes of each static slot. */
  slots: { bytes: number }[];
  kernels: SegmentKernel[];
  outputs: SegmentOutput[];
}
/** Runs a defined segment, reading the buffers `inputs` and making `outputs`. */
export interface ExecCommand {
  t: "exec";
  op: number;
  program: number;
  segment: number;
  inputs: number[];
  /** Ids of the outputs, in the order of the definition's outputs. */
  outputs: number[];
}
/** Drops device program `program` and its static buffers once the work before is done. */
export interface ForgetCommand {
  t: "forget";
  program: number;
}
/** One command of a batch. */
export type Command =
  | RunCommand
  | WriteCommand
  | ReadCommand
  | FreeCommand
  | DefineCommand
  | ExecCommand
  | ForgetCommand;

/** Main thread to Worker. */
export type ToWorker =
  | {
    type: "init";
    index: number;
    backend: WebGpuBackend;
    /** A name Dawn matches against its adapters. */
    adapter?: string;
    /** Report every adapter the backend lists (device 0 does, for discovery). */
    list?: boolean;
  }
  | { type: "batch"; commands: Command[]; timing?: boolean }
  /** A kernel registered on the main thread, for the Worker's own registry (before its use). */
  | { type: "kernel"; definition: KernelDefinition }
  | { type: "close" };

/** What a device Worker says about its adapter. */
export interface AdapterReport {
  description: string;
  vendor: string;
  architecture: string;
  isFallbackAdapter: boolean;
  /** The WebGPU implementation the Worker runs. */
  backend: WebGpuBackend;
  /** Every adapter the backend lists (Dawn only). */
  listed: AdapterListing[];
  features: string[];
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/** A failed op: `skipped` when it failed only because an input had failed. */
export interface OpFailure {
  op: number;
  message: string;
  skipped: boolean;
  /** For a segment of a device program: the index of the kernel that failed in it. */
  inner?: number;
  /** The exception, when the op failed on the host (never sent between threads). */
  cause?: unknown;
  /**
   * The op's outputs hold values all the same (their inputs' old values, say): they are used,
   * and the failure is reported at the next synchronisation.
   */
  kept?: boolean;
}

/**
 * Device times of one op of a timed batch: `start`/`end` in ms on the shared clock, and, for
 * compute passes and copies, `gpuStart`/`gpuEnd` in ns on the device's timestamp clock.
 */
export interface OpTiming {
  op: number;
  start: number;
  end: number;
  gpuStart?: number;
  gpuEnd?: number;
}

/** Worker to main thread. Times are milliseconds on the shared clock (`timeOrigin + now()`). */
export type FromWorker =
  | { type: "ready"; adapter: AdapterReport }
  | { type: "init-failed"; message: string }
  | {
    type: "done";
    ops: number[];
    start: number;
    end: number;
    failures: OpFailure[];
    /** Per-op times, when the batch was timed. */
    timings?: OpTiming[];
  }
  | {
    type: "read";
    op: number;
    data: ArrayBuffer;
    start: number;
    end: number;
    gpuStart?: number;
    gpuEnd?: number;
  }
  | { type: "read-failed"; op: number; message: string }
  /** The device can run nothing more (GPUDevice lost, Worker gone, closed): every op fails. */
  | { type: "lost"; message: string }
  | { type: "closed" };
