/**
 * What the dashboard's server sends its page: plain, serialisable data shared by routes/,
 * islands/ and components/ (types only, and the section table of the chapter).
 *
 * @module
 */
import type { TraceEvent } from "../lib/trace/trace.ts";
import type { TraceSummary } from "../lib/trace/summarize.ts";

export type { TraceEvent };

/**
 * The experiments the dashboard can start: the chapter's two sections, a variant, and the
 * training of its two-layer MLP on MNIST, data parallel over the devices.
 */
export type Experiment = "gpu1-gpu2" | "run-and-copy" | "copy-heavy" | "train";

/** A request to start an experiment (`POST /api/runs`). */
export interface RunRequest {
  experiment: Experiment;
  /** Rows and columns of the matrix; for "train", samples per minibatch. */
  size: number;
  /** Products (or stream items) per line; for "train", epochs. */
  iters: number;
}

/** One epoch of a "train" run. */
export interface TrainEpoch {
  epoch: number;
  /** Mean training loss over the epoch. */
  loss: number;
  trainAccuracy: number;
  /** Accuracy on the 2,000 test digits after the epoch. */
  testAccuracy: number;
  seconds: number;
  samplesPerSecond: number;
  /** Share of the gradient copies' time during which some device computed (null: none). */
  gradientHidden: number | null;
}

/** One experiment run, as `GET /api/runs/:id` returns it. */
export interface RunRecord extends RunRequest {
  id: string;
  status: "running" | "done" | "failed";
  /** ISO time of the start. */
  started: string;
  /** Seconds the whole run took, once it has ended. */
  seconds?: number;
  /** Seconds of each line of the chapter's table ("GPU1 time": 0.41, ...), once done. */
  timings?: Record<string, number>;
  /** The trace summary of the combined line ("GPU1 & GPU2", ...), once done. */
  summary?: TraceSummary;
  /** A "train" run's epochs so far. */
  epochs?: TrainEpoch[];
  /** Why it failed. */
  error?: string;
}

/** Live figures of the last second, computed by the server once a frame. */
export interface LiveStats {
  /** Floating-point work finished per second on compute lanes, in GFLOP/s. */
  gflops: number;
  /** Bytes copied per second on copy lanes. */
  bytesPerSec: number;
  /** Share of copy time that ran while some device computed (null: no copies). */
  overlap: number | null;
  /** Work in flight per device: ops sent and not finished, ops waiting, bytes in flight. */
  inflight: Record<string, { ops: number; waiting: number; bytes: number }>;
  /** Producers waiting on backpressure now. */
  producersWaiting: number;
  /** Trace events seen since the server started. */
  eventsTotal: number;
}

/** A device as the page shows it. */
export interface DeviceSummary {
  name: string;
  adapter: string;
  software: boolean;
  threads?: number;
  maxStorageBufferBindingSize: number;
}

/** The `hello` message, first on every event stream. */
export interface Hello {
  /** Differs per server process: a client that sees a new one starts afresh. */
  serverId: string;
  /** The server's clock (ms, performance.now()) when the message was made. */
  now: number;
  devices: DeviceSummary[];
}

/** A `batch` message: trace events finished during one frame. */
export interface Batch {
  seq: number;
  events: TraceEvent[];
}

/** A `state` message: the figures, timings and run of now, and what this client missed. */
export interface State {
  now: number;
  stats: LiveStats;
  /** Latest seconds of each benchmarked line, by label. */
  timings: Record<string, number>;
  run: RunRecord | null;
  /** Batches this client missed because it read too slowly. */
  dropped: number;
}

/** Defaults for the run buttons and the largest values a run may ask for. */
export interface RunLimits {
  maxSize: number;
  maxIters: number;
  /** Largest minibatch and most epochs of a "train" run. */
  maxBatch: number;
  maxEpochs: number;
  defaults: Record<Experiment, { size: number; iters: number }>;
}
