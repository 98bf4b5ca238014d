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
 * shader stage may is cut into pieces, in order. A matmul and a group that reads its product
 * element by element become one kernel: the group is the matmul's epilogue
 * (lib/kernels/matmul_fused.ts). A sum, maximum, softmax, log-softmax or log-sum-exp whose input only a group
 * makes takes the group as its prologue: each element is computed where the reduction reads
 * it, and never stored (lib/kernels/reduce_fused.ts); the kernels such a group would hold
 * are grouped apart from others of their length. A reduction also takes the group that
 * reads its result element by element as its epilogue, as a matmul does, with or without a
 * prologue (an RMS, sqrt(mean(x * x) + eps), is one kernel). A copy (`detach()`, a reshape)
 * whose result the segment does not hand on is dropped: its readers read its source. Groups (or lone
 * elementwise kernels) that follow one another and touch none of each other's buffers are
 * one dispatch, whatever their lengths (lib/kernels/fused_multi.ts): an optimizer's updates
 * of several parameters, as PyTorch's multi-tensor apply does them.
 *
 * @module
 */
import { kernel } from "../kernels/registry.ts";
import { MAX_FUSED_CONSTANTS } from "../kernels/fused.ts";
import { MAX_EPILOGUE_CONSTANTS } from "../kernels/matmul_fused.ts";
import { multiParams } from "../kernels/fused_multi.ts";
import { prologueConstants } from "../kernels/reduce_fused.ts";
import {
  bindings,
  build,
  type Built,
  constantsOf,
  firstOf,
  fusedOf,
  type Info,
  infoOf,
  type Node,
  type PlannedKernel,
  programOf,
  pushTo,
  reaches,
  readersBySlot,
  writesOf,
} from "./fuse_plan.ts";
import {
  epilogueOf,
  matmulHead,
  mergeEpilogues,
  mergePrologues,
  plainMatmul,
  prologueChains,
  prologueOf,
  reductionHead,
} from "./fuse_merge.ts";

export type { PlannedKernel } from "./fuse_plan.ts";

/**
 * Storage buffers a shader stage may bind: WebGPU's default `maxStorageBuffersPerShaderStage`,
 * which autopar's devices do not raise.
 */
export const MAX_FUSED_BINDINGS = 8;

/** Whether a kernel of `info`, whose dependencies are `preds`, may join group `g`. */
function canJoin(g: Node, info: Info, preds: Set<Node>): boolean {
  if (info.reads.some((r) => r.read !== "same" && g.writes.has(r.slot))) return false;
  if (info.writes.some((s) => g.broadcastReads.has(s))) return false;
  for (const p of preds) if (p !== g && reaches(p, g)) return false;
  return true;
}

/**
 * Groups the kernels into nodes, recording their dependencies. A kernel of a prologue's
 * chain (`chainOf`, see {@link prologueChains}) joins only a group of that chain.
 */
function group(infos: Info[], chainOf: Map<number, number>): Node[] {
  const nodes: Node[] = [];
  const open = new Map<string, Node>();
  const lastWriter = new Map<number, Node>();
  const readers = new Map<number, Set<Node>>();
  infos.forEach((info, k) => {
    const preds = new Set<Node>();
    for (const s of [...info.reads.map((r) => r.slot), ...info.writes]) {
      const w = lastWriter.get(s);
      if (w) preds.add(w);
    }
    for (const s of info.writes) for (const r of readers.get(s) ?? []) preds.add(r);
    const key = `${info.n}|${chainOf.get(k)}`;
    let node = info.n === undefined ? undefined : open.get(key);
    if (node && !canJoin(node, info, preds)) node = undefined;
    if (!node) {
      node = { members: [], preds: new Set(), writes: new Set(), broadcastReads: new Set() };
      node.n = info.n;
      nodes.push(node);
      if (info.n !== undefined) open.set(key, node);
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
      if (firstOf(ready[i]) < firstOf(ready[best])) best = i;
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
  kernels = forwardCopies(kernels, keep);
  const infos = kernels.map(infoOf);
  const readersOf = readersBySlot(infos);
  const mustStore = (slot: number, piece: Set<number>) =>
    keep(slot) || (readersOf.get(slot) ?? []).some((r) => !piece.has(r));
  const constants = (piece: number[]) => constantsOf(piece, kernels);
  const headOf = (g: Node) =>
    g.head === undefined ? undefined : { kernel: g.head, slot: kernels[g.head].bind.at(-1)! };
  const epilogueFits = (g: Node) => {
    const h = kernels[g.head!];
    const [reads, maxConstants] = plainMatmul(h)
      ? [2, MAX_EPILOGUE_CONSTANTS]
      : [1, prologueConstants(kernel(h.kernel))];
    return bindings(build(g.members, infos, mustStore, headOf(g))) + reads <= limit &&
      constants(g.members) <= maxConstants;
  };
  const private_ = (g: Node, r: number) => {
    const inside = new Set([...g.members, r]);
    return [...g.writes].every((s) => !mustStore(s, inside));
  };
  const prologueFits = (members: number[], r: number) =>
    bindings(build(members, infos, () => false)) + kernels[r].bind.length - 1 <= limit &&
    constants(members) <= prologueConstants(kernel(kernels[r].kernel));
  const chains = prologueChains(kernels, infos, keep, readersOf, prologueFits);
  // Matmuls take their epilogues first, reductions their prologues, then the epilogues of
  // reductions that took none.
  const withMatmuls = mergeEpilogues(
    group(infos, chains),
    kernels,
    infos,
    matmulHead,
    epilogueFits,
  );
  // A reduction's epilogue after its prologue: it reads the reduction's value as its head.
  const afterBuilt = (r: number, after: { members: number[] }) =>
    build(after.members, infos, mustStore, { kernel: r, slot: kernels[r].bind.at(-1)! });
  const afterFits = (m: Node, g: Node) =>
    bindings(build(m.members, infos, () => false)) + bindings(afterBuilt(m.tail!, g)) <= limit &&
    constants(m.members) + constants(g.members) <=
      prologueConstants(kernel(kernels[m.tail!].kernel));
  const nodes = mergeEpilogues(
    mergePrologues(withMatmuls, kernels, (g, r) => prologueFits(g.members, r), private_),
    kernels,
    infos,
    reductionHead,
    epilogueFits,
    afterFits,
  );
  const pack = packer(kernels, limit);
  for (const node of order(nodes)) {
    if (node.tail !== undefined) {
      const after = node.after && { ...node.after, built: afterBuilt(node.tail, node.after) };
      pack.push(prologueOf(node.members, node.n!, node.tail, kernels, infos, after));
    } else if (node.head !== undefined) {
      const built = build(node.members, infos, mustStore, headOf(node));
      pack.push(epilogueOf(node.members, node.n!, node.head, kernels, built));
    } else if (node.n === undefined) {
      for (const k of node.members) pack.push(kernels[k]);
    } else {
      const fits = (p: number[]) =>
        bindings(build(p, infos, mustStore)) <= limit && constants(p) <= MAX_FUSED_CONSTANTS;
      for (const members of split(node.members, fits)) {
        const built = build(members, infos, mustStore);
        pack.add({ members, n: node.n, built, constants: constants(members) });
      }
    }
  }
  return pack.done();
}

/** A piece of an elementwise group on its way out (one kernel, or a part of one). */
interface Piece {
  members: number[];
  n: number;
  built: Built;
  constants: number;
}

/**
 * Collects a segment's kernels in order. Pieces that follow one another, touch none of each
 * other's buffers, and fit one kernel's bindings and constants together become one
 * multi-program kernel (lib/kernels/fused_multi.ts: an optimizer's updates of several
 * parameters, say); a piece on its own stays its own kernel.
 */
function packer(kernels: PlannedKernel[], limit: number) {
  const out: PlannedKernel[] = [];
  let run: Piece[] = [];
  const touched = (p: Piece) => new Set([...p.built.loads.keys(), ...p.built.stores.keys()]);
  const apart = (a: Piece, b: Piece) => {
    const [ta, tb] = [touched(a), touched(b)];
    return [...a.built.stores.keys()].every((s) => !tb.has(s)) &&
      [...b.built.stores.keys()].every((s) => !ta.has(s));
  };
  const flush = () => {
    if (run.length === 1) {
      const [{ members, n, built }] = run;
      out.push(members.length === 1 ? kernels[members[0]] : fusedOf(members, n, kernels, built));
    } else if (run.length > 1) out.push(multiOf(run, kernels));
    run = [];
  };
  return {
    add(piece: Piece) {
      const total = (f: (p: Piece) => number) => [...run, piece].reduce((t, p) => t + f(p), 0);
      const fits = total((p) => bindings(p.built)) <= limit &&
        total((p) => p.constants) <= MAX_FUSED_CONSTANTS;
      if (!fits || !run.every((p) => apart(p, piece))) flush();
      run.push(piece);
    },
    push(k: PlannedKernel) {
      flush();
      out.push(k);
    },
    done() {
      flush();
      return out;
    },
  };
}

/** One kernel of several pieces, each a program of one element an invocation. */
function multiOf(run: Piece[], kernels: PlannedKernel[]): PlannedKernel {
  const made = run.map((p) => programOf(p.members, p.n, kernels, p.built, false));
  const inputs = made.flatMap(({ program, slots }) => slots.slice(0, program.inputs));
  const stored = made.flatMap(({ program, slots }) => slots.slice(program.inputs));
  return {
    kernel: "fused_multi",
    params: multiParams(made.map((m) => m.program)),
    bind: [...inputs, ...stored],
    ops: made.flatMap((m) => m.ops),
  };
}

/**
 * Drops the copies (`detach`, `reshape`: the unary copy) whose result the segment does not
 * hand on: what reads the result reads the copied slot instead, as PyTorch's views share
 * storage. Not when something else writes the result (it is updated in place), nor when the
 * source is written after the copy (its readers would see the new values).
 */
function forwardCopies(
  kernels: PlannedKernel[],
  keep: (slot: number) => boolean,
): PlannedKernel[] {
  const writers = new Map<number, number[]>();
  kernels.forEach((k, j) => {
    for (const s of writesOf(k)) pushTo(writers, s, j);
  });
  const source = new Map<number, number>();
  const out: PlannedKernel[] = [];
  kernels.forEach((k, j) => {
    const bind = source.size === 0 ? k.bind : k.bind.map((s) => source.get(s) ?? s);
    const [from, to] = bind;
    const forwarded = k.kernel === "unary" && k.params.op === "copy" && bind.length === 2 &&
      !keep(to) && writers.get(to)!.length === 1 &&
      !(writers.get(from) ?? []).some((w) => w > j);
    if (forwarded) source.set(to, from);
    else out.push(bind === k.bind ? k : { ...k, bind });
  });
  return out;
}

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
