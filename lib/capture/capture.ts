/**
 * Capture and replay of a repeated step (CUDA Graphs' idea, and onnxruntime-web's graph
 * capture): `capture(fn)` runs `fn` once as it is (a warm-up, in which optimizers make their
 * state), records the ops its second call submits, and each later `replay` submits them
 * again for new arguments of the same shapes, without running `fn`: no Tensor methods, no
 * autograd tape, no optimizer or DataParallel bookkeeping. Each run of kernels on one device
 * is replayed as one op, a segment (segments.ts), that the device encodes in one go from
 * buffers, uniforms and bind groups made once; copies and host ops are resubmitted one by
 * one.
 *
 * What carries over between replays is what the step updates in place (parameters through
 * `sub_`, SGD's momentum and Adam's running means and bias corrections through `copy_`).
 * State that a step replaces instead (DataParallel's pending gradients with staleness, a
 * tensor a user's step re-creates) is read by the recording at its old value: replay
 * refuses it with a TypeError rather than compute with stale tensors. JavaScript fields the step sets (`p.grad`) are not updated by a replay:
 * read what the step returns.
 *
 * @module
 */
import { engine } from "../engine/engine.ts";
import { latest, Recording } from "../engine/capture.ts";
import type { OpNode, TensorRecord } from "../engine/records.ts";
import type { Device } from "../devices/device.ts";
import { type Plan, planSegments } from "./segments.ts";
import { recordOf, Tensor, wrap } from "../tensor/tensor.ts";

/** What a step returns: a tensor, several, or nothing. */
export type CaptureResult = Tensor | Tensor[] | void;

/** A captured step. */
export interface Captured<R extends CaptureResult> {
  /**
   * The first call runs the step (warm-up), the second runs and records it; each later call
   * replays the recording for these arguments and returns new tensors in the places of the
   * step's results.
   * Throws before anything is queued when an argument's shape or device differs from the
   * recording's, or when state it reads is gone.
   */
  replay(...args: Tensor[]): R;
  /** Ops the recording holds (0 before the first call). */
  readonly ops: number;
  /** How many times the recording was replayed. */
  readonly replays: number;
  /**
   * Device segments of the recording: runs of kernels on one device that a replay sends as
   * one op, encoded by the device in one go (see lib/capture/segments.ts).
   */
  readonly segments: number;
  /** Frees the recording's buffers on its devices; a later call runs the step anew. */
  dispose(): void;
}

/** Options of {@link capture}. */
export interface CaptureOptions {
  /**
   * Send each run of kernels on a device as one op (a segment) that the device encodes in
   * one go, from bind groups and buffers made once. `false` replays op by op: each op then
   * has its own trace event and device times, at the cost of per-op work on both threads.
   * @default {true}
   */
  segments?: boolean;
}

let nextProgram = 1;

const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;

/**
 * Runs `fn` on its first call, records it on its second and replays it after.
 *
 * @example
 * ```ts
 * import { capture, fromArray } from "../../mod.ts";
 * const w = fromArray([1, 1], [2]);
 * const step = capture((x) => {
 *   const g = x.mul(w);
 *   w.sub_(g, { alpha: 0.5 }); // state updated in place carries over between replays
 *   return g.sum();
 * });
 * const x = fromArray([1, 2], [2]);
 * console.log((await step.replay(x).data())[0]); // 3: run (warm-up)
 * console.log((await step.replay(x).data())[0]); // 0.5: run and recorded (w was [0.5, 0])
 * console.log((await step.replay(x).data())[0]); // 0.25: replayed (w was [0.25, 0])
 * console.log(step.ops, step.replays, await w.data()); // 3 1 Float32Array [0.125, 0]
 * ```
 */
export function capture<R extends CaptureResult>(
  fn: (...args: Tensor[]) => R,
  options: CaptureOptions = {},
): Captured<R> {
  if (typeof fn !== "function") {
    throw new TypeError(`Cannot capture ${String(fn)}: give the step as a function of tensors`);
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError(`Cannot capture with options ${options}: give an object or nothing`);
  }
  let recording: Recording | undefined;
  let argRecs: TensorRecord[] = [];
  let shapes: { shape: readonly number[]; device: string }[] = [];
  let outRecs: TensorRecord[] = [];
  let single = false;
  /** Records made inside the step, alive at its end, that nothing outside reads. */
  let carried: TensorRecord[] = [];
  let lastCarried: TensorRecord[] = [];
  let externals: TensorRecord[] = [];
  /**
   * Each external's newest version seen so far: a replay looks for newer ones from there,
   * not along the whole chain of versions since the recording (which would grow with every
   * replay, and keep every old version alive).
   */
  let current: TensorRecord[] = [];
  let replays = 0;
  let warmedUp = false;
  let plan: Plan | undefined;
  let programId = 0;
  /** The last segment submitted on each device: the next one there goes after it. */
  const lastOn = new Map<Device, OpNode>();

  const record = (args: Tensor[]): R => {
    const e = engine();
    if (e.capture) throw new TypeError("Cannot capture a step inside another capture");
    argRecs = args.map((a, i) => {
      if (!(a instanceof Tensor)) {
        throw new TypeError(`Cannot capture argument ${i}: ${a} is not a Tensor`);
      }
      return recordOf(a);
    });
    shapes = args.map((a) => ({ shape: a.shape, device: a.device.name }));
    const p = new Recording();
    e.capture = p;
    let result: R;
    try {
      result = fn(...args);
    } finally {
      e.capture = undefined;
    }
    const outs = result === undefined ? [] : Array.isArray(result) ? result : [result];
    single = result instanceof Tensor;
    outRecs = outs.map((t) => recordOf(t as Tensor));
    const args_ = new Set(argRecs);
    externals = [...p.externals()].filter((t) => !args_.has(t));
    current = externals.map(latest);
    // State the step updated in place: the newest versions of external records.
    const state = new Set(externals.map(latest));
    const results = new Set(outRecs);
    carried = [...p.made].filter((t) => !t.disposed && !results.has(t) && !state.has(t));
    lastCarried = carried;
    recording = p;
    programId = nextProgram++;
    plan = options.segments === false
      ? { segments: [], segmentAt: p.steps.map(() => undefined) }
      : planSegments(p.steps, results, programId);
    for (const seg of plan.segments) e.command(seg.device, seg.define);
    return result;
  };

  const replay = (args: Tensor[]): R => {
    const p = recording!;
    const e = engine();
    // An outer recording would resubmit the segments outside this step's ordering of them.
    if (e.capture && plan!.segments.length > 0) {
      throw new TypeError(
        "Cannot replay a captured step inside another capture: capture the outer step " +
          "around the inner step's function, or capture the inner one with { segments: false }",
      );
    }
    if (args.length !== argRecs.length) {
      throw new TypeError(
        `Cannot replay a step recorded with ${argRecs.length} arguments with ${args.length}`,
      );
    }
    const given = args.map((a, i) => {
      if (!(a instanceof Tensor)) {
        throw new TypeError(`Cannot replay with argument ${i}: ${a} is not a Tensor`);
      }
      const want = shapes[i];
      if (
        a.device.name !== want.device || a.shape.length !== want.shape.length ||
        a.shape.some((n, k) => n !== want.shape[k])
      ) {
        throw new RangeError(
          `Cannot replay with argument ${i} of shape ${fmt(a.shape)} on ${a.device.name}: the ` +
            `step was recorded with shape ${fmt(want.shape)} on ${want.device} (capture a ` +
            `step per shape)`,
        );
      }
      const rec = recordOf(a);
      if (rec.disposed) throw new TypeError(`Cannot replay with argument ${i}: it was disposed`);
      return rec;
    });
    const map = new Map<TensorRecord, TensorRecord>();
    argRecs.forEach((r, i) => map.set(r, given[i]));
    for (const [k, ext] of externals.entries()) {
      const now = current[k] = latest(current[k]);
      if (now.disposed) {
        throw new TypeError(
          `Cannot replay: the step reads a tensor of shape ${fmt(ext.shape)} on ` +
            `${ext.device.name}, made before it was recorded, that has been disposed since. ` +
            `A step can carry state over only by updating it in place (sub_, copy_); state it ` +
            `replaces (gradients pending with staleness, say) cannot be replayed`,
        );
      }
      map.set(ext, now);
    }
    for (const check of p.checks) check((t) => given[argRecs.indexOf(t)]);
    // What the last replay made that nothing outside reads is dropped now.
    for (const t of lastCarried) e.dispose(t);
    const segmentAt = plan!.segmentAt;
    for (let i = 0; i < p.steps.length; i++) {
      const s = p.steps[i];
      const seg = segmentAt[i];
      if (seg === "inside") continue;
      if (seg) {
        // One op for the segment's kernels; one that makes nothing seen outside is dropped.
        if (seg.outputs.length === 0) continue;
        const outputs = e.submit({
          name: "replay",
          device: seg.device,
          kind: "program",
          inputs: seg.inputs.map((t) => map.get(t) ?? t),
          outputShapes: seg.outputShapes,
          segment: seg.ref,
          prev: lastOn.get(seg.device),
          site: seg.ref.ops[0].site,
          label: seg.label,
          flops: seg.flops,
        });
        seg.outputs.forEach((o, k) => map.set(o, outputs[k]));
        lastOn.set(seg.device, outputs[0].producer!);
      } else if (s.kind === "constant") {
        map.set(s.rec, e.hostTensor(s.data.slice(), s.rec.shape));
      } else if (s.kind === "dispose") {
        const t = map.get(s.rec);
        if (t) e.dispose(t);
      } else {
        const req = s.req;
        const outputs = e.submit({
          ...req,
          inputs: req.inputs.map((t) => map.get(t) ?? t),
          inPlace: req.inPlace && (map.get(req.inPlace) ?? req.inPlace),
        });
        s.outputs.forEach((o, i) => map.set(o, outputs[i]));
      }
    }
    lastCarried = carried.map((t) => map.get(t)!).filter((t) => t !== undefined);
    replays++;
    const outs = outRecs.map((t) => wrap(map.get(t) ?? t));
    return (single ? outs[0] : outRecs.length === 0 ? undefined : outs) as R;
  };

  const dispose = () => {
    if (!plan) return;
    const e = engine();
    for (const device of new Set(plan.segments.map((s) => s.device))) {
      e.command(device, { t: "forget", program: programId }, lastOn.get(device));
    }
    for (const t of lastCarried) e.dispose(t);
    recording = plan = undefined;
    lastOn.clear();
    warmedUp = false;
  };

  return {
    dispose,
    replay: (...args: Tensor[]) => {
      if (recording) return replay(args);
      if (warmedUp) return record(args);
      warmedUp = true;
      return fn(...args);
    },
    get ops() {
      return recording?.steps.filter((s) => s.kind === "op").length ?? 0;
    },
    get replays() {
      return replays;
    },
    get segments() {
      return plan?.segments.length ?? 0;
    },
  };
}
