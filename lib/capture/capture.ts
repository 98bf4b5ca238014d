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
  /**
   * Kernels a replay dispatches: those of its segments (a fused group counts once) and
   * those it submits op by op (0 before the recording).
   */
  readonly kernels: number;
  /** Fused kernels among them: each computes a group of the recording's elementwise ops. */
  readonly fused: number;
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
  /**
   * Fuse each segment's elementwise kernels (same length: arithmetic, unary functions,
   * fills, in-place updates) into one generated kernel per group, keeping values between
   * them in registers (lib/capture/fuse.ts). Only segments are fused: `segments: false`
   * replays op by op, unfused.
   * @default {true}
   */
  fuse?: boolean;
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
  return new CapturedStep(fn, options);
}

/** What a recording knows of the step it recorded. */
interface Recorded {
  recording: Recording;
  plan: Plan;
  program: number;
  args: TensorRecord[];
  shapes: { shape: readonly number[]; device: string }[];
  results: TensorRecord[];
  /** The step returned one tensor (not an array). */
  single: boolean;
  /** Records made inside the step, alive at its end, that nothing outside reads. */
  carried: TensorRecord[];
  /** Records made before the step that it reads. */
  externals: TensorRecord[];
}

/** A captured step: run, then recorded, then replayed (see {@link capture}). */
class CapturedStep<R extends CaptureResult> implements Captured<R> {
  readonly #fn: (...args: Tensor[]) => R;
  readonly #options: CaptureOptions;
  #recorded: Recorded | undefined;
  #warmedUp = false;
  #replays = 0;
  /** What the last replay made that nothing outside reads: dropped at the next one. */
  #lastCarried: TensorRecord[] = [];
  /**
   * Each external's newest version seen so far: a replay looks for newer ones from there,
   * not along the whole chain of versions since the recording (which would grow with every
   * replay, and keep every old version alive).
   */
  #current: TensorRecord[] = [];
  /** The last segment submitted on each device: the next one there goes after it. */
  readonly #lastOn = new Map<Device, OpNode>();

  constructor(fn: (...args: Tensor[]) => R, options: CaptureOptions) {
    this.#fn = fn;
    this.#options = options;
  }

  replay(...args: Tensor[]): R {
    if (this.#recorded) return this.#replay(this.#recorded, args);
    if (this.#warmedUp) return this.#record(args);
    this.#warmedUp = true;
    return this.#fn(...args);
  }

  get ops(): number {
    return this.#recorded?.recording.steps.filter((s) => s.kind === "op").length ?? 0;
  }

  get replays(): number {
    return this.#replays;
  }

  get segments(): number {
    return this.#recorded?.plan.segments.length ?? 0;
  }

  get kernels(): number {
    const r = this.#recorded;
    if (!r) return 0;
    const inSegments = r.plan.segments.reduce((n, s) => n + s.define.kernels.length, 0);
    const alone =
      r.recording.steps.filter((s, i) =>
        s.kind === "op" && s.req.kind === "run" && r.plan.segmentAt[i] === undefined
      ).length;
    return inSegments + alone;
  }

  get fused(): number {
    const segments = this.#recorded?.plan.segments ?? [];
    return segments.reduce((n, s) => n + s.ref.ops.filter((o) => o.fused).length, 0);
  }

  dispose(): void {
    const r = this.#recorded;
    if (!r) return;
    const e = engine();
    for (const device of new Set(r.plan.segments.map((s) => s.device))) {
      e.command(device, { t: "forget", program: r.program }, this.#lastOn.get(device));
    }
    for (const t of this.#lastCarried) e.dispose(t);
    this.#recorded = undefined;
    this.#lastOn.clear();
    this.#warmedUp = false;
  }

  /** Runs the step and records the ops it submits; defines its segments on their devices. */
  #record(args: Tensor[]): R {
    const e = engine();
    if (e.capture) throw new TypeError("Cannot capture a step inside another capture");
    const argRecs = args.map((a, i) => {
      if (!(a instanceof Tensor)) {
        throw new TypeError(`Cannot capture argument ${i}: ${a} is not a Tensor`);
      }
      return recordOf(a);
    });
    const shapes = args.map((a) => ({ shape: a.shape, device: a.device.name }));
    const p = new Recording();
    e.capture = p;
    let result: R;
    try {
      result = this.#fn(...args);
    } finally {
      e.capture = undefined;
    }
    const outs = result === undefined ? [] : Array.isArray(result) ? result : [result];
    const outRecs = outs.map((t) => recordOf(t as Tensor));
    const args_ = new Set(argRecs);
    const externals = [...p.externals()].filter((t) => !args_.has(t));
    this.#current = externals.map(latest);
    // State the step updated in place: the newest versions of external records.
    const state = new Set(externals.map(latest));
    const results = new Set(outRecs);
    const carried = [...p.made].filter((t) => !t.disposed && !results.has(t) && !state.has(t));
    this.#lastCarried = carried;
    const program = nextProgram++;
    const plan = this.#options.segments === false
      ? { segments: [], segmentAt: p.steps.map(() => undefined) }
      : planSegments(p.steps, results, program, this.#options.fuse !== false);
    for (const seg of plan.segments) e.command(seg.device, seg.define);
    this.#recorded = {
      recording: p,
      plan,
      program,
      args: argRecs,
      shapes,
      results: outRecs,
      single: result instanceof Tensor,
      carried,
      externals,
    };
    return result;
  }

  /** Submits the recording again for `args`. */
  #replay(r: Recorded, args: Tensor[]): R {
    const e = engine();
    // An outer recording would resubmit the segments outside this step's ordering of them.
    if (e.capture && r.plan.segments.length > 0) {
      throw new TypeError(
        "Cannot replay a captured step inside another capture: capture the outer step " +
          "around the inner step's function, or capture the inner one with { segments: false }",
      );
    }
    const given = checkArguments(r, args);
    const map = new Map<TensorRecord, TensorRecord>();
    r.args.forEach((rec, i) => map.set(rec, given[i]));
    for (const [k, ext] of r.externals.entries()) {
      const now = this.#current[k] = latest(this.#current[k]);
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
    for (const check of r.recording.checks) check((t) => given[r.args.indexOf(t)]);
    // What the last replay made that nothing outside reads is dropped now.
    for (const t of this.#lastCarried) e.dispose(t);
    for (let i = 0; i < r.recording.steps.length; i++) this.#submit(r, i, map);
    this.#lastCarried = r.carried.map((t) => map.get(t)!).filter((t) => t !== undefined);
    this.#replays++;
    const outs = r.results.map((t) => wrap(map.get(t) ?? t));
    return (r.single ? outs[0] : r.results.length === 0 ? undefined : outs) as R;
  }

  /** Submits step `i` of the recording (or its segment), mapping recorded tensors through `map`. */
  #submit(r: Recorded, i: number, map: Map<TensorRecord, TensorRecord>): void {
    const e = engine();
    const s = r.recording.steps[i];
    const seg = r.plan.segmentAt[i];
    if (seg === "inside") return;
    if (seg) {
      // One op for the segment's kernels; one that makes nothing seen outside is dropped.
      if (seg.outputs.length === 0) return;
      const outputs = e.submit({
        name: "replay",
        device: seg.device,
        kind: "program",
        inputs: seg.inputs.map((t) => map.get(t) ?? t),
        outputShapes: seg.outputShapes,
        segment: seg.ref,
        prev: this.#lastOn.get(seg.device),
        site: seg.ref.ops[0].site,
        label: seg.label,
        flops: seg.flops,
      });
      seg.outputs.forEach((o, k) => map.set(o, outputs[k]));
      this.#lastOn.set(seg.device, outputs[0].producer!);
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
      s.outputs.forEach((o, k) => map.set(o, outputs[k]));
    }
  }
}

/** The records of a replay's arguments; throws when one differs from the recording's. */
function checkArguments(r: Recorded, args: Tensor[]): TensorRecord[] {
  if (args.length !== r.args.length) {
    throw new TypeError(
      `Cannot replay a step recorded with ${r.args.length} arguments with ${args.length}`,
    );
  }
  return args.map((a, i) => {
    if (!(a instanceof Tensor)) {
      throw new TypeError(`Cannot replay with argument ${i}: ${a} is not a Tensor`);
    }
    const want = r.shapes[i];
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
}
