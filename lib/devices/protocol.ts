/**
 * Messages between the engine (main thread) and a device Worker. Plain data only.
 *
 * @module
 */
import type { KernelParams } from "../kernels/kernel.ts";
import type { AdapterListing, WebGpuBackend } from "./backend.ts";

/** Runs a registered kernel (or, for `source`, a WGSL module given in full). */
export interface RunCommand {
  t: "run";
  op: number;
  kernel: string;
  params: KernelParams;
  /** A complete WGSL module used instead of the registered kernel's (custom kernels). */
  source?: string;
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
/** One command of a batch. */
export type Command = RunCommand | WriteCommand | ReadCommand | FreeCommand;

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
  /** The exception, when the op failed on the host (never sent between threads). */
  cause?: unknown;
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
  | { type: "closed" };
