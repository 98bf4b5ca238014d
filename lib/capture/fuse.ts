/**
 * Fusion of a device segment's elementwise kernels (tinygrad's and jax-js's idea, at
 * capture): kernels that compute each element from the same element of their inputs (see
 * `Elementwise` in lib/kernels/kernel.ts) and have the same length are grouped, and each
 * group becomes one generated kernel (lib/kernels/fused.ts) that keeps the values between
 * its members in registers. A value is stored only where it must be: a buffer the segment
 * hands on (an output, an input updated in place) or one a kernel outside the group reads.
 *
 * A kernel joins the open group of its length unless that would make a cycle (it needs,
 * through another kernel, something the group makes), or unless it reads a buffer the group
 * writes at another element than its own (a broadcast), or writes one the group reads so:
 * one invocation per element must see only its own element change. Kernels may move past
 * independent ones to join a group; the groups and the other kernels are then put in an
 * order their dependencies allow. A group that would bind more storage buffers than a
 * shader stage may is cut into pieces, in order.
 *
 * @module
 */
import type { ElementRead, KernelParams } from "../kernels/kernel.ts";
import { kernel } from "../kernels/registry.ts";
import {
  type FusedArg,
  type FusedMember,
  fusedParams,
  type FusedProgram,
  MAX_FUSED_CONSTANTS,
} from "../kernels/fused.ts";

/** One kernel of a segment: its parameters, the slots it binds, and the recorded ops it is. */
export interface PlannedKernel {
  kernel: string;
  params: KernelParams;
  /** Slots bound, inputs then outputs. */
  bind: number[];
  /** Indices of the recorded ops it computes (one, or a fused group's). */
  ops: number[];
}

/**
 * Storage buffers a shader stage may bind: WebGPU's default `maxStorageBuffersPerShaderStage`,
 * which autopar's devices do not raise.
 */
export const MAX_FUSED_BINDINGS = 8;

interface Read {
  slot: number;
  read: ElementRead;
}

/** What the fuser knows of a kernel: what it reads and writes, and if elementwise, how. */
interface Info {
  reads: Read[];
  writes: number[];
  /** Its length, when it is elementwise and can be fused. */
  n?: number;
}

/** A kernel on its own or a group: a node of the segment's dependency graph. */
interface Node {
  members: number[];
  preds: Set<Node>;
  /** Elementwise groups: the slots written, and those read at another element than their own. */
  writes: Set<number>;
  broadcastReads: Set<number>;
  n?: number;
}

/** A read at the element itself, as "same" (a row as long as the output, a one-element output). */
function normalise(read: ElementRead, n: number): ElementRead {
  if (read === "same" || n === 1) return "same";
  if (read === "one") return "one";
  return read.row === n ? "same" : read.row === 1 ? "one" : read;
}

/** Distinct float32 constants of the members of a piece (each becomes a uniform). */
function constantsOf(piece: number[], kernels: PlannedKernel[]): number {
  const seen = new Set<number>();
  for (const k of piece) {
    const e = kernel(kernels[k].kernel).elementwise;
    for (const c of e?.constants?.(kernels[k].params) ?? []) seen.add(Math.fround(c));
  }
  return seen.size;
}

function infoOf(k: PlannedKernel): Info {
  const spec = kernel(k.kernel);
  const outputs = spec.outputTypes(k.params).length;
  const inputs = k.bind.length - outputs;
  const e = spec.elementwise;
  const reads = e?.reads(k.params);
  const n = e?.n(k.params);
  if (!e || !reads || n === undefined || n === 0 || outputs !== 1 || reads.length !== inputs) {
    // Anything else reads and may write every slot it binds.
    return { reads: k.bind.map((slot) => ({ slot, read: "same" })), writes: k.bind.slice(inputs) };
  }
  const all: Read[] = reads.map((r, i) => ({ slot: k.bind[i], read: normalise(r, n) }));
  if (e.readsOld) all.push({ slot: k.bind[inputs], read: "same" });
  return { reads: all, writes: [k.bind[inputs]], n };
}

/** Whether `to` is `from` or one of its ancestors. */
function reaches(from: Node, to: Node): boolean {
  const seen = new Set<Node>();
  const stack = [from];
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (x === to) return true;
    if (seen.has(x)) continue;
    seen.add(x);
    for (const p of x.preds) stack.push(p);
  }
  return false;
}

/** Whether a kernel of `info`, whose dependencies are `preds`, may join group `g`. */
function canJoin(g: Node, info: Info, preds: Set<Node>): boolean {
  if (info.reads.some((r) => r.read !== "same" && g.writes.has(r.slot))) return false;
  if (info.writes.some((s) => g.broadcastReads.has(s))) return false;
  for (const p of preds) if (p !== g && reaches(p, g)) return false;
  return true;
}

/** Groups the kernels into nodes, recording their dependencies. */
function group(infos: Info[]): Node[] {
  const nodes: Node[] = [];
  const open = new Map<number, Node>();
  const lastWriter = new Map<number, Node>();
  const readers = new Map<number, Set<Node>>();
  infos.forEach((info, k) => {
    const preds = new Set<Node>();
    for (const s of [...info.reads.map((r) => r.slot), ...info.writes]) {
      const w = lastWriter.get(s);
      if (w) preds.add(w);
    }
    for (const s of info.writes) for (const r of readers.get(s) ?? []) preds.add(r);
    let node = info.n === undefined ? undefined : open.get(info.n);
    if (node && !canJoin(node, info, preds)) node = undefined;
    if (!node) {
      node = { members: [], preds: new Set(), writes: new Set(), broadcastReads: new Set() };
      node.n = info.n;
      nodes.push(node);
      if (info.n !== undefined) open.set(info.n, node);
    }
    node.members.push(k);
    for (const p of preds) if (p !== node) node.preds.add(p);
    for (const r of info.reads) {
      if (r.read !== "same") node.broadcastReads.add(r.slot);
      let set = readers.get(r.slot);
      if (!set) readers.set(r.slot, set = new Set());
      set.add(node);
    }
    for (const s of info.writes) {
      node.writes.add(s);
      lastWriter.set(s, node);
      readers.set(s, new Set());
    }
  });
  return nodes;
}

/** The nodes in an order their dependencies allow, earliest first kernel first. */
function order(nodes: Node[]): Node[] {
  const waiting = new Map<Node, number>(nodes.map((n) => [n, n.preds.size]));
  const succs = new Map<Node, Node[]>(nodes.map((n) => [n, []]));
  for (const n of nodes) for (const p of n.preds) succs.get(p)!.push(n);
  const ready = nodes.filter((n) => n.preds.size === 0);
  const out: Node[] = [];
  while (ready.length > 0) {
    let best = 0;
    for (let i = 1; i < ready.length; i++) {
      if (ready[i].members[0] < ready[best].members[0]) best = i;
    }
    const n = ready.splice(best, 1)[0];
    out.push(n);
    for (const s of succs.get(n)!) {
      const left = waiting.get(s)! - 1;
      waiting.set(s, left);
      if (left === 0) ready.push(s);
    }
  }
  if (out.length !== nodes.length) throw new Error("fusion made a cycle (a bug in fuse.ts)");
  return out;
}

/** A piece of a group as one kernel: what it loads, what it stores, and its members' arguments. */
function build(
  piece: number[],
  infos: Info[],
  mustStore: (slot: number, piece: Set<number>) => boolean,
): { loads: Map<number, ElementRead[]>; stores: Map<number, number>; args: FusedArg[][] } {
  const inPiece = new Set(piece);
  const value = new Map<number, number>();
  const loads = new Map<number, ElementRead[]>();
  const args: FusedArg[][] = [];
  piece.forEach((k, j) => {
    const info = infos[k];
    args.push(info.reads.map((r) => {
      const v = r.read === "same" ? value.get(r.slot) : undefined;
      if (v !== undefined) return { value: v };
      const list = loads.get(r.slot);
      if (!list) loads.set(r.slot, [r.read]);
      else if (!list.some((x) => sameRead(x, r.read))) list.push(r.read);
      return { binding: r.slot, read: r.read };
    }));
    value.set(info.writes[0], j);
  });
  const stores = new Map<number, number>();
  for (const [slot, v] of value) if (mustStore(slot, inPiece)) stores.set(slot, v);
  return { loads, stores, args };
}

const sameRead = (a: ElementRead, b: ElementRead) =>
  typeof a === "string" || typeof b === "string" ? a === b : a.row === b.row;

/** The fused kernel of a piece of two or more members. */
function fusedOf(
  piece: number[],
  n: number,
  kernels: PlannedKernel[],
  built: ReturnType<typeof build>,
): PlannedKernel {
  const { loads, stores, args } = built;
  const loadOnly = [...loads.keys()].filter((s) => !stores.has(s));
  const slots = [...loadOnly, ...stores.keys()];
  const binding = new Map(slots.map((s, b) => [s, b]));
  const readsOf = (s: number) => loads.get(s) ?? [];
  const rowsDivide = [...loads.values()].flat().every((r) =>
    typeof r === "string" || r.row % 4 === 0
  );
  // A slot read both as its one element and otherwise cannot have a single binding type.
  const mixed = slots.some((s) =>
    readsOf(s).includes("one") && readsOf(s).some((r) => r !== "one")
  );
  const vec = n % 4 === 0 && rowsDivide && !mixed;
  const program: FusedProgram = {
    n,
    vec,
    inputs: loadOnly.length,
    types: slots.map((s) =>
      vec && !(readsOf(s).length > 0 && readsOf(s).every((r) => r === "one")) ? "vec4<f32>" : "f32"
    ),
    members: piece.map((k, j): FusedMember => ({
      kernel: kernels[k].kernel,
      params: kernels[k].params,
      args: args[j].map((a) =>
        "value" in a ? a : { binding: binding.get(a.binding)!, read: a.read }
      ),
    })),
    stores: [...stores].map(([s, v]) => ({ binding: binding.get(s)!, value: v })),
  };
  return {
    kernel: "fused",
    params: fusedParams(program),
    bind: slots,
    ops: piece.flatMap((k) => kernels[k].ops),
  };
}

/**
 * Fuses the elementwise kernels of a segment (see the module doc). `keep(slot)` says which
 * slots the segment hands on whatever reads them (its inputs and outputs); `limit` is the
 * storage buffers a kernel may bind. Returns the segment's kernels, fused, in an order that
 * computes the same values.
 *
 * @example
 * ```ts
 * import { fuseKernels } from "./fuse.ts";
 * // t = x * 2; y = relu(t): slot 0 is the input, 1 the temporary, 2 the output.
 * const kernels = fuseKernels([
 *   { kernel: "binary", params: { op: "mul", broadcast: "scalar", n: 8, cols: 0, scalar: 2 }, bind: [0, 1], ops: [0] },
 *   { kernel: "unary", params: { op: "relu", n: 8 }, bind: [1, 2], ops: [1] },
 * ], (slot) => slot !== 1);
 * console.log(kernels.length, kernels[0].kernel, kernels[0].bind, kernels[0].ops); // 1 fused [ 0, 2 ] [ 0, 1 ]
 * ```
 */
export function fuseKernels(
  kernels: PlannedKernel[],
  keep: (slot: number) => boolean,
  limit = MAX_FUSED_BINDINGS,
): PlannedKernel[] {
  const infos = kernels.map(infoOf);
  const readersOf = new Map<number, number[]>();
  infos.forEach((info, k) => {
    for (const r of info.reads) {
      const list = readersOf.get(r.slot);
      if (list) list.push(k);
      else readersOf.set(r.slot, [k]);
    }
  });
  const mustStore = (slot: number, piece: Set<number>) =>
    keep(slot) || (readersOf.get(slot) ?? []).some((r) => !piece.has(r));
  const constants = (piece: number[]) => constantsOf(piece, kernels);
  const out: PlannedKernel[] = [];
  for (const node of order(group(infos))) {
    if (node.n === undefined || node.members.length === 1) {
      for (const k of node.members) out.push(kernels[k]);
      continue;
    }
    const fits = (p: number[]) =>
      bindings(build(p, infos, mustStore)) <= limit && constants(p) <= MAX_FUSED_CONSTANTS;
    for (const piece of split(node.members, fits)) {
      out.push(
        piece.length === 1
          ? kernels[piece[0]]
          : fusedOf(piece, node.n, kernels, build(piece, infos, mustStore)),
      );
    }
  }
  return out;
}

const bindings = (b: ReturnType<typeof build>) =>
  new Set([...b.loads.keys(), ...b.stores.keys()]).size;

/** Cuts `members` into runs, in order, each of which `fits`. */
function split(members: number[], fits: (piece: number[]) => boolean): number[][] {
  const pieces: number[][] = [];
  let current: number[] = [];
  for (const m of members) {
    const trial = [...current, m];
    if (current.length > 0 && !fits(trial)) {
      pieces.push(current);
      current = [m];
    } else current = trial;
  }
  if (current.length > 0) pieces.push(current);
  return pieces;
}
