/**
 * Epilogues and prologues at capture (lib/capture/fuse.ts): a matmul or a reduction and the
 * elementwise group that reads its output become one kernel (an epilogue), and a reduction
 * and the group that makes its input (a prologue), or both at once.
 *
 * @module
 */
import { kernel } from "../kernels/registry.ts";
import { encodeProgram } from "../kernels/fused.ts";
import {
  build,
  type Built,
  type Info,
  type Node,
  type PlannedKernel,
  programOf,
  pushTo,
  reaches,
} from "./fuse_plan.ts";

/**
 * The matmul or reduction `head` with the group `members` as its epilogue: one
 * `matmul_epilogue` kernel, or the reduction's `<name>_epilogue`.
 */
export function epilogueOf(
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
 * Makes node `into` stand for `from` too: it takes `from`'s dependencies, what depended on
 * `from` depends on it, and `from` goes (into `merged`).
 */
function absorb(into: Node, from: Node, nodes: Node[], merged: Set<Node>): void {
  for (const p of from.preds) if (p !== into) into.preds.add(p);
  into.preds.delete(from);
  for (const x of nodes) if (x !== into && x.preds.delete(from)) x.preds.add(into);
  merged.add(from);
}

/**
 * The elementwise kernels each reduction that takes a prologue could take as one: those that
 * make its input, through reads of their own element, and whose values nothing else reads
 * (nor the segment hands on). They are grouped apart from other kernels of their length, so
 * that two chains, each private to its reduction, do not share a group that would then
 * have to store both. Returns each such kernel's reduction; not for chains that would not
 * fit in one kernel with their reduction (`fits`).
 */
export function prologueChains(
  kernels: PlannedKernel[],
  infos: Info[],
  keep: (slot: number) => boolean,
  readersOf: Map<number, number[]>,
  fits: (members: number[], r: number) => boolean,
): Map<number, number> {
  const writers = new Map<number, number[]>();
  infos.forEach((info, k) => {
    for (const s of info.writes) pushTo(writers, s, k);
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
export function mergePrologues(
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
      absorb(g, r, nodes, merged);
      break;
    }
  }
  return nodes.filter((n) => !merged.has(n));
}

/**
 * The reduction `tail` with the group `members` as its prologue: one kernel; with `after`
 * (an epilogue, planned as `built`), `<name>_prologue_epilogue`.
 */
export function prologueOf(
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
export const plainMatmul = (k: PlannedKernel) =>
  k.kernel === "matmul" && (k.params.batch ?? 1) === 1 && k.bind.length === 3;

/** What an epilogue of a kernel needs to know of it: its output's length, what it reads and writes. */
export interface Head {
  n: number;
  reads: number[];
  out: number;
}

/** The head a plain matmul makes. */
export function matmulHead(k: PlannedKernel): Head | undefined {
  if (!plainMatmul(k)) return undefined;
  return { n: Number(k.params.M) * Number(k.params.N), reads: k.bind.slice(0, 2), out: k.bind[2] };
}

/** The head a reduction that states an `epilogue` makes (lib/kernels/reduce_fused.ts). */
export function reductionHead(k: PlannedKernel): Head | undefined {
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
export function mergeEpilogues(
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
        absorb(m, g, nodes, merged);
        break;
      }
      g.head = m.members[0];
      if (!fits(g)) {
        g.head = undefined;
        continue;
      }
      absorb(g, m, nodes, merged);
      break;
    }
  }
  return nodes.filter((n) => !merged.has(n));
}
