/**
 * The engine's side of capture and replay (CUDA Graphs' idea, see lib/capture/capture.ts):
 * a recorded step is the list of op requests, host constants and disposals it made, in
 * order; replaying it submits the same requests again with this replay's tensors in place
 * of the recorded ones, without running the code that made them (no Tensor methods, no
 * autograd, no optimizer loops). The words (version, recording, external, segment, device
 * program) are defined once, in docs/vocabulary.md.
 *
 * @module
 */
import type { OpRequest, TensorRecord } from "./records.ts";

/** What the engine tells a capture in progress. */
export interface CaptureTape {
  /** An op was submitted; `outputs` are its results. */
  op(req: OpRequest, outputs: TensorRecord[]): void;
  /** A host tensor holding `data` was made (a constant of the step). */
  constant(t: TensorRecord, data: Float32Array): void;
  /** A tensor was disposed. */
  dispose(t: TensorRecord): void;
  /**
   * A check to run again before each replay (a label check, say): `resolve` gives the
   * replay's record for a recorded argument, undefined for anything else.
   */
  check(fn: (resolve: (t: TensorRecord) => TensorRecord | undefined) => void): void;
}

/** One recorded event of a step. */
export type RecordedEvent =
  | { kind: "op"; req: OpRequest; outputs: TensorRecord[] }
  | { kind: "constant"; rec: TensorRecord; data: Float32Array }
  | { kind: "dispose"; rec: TensorRecord };

/** The latest version of `t`: in-place ops may have made newer ones since it was recorded. */
export function latest(t: TensorRecord): TensorRecord {
  return t.versions?.newest ?? t;
}

/** Makes `next` the newest version of `t` (an in-place op's output). */
export function supersede(t: TensorRecord, next: TensorRecord): void {
  const versions = t.versions ??= { newest: t };
  versions.newest = next;
  next.versions = versions;
}

/**
 * A recorded step. Records made inside it are internal; every other record it read is
 * external: an argument (replaced by the replay's argument) or state made before the
 * capture (a parameter, read at its latest version, so that in-place updates carry over
 * from replay to replay).
 *
 * @example
 * ```ts
 * import { Recording } from "./capture.ts";
 * const p = new Recording();
 * console.log(p.steps.length, p.made.size); // 0 0
 * ```
 */
export class Recording implements CaptureTape {
  /** What the step did, in order. */
  readonly steps: RecordedEvent[] = [];
  /** Records made inside the step. */
  readonly made = new Set<TensorRecord>();
  /** Checks to run before each replay. */
  readonly checks: ((resolve: (t: TensorRecord) => TensorRecord | undefined) => void)[] = [];

  /** See {@link CaptureTape.check}. */
  check(fn: (resolve: (t: TensorRecord) => TensorRecord | undefined) => void): void {
    this.checks.push(fn);
  }

  /** See {@link CaptureTape.op}. */
  op(req: OpRequest, outputs: TensorRecord[]): void {
    this.steps.push({ kind: "op", req, outputs });
    for (const o of outputs) this.made.add(o);
  }

  /** See {@link CaptureTape.constant}. */
  constant(rec: TensorRecord, data: Float32Array): void {
    this.steps.push({ kind: "constant", rec, data: data.slice() });
    this.made.add(rec);
  }

  /** See {@link CaptureTape.dispose}. */
  dispose(rec: TensorRecord): void {
    this.steps.push({ kind: "dispose", rec });
  }

  /** The external records the step reads (inputs of its ops not made inside it). */
  externals(): Set<TensorRecord> {
    const out = new Set<TensorRecord>();
    for (const s of this.steps) {
      if (s.kind !== "op") continue;
      for (const t of [...s.req.inputs, ...(s.req.inPlace ? [s.req.inPlace] : [])]) {
        if (!this.made.has(t)) out.add(t);
      }
    }
    return out;
  }
}
