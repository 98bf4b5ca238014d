/**
 * How a submitted batch is reported: one "done" once it has completed (with its failures,
 * and per-op device times when it was timed), then a "read" (or "read-failed") per readback.
 *
 * @module
 */
import type { FromWorker, OpFailure, OpTiming, ReadCommand } from "./protocol.ts";
import type { Waits } from "./drains.ts";
import type { BatchTimer, DeviceClock, DeviceSpan } from "./batch_timer.ts";
import type { StagingRing } from "./staging_ring.ts";

/** Sends a report (its ArrayBuffers transferred). */
export type Post = (msg: FromWorker, transfer?: ArrayBuffer[]) => void;

/** Milliseconds on the clock shared by the threads. */
export const clock = (): number => performance.timeOrigin + performance.now();

/** A readback of a batch: the command, and the staging buffer it copies into. */
export interface PendingRead {
  cmd: ReadCommand;
  staging: GPUBuffer;
}

/** What a submitted batch did, as its report needs it. */
export interface SubmittedBatch {
  /** When the batch began, and when it was submitted. */
  start: number;
  submitted: number;
  /** Ops encoded (they are reported done unless the command buffer proves invalid). */
  done: number[];
  failures: OpFailure[];
  /** Times of a timed batch's writes, on this thread's clock. */
  writes: OpTiming[];
  reads: PendingRead[];
  timer: BatchTimer | undefined;
  /** The batch's validation error scope. */
  validation: Promise<GPUError | null>;
  /** Gives back what the batch held (buffers, uniform slots), once it has completed. */
  release: () => void;
}

/** Where reports go, and what they wait with. */
export interface Reporter {
  post: Post;
  waits: Waits;
  staging: StagingRing;
  deviceClock: DeviceClock;
}

/**
 * Reports `batch`: once, when a later wait (see drains.ts) or one of its readbacks shows it
 * complete, and before its readbacks. A timed batch is reported once its timestamps are in:
 * their readback is mapped at the same wait.
 */
export function reportBatch(r: Reporter, batch: SubmittedBatch): void {
  const copies = new Map<number, OpTiming>();
  let reported: Promise<void> | undefined;
  const timer = batch.timer;
  const reportDone = () =>
    reported ??= Promise.all([
      batch.validation,
      timer?.timed ? timer.read(r.staging, r.waits).catch(() => undefined) : undefined,
    ]).then(([error, stamps]) => {
      const end = clock();
      const { done, failures } = batch;
      if (error) {
        // The batch's command buffer was invalid: no op in it can be trusted.
        for (const op of done) failures.push({ op, message: error.message, skipped: false });
        done.length = 0;
      }
      let timings: OpTiming[] | undefined;
      if (timer) {
        timings = batch.writes;
        if (stamps && stamps.spans.size > 0) {
          const offset = r.deviceClock.align(batch.submitted, end, stamps.first, stamps.last);
          const onClock = (op: number, d: DeviceSpan): OpTiming => ({
            op,
            start: offset + d.gpuStart / 1e6,
            end: offset + d.gpuEnd / 1e6,
            ...d,
          });
          const isRead = new Set(batch.reads.map((read) => read.cmd.op));
          for (const [op, d] of stamps.spans) {
            if (isRead.has(op)) copies.set(op, onClock(op, d));
            else timings.push(onClock(op, d));
          }
        }
      }
      r.post({ type: "done", ops: done, start: batch.start, end, failures, timings });
      batch.release();
    });
  if (timer?.timed) reportDone();
  r.waits.submitted(reportDone);
  for (const read of batch.reads) {
    reportRead(r, read, reportDone, (op) => ({
      start: copies.get(op)?.start ?? batch.start,
      gpuStart: copies.get(op)?.gpuStart,
      gpuEnd: copies.get(op)?.gpuEnd,
    }));
  }
}

/** Posts a readback's bytes once its staging buffer is mapped and its batch reported. */
function reportRead(
  r: Reporter,
  { cmd, staging: s }: PendingRead,
  reportDone: () => Promise<void>,
  timesOf: (op: number) => { start: number; gpuStart?: number; gpuEnd?: number },
): void {
  const failed = (e: unknown) => {
    r.staging.give(s);
    r.post({
      type: "read-failed",
      op: cmd.op,
      message: e instanceof Error ? e.message : String(e),
    });
  };
  r.waits.map(s).then(async () => {
    let data: ArrayBuffer;
    try {
      await reportDone();
      // The one copy out of mapped memory; the new ArrayBuffer is transferred, not copied.
      data = s.getMappedRange().slice(0, cmd.bytes);
      s.unmap();
    } catch (e) {
      // The device went away meanwhile (closed, lost): this readback fails, not the Worker.
      return failed(e);
    }
    r.staging.give(s);
    // A timed copy to the host spans from its device copy's start to the bytes' arrival.
    r.post({ type: "read", op: cmd.op, data, ...timesOf(cmd.op), end: clock() }, [data]);
  }, failed);
}
