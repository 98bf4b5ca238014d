/**
 * Cuts a recorded step into device segments: maximal runs of kernels on one WebGPU device
 * that a replay sends as one op, encoded by the device Worker in one go with bind groups,
 * pipelines, uniforms and buffers made once (CUDA Graphs' idea). The rest of the step
 * (host ops, copies between devices and the host) is replayed op by op.
 *
 * A segment is submitted where its first kernel was recorded, so it may only read what
 * existed by then: a kernel that reads a tensor made later outside the segment (a gradient
 * averaged on the host, say) starts a new segment, as does a change of label (forward and
 * backward keep their own trace events), or a blocking copy. A kernel that overwrites a
 * tensor read outside the segment since it began starts one too, so reads before an
 * in-place update stay before it.
 *
 * Every tensor a segment makes has a static buffer of the program (tensors whose lives
 * inside it do not overlap share one); its inputs come in the buffers they are given, and
 * an input it updates in place is updated there. What leaves a segment is an
 * output: an input it updates in place (a parameter's `sub_`) keeps that input's buffer; a
 * tensor only later segments on the device read names the static buffer; anything else
 * (results, tensors read by copies or host ops) is copied into a buffer of its own.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import type { KernelParams } from "../kernels/kernel.ts";
import { boundSize } from "../devices/buffer_pool.ts";
import { capabilitiesOf } from "../devices/capabilities.ts";
import type { DefineCommand, SegmentOutput } from "../devices/protocol.ts";
import type { SegmentRef, TensorRecord } from "../engine/records.ts";
import type { RecordedEvent } from "../engine/capture.ts";
import { fuseKernels, type PlannedKernel } from "./fuse.ts";

/** A segment as planned: what a replay submits, and its definition for the device. */
export interface SegmentPlan {
  device: Device;
  /** Its index in the program. */
  index: number;
  /** Index of the step where it is submitted (its first kernel's). */
  at: number;
  label?: string;
  /** Recorded tensors it reads, in the order of its input slots. */
  inputs: TensorRecord[];
  /** Recorded tensors it makes that the rest of the step or its caller sees. */
  outputs: TensorRecord[];
  /** Their shapes, as a replay's submission takes them. */
  outputShapes: (readonly number[])[];
  ref: SegmentRef;
  define: DefineCommand;
  flops: number;
}

/** What a replay does at each step: submit it as recorded, submit a segment, or skip it. */
export type Plan = { segments: SegmentPlan[]; segmentAt: (SegmentPlan | "inside" | undefined)[] };

interface Building {
  device: Device;
  at: number;
  label?: string;
  steps: number[];
  made: Set<TensorRecord>;
}

/**
 * Plans the segments of `steps`, for device program `program`. `results` are the step's
 * results (they leave their segment by copy). With `fuse`, each segment's elementwise
 * kernels are fused (fuse.ts).
 */
export function planSegments(
  steps: RecordedEvent[],
  results: Set<TensorRecord>,
  program: number,
  fuse = true,
): Plan {
  const madeAt = new Map<TensorRecord, number>();
  const readers = new Map<TensorRecord, number[]>();
  const segmentOf = new Map<number, Building>();
  const open = new Map<Device, Building>();
  const all: Building[] = [];
  const readsOf = (s: RecordedEvent & { kind: "op" }) =>
    s.req.inPlace ? [...s.req.inputs, s.req.inPlace] : s.req.inputs;

  steps.forEach((s, i) => {
    if (s.kind === "constant") madeAt.set(s.rec, i);
    if (s.kind !== "op") return;
    const req = s.req;
    const reads = readsOf(s);
    if (req.kind === "run" && capabilitiesOf(req.device).programs) {
      let seg = open.get(req.device);
      const fits = seg !== undefined && seg.label === req.label &&
        reads.every((t) => {
          if (seg!.made.has(t)) return true;
          const at = madeAt.get(t);
          return at === undefined || at < seg!.at;
        }) &&
        (req.inPlace === undefined ||
          (readers.get(req.inPlace) ?? []).every((r) => r < seg!.at || segmentOf.get(r) === seg));
      if (!fits) {
        seg = { device: req.device, at: i, label: req.label, steps: [], made: new Set() };
        open.set(req.device, seg);
        all.push(seg);
      }
      seg!.steps.push(i);
      segmentOf.set(i, seg!);
      for (const o of s.outputs) seg!.made.add(o);
    }
    // A blocking copy holds back what was queued after it: no segment spans one.
    if (req.blocking) open.clear();
    for (const t of reads) {
      const r = readers.get(t);
      if (r) r.push(i);
      else readers.set(t, [i]);
    }
    for (const o of s.outputs) madeAt.set(o, i);
  });

  const segmentAt: Plan["segmentAt"] = steps.map(() => undefined);
  const segments = all.map((b, index) => {
    const plan = finish(b, { program, index, fuse }, steps, segmentOf, readers, results);
    b.steps.forEach((i) => (segmentAt[i] = "inside"));
    segmentAt[b.at] = plan;
    return plan;
  });
  return { segments, segmentAt };
}

/** Where a tensor lives inside a segment: one of its inputs, or the static slot of a tensor made in it. */
type Home = { input: number } | { made: number };

/** A segment's kernels as recorded, with the homes of what they bind. */
interface Resolved {
  inputs: TensorRecord[];
  /** Bytes of each tensor made in the segment (except in-place versions: they keep a home). */
  made: { bytes: number }[];
  kernels: { kernel: string; params: KernelParams; bind: Home[] }[];
  /** Tensors made in the segment, in order, with their homes. */
  versions: [TensorRecord, Home][];
  flops: number;
}

/** Gives each tensor a segment's kernels bind its home: an input slot or a static one. */
function resolve(b: Building, steps: RecordedEvent[]): Resolved {
  const r: Resolved = { inputs: [], made: [], kernels: [], versions: [], flops: 0 };
  const home = new Map<TensorRecord, Home>();
  const homeOf = (t: TensorRecord): Home => {
    let h = home.get(t);
    if (!h) {
      h = { input: r.inputs.length };
      r.inputs.push(t);
      home.set(t, h);
    }
    return h;
  };
  for (const i of b.steps) {
    const { req, outputs } = steps[i] as RecordedEvent & { kind: "op" };
    const bind = req.inputs.map(homeOf);
    outputs.forEach((o, k) => {
      // In place: the new version lives where the old one did.
      const h = k === 0 && req.inPlace ? homeOf(req.inPlace) : { made: r.made.length };
      if ("made" in h && h.made === r.made.length) r.made.push({ bytes: o.bytes });
      home.set(o, h);
      r.versions.push([o, h]);
      bind.push(h);
    });
    r.kernels.push({ kernel: req.kernel!, params: req.params!, bind });
    r.flops += req.flops ?? 0;
  }
  return r;
}

/** What leaves a segment: the newest version of each input updated in place, and what is read outside. */
function outputsOf(
  b: Building,
  r: Resolved,
  steps: RecordedEvent[],
  segmentOf: Map<number, Building>,
  readers: Map<TensorRecord, number[]>,
  results: Set<TensorRecord>,
): { outputs: TensorRecord[]; kinds: SegmentOutput[] } {
  const slot = (h: Home) => "input" in h ? h.input : r.inputs.length + h.made;
  const outputs: TensorRecord[] = [];
  const kinds: SegmentOutput[] = [];
  const newest = new Map<number, TensorRecord>();
  for (const [rec, h] of r.versions) if ("input" in h) newest.set(h.input, rec);
  for (const [input, rec] of newest) {
    outputs.push(rec);
    kinds.push({ slot: input, as: "adopt" });
  }
  const inside = new Set(b.steps);
  for (const [rec, h] of r.versions) {
    if ("input" in h) continue;
    const outside = (readers.get(rec) ?? []).filter((i) => !inside.has(i));
    if (outside.length === 0 && !results.has(rec)) continue;
    const onlyLaterSegments = !results.has(rec) && outside.every((i) => {
      const s = steps[i] as RecordedEvent & { kind: "op" };
      return segmentOf.get(i)?.device === b.device && s.req.inPlace !== rec;
    });
    outputs.push(rec);
    kinds.push({ slot: slot(h), as: onlyLaterSegments ? "alias" : "copy" });
  }
  return { outputs, kinds };
}

/** The name and site a kernel's errors give: its op's, or a fused kernel's ops'. */
function kernelOp(k: PlannedKernel, ops: SegmentOp[]): SegmentRef["ops"][number] {
  if (k.ops.length === 1) return ops[k.ops[0]];
  const fused = k.ops.map((i) => ops[i]);
  return { name: `fused(${fused.map((o) => o.name).join(", ")})`, site: fused[0].site, fused };
}

type SegmentOp = { name: string; site: Error };

function finish(
  b: Building,
  options: { program: number; index: number; fuse: boolean },
  steps: RecordedEvent[],
  segmentOf: Map<number, Building>,
  readers: Map<TensorRecord, number[]>,
  results: Set<TensorRecord>,
): SegmentPlan {
  const r = resolve(b, steps);
  const inputs = r.inputs;
  const slot = (h: Home) => "input" in h ? h.input : inputs.length + h.made;
  const { outputs, kinds } = outputsOf(b, r, steps, segmentOf, readers, results);
  const ops: SegmentOp[] = b.steps.map((i) => {
    const { req } = steps[i] as RecordedEvent & { kind: "op" };
    return { name: req.name, site: req.site! };
  });
  let kernels: PlannedKernel[] = r.kernels.map((k, i) => ({
    kernel: k.kernel,
    params: k.params,
    bind: k.bind.map(slot),
    ops: [i],
  }));
  if (options.fuse) {
    const handedOn = new Set(kinds.map((o) => o.slot));
    kernels = fuseKernels(kernels, (s) => s < inputs.length || handedOn.has(s));
  }
  const shared = shareSlots(inputs.length, r.made, kernels.map((k) => k.bind), kinds);
  return {
    device: b.device,
    index: options.index,
    at: b.at,
    label: b.label,
    inputs,
    outputs,
    outputShapes: outputs.map((o) => o.shape),
    ref: {
      program: options.program,
      segment: options.index,
      ops: kernels.map((k) => kernelOp(k, ops)),
      adopts: kinds.map((o) => o.as === "adopt" ? o.slot : undefined),
    },
    define: {
      t: "define",
      program: options.program,
      segment: options.index,
      inputs: inputs.map((t) => t.bytes),
      slots: shared.slots.map((bytes) => ({ bytes })),
      kernels: kernels.map((k) => ({
        kernel: k.kernel,
        params: k.params,
        bind: k.bind.map(shared.slotOf),
      })),
      outputs: kinds.map((o) => ({ ...o, slot: shared.slotOf(o.slot) })),
    },
    flops: r.flops,
  };
}

/**
 * Lets tensors whose lives inside the segment do not overlap share a static buffer of
 * their size (dispatches of a pass run in order, so a kernel may write a buffer the kernel
 * before it read last). What leaves the segment keeps its buffer to the end. Returns the
 * buffers' bytes and where each slot of `binds` (inputs first, then one per tensor made)
 * now lives.
 */
function shareSlots(
  inputs: number,
  made: { bytes: number }[],
  binds: number[][],
  outputs: SegmentOutput[],
): { slots: number[]; slotOf: (slot: number) => number } {
  const lastUse = made.map(() => -1);
  const firstUse = made.map(() => Infinity);
  binds.forEach((bind, j) => {
    for (const s of bind) {
      if (s < inputs) continue;
      lastUse[s - inputs] = j;
      firstUse[s - inputs] = Math.min(firstUse[s - inputs], j);
    }
  });
  for (const o of outputs) if (o.slot >= inputs) lastUse[o.slot - inputs] = Infinity;
  const slots: number[] = [];
  const home = made.map(() => -1);
  const free = new Map<number, number[]>();
  const byFirst = binds.map(() => [] as number[]);
  const byLast = binds.map(() => [] as number[]);
  made.forEach((_, v) => {
    if (firstUse[v] === Infinity) return;
    byFirst[firstUse[v]].push(v);
    if (lastUse[v] !== Infinity) byLast[lastUse[v]].push(v);
  });
  binds.forEach((_, j) => {
    // Buffers for what kernel j makes first, then those it read for the last time go free.
    for (const v of byFirst[j]) {
      const size = boundSize(made[v].bytes);
      const reuse = free.get(size)?.pop();
      if (reuse !== undefined) home[v] = reuse;
      else {
        home[v] = slots.length;
        slots.push(size);
      }
    }
    for (const v of byLast[j]) {
      const size = slots[home[v]];
      const list = free.get(size);
      if (list) list.push(home[v]);
      else free.set(size, [home[v]]);
    }
  });
  return { slots, slotOf: (s) => s < inputs ? s : inputs + home[s - inputs] };
}
