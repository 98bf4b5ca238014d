/**
 * The fuser's view of a segment's kernels (lib/capture/fuse.ts): what each reads and
 * writes, the nodes of its dependency graph, and the fused programs it builds from a piece
 * of a group (what it loads, what it stores, each member's arguments).
 *
 * @module
 */
import type { ElementRead, KernelParams } from "../kernels/kernel.ts";
import { kernel } from "../kernels/registry.ts";
import {
  constantKey,
  type FusedArg,
  type FusedMember,
  fusedParams,
  type FusedProgram,
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

export interface Read {
  slot: number;
  read: ElementRead;
}

/** What the fuser knows of a kernel: what it reads and writes, and if elementwise, how. */
export interface Info {
  reads: Read[];
  writes: number[];
  /** Its length, when it is elementwise and can be fused. */
  n?: number;
}

/** A kernel on its own or a group: a node of the segment's dependency graph. */
export interface Node {
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

export const firstOf = (n: Node) => n.head ?? n.members[0];

/** A read at the element itself, as "same" (a row as long as the output, a one-element output). */
export function normalise(read: ElementRead, n: number): ElementRead {
  if (read === "same" || n === 1) return "same";
  if (read === "one") return "one";
  return read.row === n ? "same" : read.row === 1 ? "one" : read;
}

/** Distinct float32 constants of the members of a piece (each becomes a uniform). */
export function constantsOf(piece: number[], kernels: PlannedKernel[]): number {
  // Told apart as the fused code pools them: 0 and -0 are two uniforms.
  const seen = new Set<string>();
  for (const k of piece) {
    const e = kernel(kernels[k].kernel).elementwise;
    for (const c of e?.constants?.(kernels[k].params) ?? []) seen.add(constantKey(c));
  }
  return seen.size;
}

export function infoOf(k: PlannedKernel): Info {
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
export function reaches(from: Node, to: Node): boolean {
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

/** A piece of a group as one kernel: what it loads, what it stores, and its members' arguments. */
export function build(
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
export interface Built {
  loads: Map<number, ElementRead[]>;
  /** Stored slots and the member whose value each gets (-1: the head's). */
  stores: Map<number, number>;
  args: FusedArg[][];
}

export const sameRead = (a: ElementRead, b: ElementRead) =>
  typeof a === "string" || typeof b === "string" ? a === b : a.row === b.row;

/**
 * The fused program of a piece and the slots it binds (loaded, then stored). `vector`
 * allows four elements an invocation; an epilogue or a prologue computes one element at a
 * time, as the kernel it joins reads or stores them.
 */
export function programOf(
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
export function fusedOf(
  piece: number[],
  n: number,
  kernels: PlannedKernel[],
  built: Built,
): PlannedKernel {
  const { program, slots, ops } = programOf(piece, n, kernels, built, true);
  return { kernel: "fused", params: fusedParams(program), bind: slots, ops };
}

export const bindings = (b: Built) => new Set([...b.loads.keys(), ...b.stores.keys()]).size;

/** The slots a kernel writes: its outputs' (an in-place update's is its input's home). */
export function writesOf(k: PlannedKernel): number[] {
  return k.bind.slice(k.bind.length - kernel(k.kernel).outputTypes(k.params).length);
}

/** Appends `k` to the list of `slot` (a new list for its first). */
export function pushTo(lists: Map<number, number[]>, slot: number, k: number): void {
  const list = lists.get(slot);
  if (list) list.push(k);
  else lists.set(slot, [k]);
}

/** The kernels that read each slot. */
export function readersBySlot(infos: Info[]): Map<number, number[]> {
  const readers = new Map<number, number[]>();
  infos.forEach((info, k) => {
    for (const r of info.reads) pushTo(readers, r.slot, k);
  });
  return readers;
}
