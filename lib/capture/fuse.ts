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
import type { ElementRead, KernelParams } from "../kernels/kernel.ts";
import { kernel } from "../kernels/registry.ts";
import {
  encodeProgram,
  type FusedArg,
  type FusedMember,
  fusedParams,
  type FusedProgram,
  MAX_FUSED_CONSTANTS,
} from "../kernels/fused.ts";
import { MAX_EPILOGUE_CONSTANTS } from "../kernels/matmul_fused.ts";
import { multiParams } from "../kernels/fused_multi.ts";
import { prologueConstants } from "../kernels/reduce_fused.ts";

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
  /** A matmul the group is the epilogue of (its kernel index): see {@link mergeEpilogues}. */
  head?: number;
  /** A reduction the group is the prologue of (its kernel index): see {@link mergePrologues}. */
  tail?: number;
  /** The elementwise group that is that reduction's epilogue too: see {@link mergeEpilogues}. */
  after?: { members: number[]; n: number };
}

const firstOf = (n: Node) => n.head ?? n.members[0];

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

/** A piece of a group as one kernel: what it loads, what it stores, and its members' arguments. */
function build(
  piece: number[],
  infos: Info[],
  mustStore: (slot: number, piece: Set<number>) => boolean,
  head?: { kernel: number; slot: number },
): Built {
  const inPiece = new Set(head ? [head.kernel, ...piece] : piece);
  const value = new Map<number, number>();
  const loads = new Map<number, ElementRead[]>();
  const args: FusedArg[][] = [];
  piece.forEach((k, j) => {
    const info = infos[k];
    args.push(info.reads.map((r) => {
      const v = r.read === "same" ? value.get(r.slot) : undefined;
      if (v !== undefined) return { value: v };
      if (r.slot === head?.slot) return { head: true };
      const list = loads.get(r.slot);
      if (!list) loads.set(r.slot, [r.read]);
      else if (!list.some((x) => sameRead(x, r.read))) list.push(r.read);
      return { binding: r.slot, read: r.read };
    }));
    value.set(info.writes[0], j);
  });
  const stores = new Map<number, number>();
  for (const [slot, v] of value) if (mustStore(slot, inPiece)) stores.set(slot, v);
  // The head's product, when something else reads it (-1: the head's value).
  if (head && !value.has(head.slot) && mustStore(head.slot, inPiece)) stores.set(head.slot, -1);
  return { loads, stores, args };
}

/** What {@link build} plans. */
interface Built {
  loads: Map<number, ElementRead[]>;
  /** Stored slots and the member whose value each gets (-1: the head's). */
  stores: Map<number, number>;
  args: FusedArg[][];
}

const sameRead = (a: ElementRead, b: ElementRead) =>
  typeof a === "string" || typeof b === "string" ? a === b : a.row === b.row;

/**
 * The fused program of a piece and the slots it binds (loaded, then stored). `vector`
 * allows four elements an invocation; an epilogue or a prologue computes one element at a
 * time, as the kernel it joins reads or stores them.
 */
function programOf(
  piece: number[],
  n: number,
  kernels: PlannedKernel[],
  built: Built,
  vector: boolean,
): { program: FusedProgram; slots: number[]; ops: number[] } {
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
  const vec = vector && n % 4 === 0 && rowsDivide && !mixed;
  const oneOnly = (s: number) => readsOf(s).length > 0 && readsOf(s).every((r) => r === "one");
  const program: FusedProgram = {
    n,
    vec,
    inputs: loadOnly.length,
    types: slots.map((s) => vec && !oneOnly(s) ? "vec4<f32>" : "f32"),
    members: piece.map((k, j): FusedMember => ({
      kernel: kernels[k].kernel,
      params: kernels[k].params,
      args: args[j].map((a) =>
        "binding" in a ? { binding: binding.get(a.binding)!, read: a.read } : a
      ),
    })),
    stores: [...stores].map(([s, v]) => ({ binding: binding.get(s)!, value: v })),
  };
  return { program, slots, ops: piece.flatMap((k) => kernels[k].ops) };
}

/** The fused kernel of a piece of two or more members. */
function fusedOf(
  piece: number[],
  n: number,
  kernels: PlannedKernel[],
  built: Built,
): PlannedKernel {
  const { program, slots, ops } = programOf(piece, n, kernels, built, true);
  return { kernel: "fused", params: fusedParams(program), bind: slots, ops };
}

/**
 * The matmul or reduction `head` with the group `members` as its epilogue: one
 * `matmul_epilogue` kernel, or the reduction's `<name>_epilogue`.
 */
function epilogueOf(
  members: number[],
  n: number,
  head: number,
  kernels: PlannedKernel[],
  built: Built,
): PlannedKernel {
  const { program, slots, ops } = programOf(members, n, kernels, built, false);
  const h = kernels[head];
  const matmul = plainMatmul(h);
  return {
    kernel: matmul ? "matmul_epilogue" : `${h.kernel}_epilogue`,
    params: { ...h.params, epilogue: encodeProgram(program) },
    bind: [...h.bind.slice(0, matmul ? 2 : 1), ...slots],
    ops: [...h.ops, ...ops],
  };
}

/**
 * The elementwise kernels each reduction that takes a prologue could take as one: those that
 * make its input, through reads of their own element, and whose values nothing else reads
 * (nor the segment hands on). They are grouped apart from other kernels of their length, so
 * that two chains, each private to its reduction, do not share a group that would then
 * have to store both. Returns each such kernel's reduction; not for chains that would not
 * fit in one kernel with their reduction (`fits`).
 */
function prologueChains(
  kernels: PlannedKernel[],
  infos: Info[],
  keep: (slot: number) => boolean,
  readersOf: Map<number, number[]>,
  fits: (members: number[], r: number) => boolean,
): Map<number, number> {
  const writers = new Map<number, number[]>();
  infos.forEach((info, k) => {
    for (const s of info.writes) writers.set(s, [...writers.get(s) ?? [], k]);
  });
  const chainOf = new Map<number, number>();
  kernels.forEach((k, r) => {
    if (infos[r].n !== undefined) return;
    if (!kernel(k.kernel).prologue?.(k.params)) return;
    const members = new Set<number>();
    // What the reduction reads besides its first input comes from memory.
    const others = new Set(k.bind.slice(1));
    const visit = (slot: number) => {
      const ws = writers.get(slot) ?? [];
      const p = ws[0];
      if (ws.length !== 1 || p > r || keep(slot) || others.has(slot)) return;
      if (members.has(p) || chainOf.has(p)) return;
      if (infos[p].n === undefined) return;
      members.add(p);
      for (const read of infos[p].reads) if (read.read === "same") visit(read.slot);
    };
    visit(k.bind[0]);
    // Members whose value something else reads leave, and then what they read, in turn.
    for (let changed = true; changed;) {
      changed = false;
      for (const p of members) {
        const readers = readersOf.get(infos[p].writes[0]) ?? [];
        if (readers.some((q) => q !== r && !members.has(q))) {
          members.delete(p);
          changed = true;
        }
      }
    }
    const list = [...members].sort((a, b) => a - b);
    if (list.length > 0 && fits(list, r)) { for (const p of list) chainOf.set(p, r); }
  });
  return chainOf;
}

/**
 * Makes each reduction that states a prologue (lib/kernels/reduce_fused.ts) and the
 * elementwise group that makes its input one node, when nothing but the reduction reads
 * what the group makes (`private_(g, r)`): the group is then computed where the reduction
 * reads it, and stores nothing. Not when another path from the group leads to the
 * reduction, or when the two would not fit in one kernel (`fits`).
 */
function mergePrologues(
  nodes: Node[],
  kernels: PlannedKernel[],
  fits: (g: Node, r: number) => boolean,
  private_: (g: Node, r: number) => boolean,
): Node[] {
  const merged = new Set<Node>();
  for (const r of nodes) {
    if (r.n !== undefined || r.members.length !== 1) continue;
    const k = kernels[r.members[0]];
    if (!kernel(k.kernel).prologue?.(k.params)) continue;
    // Its other inputs (a loss's labels) are read from memory: the group must not make them.
    const others = k.bind.slice(1, k.bind.length - kernel(k.kernel).outputTypes(k.params).length);
    for (const g of r.preds) {
      if (merged.has(g) || g.n === undefined || g.head !== undefined || g.tail !== undefined) {
        continue;
      }
      if (!g.writes.has(k.bind[0]) || others.some((s) => g.writes.has(s))) continue;
      if (!private_(g, r.members[0])) continue;
      if ([...r.preds].some((p) => p !== g && reaches(p, g))) continue;
      if (!fits(g, r.members[0])) continue;
      g.tail = r.members[0];
      for (const p of r.preds) g.preds.add(p);
      g.preds.delete(g);
      for (const x of nodes) if (x !== g && x.preds.delete(r)) x.preds.add(g);
      merged.add(r);
      break;
    }
  }
  return nodes.filter((n) => !merged.has(n));
}

/**
 * The reduction `tail` with the group `members` as its prologue: one kernel; with `after`
 * (an epilogue, planned as `built`), `<name>_prologue_epilogue`.
 */
function prologueOf(
  members: number[],
  n: number,
  tail: number,
  kernels: PlannedKernel[],
  infos: Info[],
  after?: { members: number[]; n: number; built: Built },
): PlannedKernel {
  const built = build(members, infos, () => false);
  const r = kernels[tail];
  // The value the reduction reads: the last member's that writes its input.
  const result = members.findLastIndex((k) => infos[k].writes[0] === r.bind[0]);
  const { program, slots, ops } = programOf(members, n, kernels, built, false);
  const params = { ...r.params, prologue: encodeProgram(program), result };
  if (!after) {
    return {
      kernel: `${r.kernel}_prologue`,
      params,
      bind: [...slots, ...r.bind.slice(1)],
      ops: [...ops, ...r.ops],
    };
  }
  // A reduction with an epilogue has no other inputs, and stores what the epilogue does.
  const epilogue = programOf(after.members, after.n, kernels, after.built, false);
  return {
    kernel: `${r.kernel}_prologue_epilogue`,
    params: { ...params, epilogue: encodeProgram(epilogue.program) },
    bind: [...slots, ...epilogue.slots],
    ops: [...ops, ...r.ops, ...epilogue.ops],
  };
}

/** Whether kernel `k` is one matrix product (not a batch) that an epilogue may follow. */
const plainMatmul = (k: PlannedKernel) =>
  k.kernel === "matmul" && (k.params.batch ?? 1) === 1 && k.bind.length === 3;

/** What an epilogue of a kernel needs to know of it: its output's length, what it reads and writes. */
interface Head {
  n: number;
  reads: number[];
  out: number;
}

/** The head a plain matmul makes. */
function matmulHead(k: PlannedKernel): Head | undefined {
  if (!plainMatmul(k)) return undefined;
  return { n: Number(k.params.M) * Number(k.params.N), reads: k.bind.slice(0, 2), out: k.bind[2] };
}

/** The head a reduction that states an `epilogue` makes (lib/kernels/reduce_fused.ts). */
function reductionHead(k: PlannedKernel): Head | undefined {
  const n = k.bind.length === 2 ? kernel(k.kernel).epilogue?.(k.params) : undefined;
  return n === undefined ? undefined : { n, reads: [k.bind[0]], out: k.bind[1] };
}

/**
 * Makes each kernel that can lead (`headOf`: a matmul, a reduction) and an elementwise group
 * that reads its output, element by element, one node: the group becomes the head's
 * epilogue, and the output need not be stored (unless something else reads it). Not when
 * the group writes what the head reads (other invocations read it), when another path from
 * the head leads to the group, or when the two would not fit in one kernel's bindings and
 * constants (`fits`). With `fitsAfter`, a reduction that took a prologue takes an epilogue
 * too, when the three fit in one kernel.
 */
function mergeEpilogues(
  nodes: Node[],
  kernels: PlannedKernel[],
  infos: Info[],
  headOf: (k: PlannedKernel) => Head | undefined,
  fits: (g: Node) => boolean,
  fitsAfter?: (m: Node, g: Node) => boolean,
): Node[] {
  const merged = new Set<Node>();
  for (const g of nodes) {
    if (merged.has(g) || g.n === undefined || g.head !== undefined || g.tail !== undefined) {
      continue;
    }
    for (const m of g.preds) {
      if (merged.has(m)) continue;
      const prologue = m.tail !== undefined && m.after === undefined && fitsAfter !== undefined;
      if (!prologue && (m.n !== undefined || m.members.length !== 1)) continue;
      const h = headOf(kernels[prologue ? m.tail! : m.members[0]]);
      if (!h || h.n !== g.n) continue;
      // What the head's kernel reads: its inputs, or its prologue's.
      const headReads = prologue
        ? m.members.flatMap((k) => infos[k].reads.map((r) => r.slot))
        : h.reads;
      const reads = g.members.some((j) => infos[j].reads.some((r) => r.slot === h.out));
      if (!reads || g.broadcastReads.has(h.out) || headReads.some((s) => g.writes.has(s))) continue;
      if ([...g.preds].some((p) => p !== m && reaches(p, m))) continue;
      if (prologue) {
        if (!fitsAfter!(m, g)) continue;
        m.after = { members: g.members, n: g.n };
        for (const p of g.preds) if (p !== m) m.preds.add(p);
        for (const x of nodes) if (x !== m && x.preds.delete(g)) x.preds.add(m);
        merged.add(g);
        break;
      }
      g.head = m.members[0];
      if (!fits(g)) {
        g.head = undefined;
        continue;
      }
      for (const p of m.preds) g.preds.add(p);
      g.preds.delete(m);
      for (const x of nodes) if (x !== g && x.preds.delete(m)) x.preds.add(g);
      merged.add(m);
      break;
    }
  }
  return nodes.filter((n) => !merged.has(n));
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

/** The kernels that read each slot. */
function readersBySlot(infos: Info[]): Map<number, number[]> {
  const readers = new Map<number, number[]>();
  infos.forEach((info, k) => {
    for (const r of info.reads) readers.set(r.slot, [...readers.get(r.slot) ?? [], k]);
  });
  return readers;
}

/** The slots a kernel writes: its outputs' (an in-place update's is its input's home). */
function writesOf(k: PlannedKernel): number[] {
  return k.bind.slice(k.bind.length - kernel(k.kernel).outputTypes(k.params).length);
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
    for (const s of writesOf(k)) writers.set(s, [...writers.get(s) ?? [], j]);
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

const bindings = (b: Built) => new Set([...b.loads.keys(), ...b.stores.keys()]).size;

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
