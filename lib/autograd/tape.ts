/**
 * Reverse-mode autodiff over the Tensor ops: each op whose input requires grad records a
 * node (its `gradFn`); `backward()` walks the nodes from the loss in reverse topological
 * order and queues each rule's ops, so the backward pass runs asynchronously like the
 * forward pass and shows in the trace as ops with dependencies.
 *
 * @module
 */
import {
  type BackwardOptions,
  type GradFn,
  type OpContext,
  recordOf,
  setCreationHook,
  setGradRecorder,
  Tensor,
} from "../tensor/tensor.ts";
import { engine } from "../engine/engine.ts";
import { creationSite } from "../engine/errors.ts";
import { ones } from "../tensor/creation.ts";
import { RULES } from "./rules.ts";

/** How many recorded nodes hold each tensor (as an input or a saved output). */
const holders = new WeakMap<Tensor, number>();
/** Tensors whose maker let go of them: disposed when the last node holding them is freed. */
const released = new WeakSet<Tensor>();

/**
 * Disposes `t` as soon as the autograd graph no longer needs it: at once when no recorded
 * op holds it, else when backward() frees the last op that does. Layers call it on their
 * intermediate results, so that a training loop frees its activations deterministically,
 * without waiting for the garbage collector.
 */
export function release(t: Tensor): void {
  if ((holders.get(t) ?? 0) > 0) released.add(t);
  else if (!t.disposed) t.dispose();
}

/** Tensors made inside the outermost {@link forwardScope} now running, if one is. */
let made: Tensor[] | undefined;
setCreationHook((t) => made?.push(t));

/**
 * Runs `fn` (a module's forward pass) and then releases (see {@link release}) every tensor
 * it made except its result, the parameters and what `keep` says to keep: intermediate
 * results are freed as soon as backward no longer needs them, deterministically, whatever
 * the garbage collector does. Nested scopes leave the work to the outermost.
 */
export function forwardScope(fn: () => Tensor, keep: () => ReadonlySet<Tensor>): Tensor {
  if (made) return fn();
  const mine: Tensor[] = (made = []);
  let out: Tensor | undefined;
  try {
    out = fn();
  } finally {
    made = undefined;
  }
  if (mine.length === 0) return out;
  const kept = keep();
  for (const t of mine) {
    if (t === out || t.disposed || (t.requiresGrad && t.gradFn === undefined) || kept.has(t)) {
      continue;
    }
    release(t);
  }
  return out;
}

/** A recorded op. Its inputs and saved tensors are dropped once backward has used them. */
class Node implements GradFn {
  inputs: readonly Tensor[] | undefined;
  ctx: OpContext | undefined;
  /** Internal tensors the node owns (disposed when the graph is freed). */
  owned: Tensor[];
  #held: Tensor[];

  /** `site`: where the op was created (the engine's own record of it, not a second stack). */
  constructor(
    readonly name: string,
    inputs: readonly Tensor[],
    ctx: OpContext,
    readonly site: Error,
  ) {
    this.inputs = inputs;
    this.ctx = ctx;
    this.owned = name === "crossEntropy" ? [ctx.grad as Tensor] : [];
    this.#held = ctx.out ? [...inputs, ctx.out as Tensor] : [...inputs];
    for (const t of this.#held) holders.set(t, (holders.get(t) ?? 0) + 1);
  }

  get freed(): boolean {
    return this.inputs === undefined;
  }

  free(): void {
    this.inputs = undefined;
    this.ctx = undefined;
    for (const t of this.owned.splice(0)) t.dispose();
    for (const t of this.#held.splice(0)) {
      const left = holders.get(t)! - 1;
      holders.set(t, left);
      if (left === 0 && released.has(t) && !t.disposed) t.dispose();
    }
  }
}

let gradDepth = 0;

/** Whether ops are recorded now (false inside {@link noGrad} and during backward). */
export function gradEnabled(): boolean {
  return gradDepth === 0;
}

/**
 * Runs `fn` without recording ops for autograd (PyTorch's `torch.no_grad()`): for
 * evaluation and parameter updates. Returns what `fn` returns. An async `fn` (an evaluation
 * loop over a data loader) keeps recording off until its promise settles; JavaScript has one
 * thread, so this holds for the whole process meanwhile, as `torch.no_grad()` does for its
 * thread.
 *
 * @example
 * ```ts
 * import { fromArray, noGrad } from "../../mod.ts";
 * const w = fromArray([1, 2], [2], { requiresGrad: true });
 * console.log(noGrad(() => w.mul(2)).requiresGrad); // false
 * const later = await noGrad(async () => {
 *   await Promise.resolve();
 *   return w.mul(2);
 * });
 * console.log(later.requiresGrad); // false
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  gradDepth++;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    gradDepth--;
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => gradDepth--) as T;
  }
  gradDepth--;
  return result;
}

/** Options of {@link runBackward}, for autopar's own layers (DataParallel). */
export interface RunBackwardOptions extends BackwardOptions {
  /**
   * Called when a leaf's gradient for this pass is complete (all its contributions are
   * queued), in the order backward reaches them: where DataParallel starts an exchange.
   */
  onGradReady?: (leaf: Tensor) => void;
}

const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;

function siteOf(node: Node): string {
  return ` (created at ${creationSite(node.site)})`;
}

/**
 * The backward pass from `root`: accumulates the gradient of `root` (seeded with
 * `gradient`, or 1 for a scalar) into the `.grad` of every leaf that requires grad.
 * Checks everything before it queues anything.
 */
export function runBackward(
  root: Tensor,
  gradient: Tensor | undefined,
  options: RunBackwardOptions = {},
): void {
  checkBackwardArguments(root, gradient);
  const { rootNode, order, leafEdges } = backwardGraph(root);

  gradDepth++;
  const e = engine();
  const outer = e.phase;
  e.phase = "backward";
  try {
    const seed = gradient ?? ones(root.shape, { device: root.device });
    const pass = new BackwardPass(gradient, leafEdges, options);
    if (!rootNode) {
      pass.toLeaf(root, seed);
      pass.dropIfFree(seed);
      for (const o of observers) o.finished();
      return;
    }
    pass.run(rootNode, seed, order);
    for (const o of observers) o.finished();
  } finally {
    gradDepth--;
    e.phase = outer;
  }
}

/** Throws unless backward can start from `root` with `gradient` (the seed, if given). */
function checkBackwardArguments(root: Tensor, gradient: Tensor | undefined): void {
  if (!(root instanceof Tensor)) throw new TypeError(`Cannot run backward from ${root}`);
  if (root.disposed) throw new TypeError(`Cannot run backward from ${root}: it was disposed`);
  if (!root.requiresGrad) {
    throw new TypeError(
      `Cannot run backward from ${root}: it does not require grad (no input of the ops that ` +
        `made it has requiresGrad set, or it was made inside noGrad)`,
    );
  }
  if (gradient === undefined && root.size !== 1) {
    throw new RangeError(
      `Cannot run backward from ${root}: backward() needs a scalar loss, not shape ` +
        `${fmt(root.shape)} (reduce it with sum() or mean(), or pass a gradient of that shape)`,
    );
  }
  if (gradient !== undefined) {
    if (!(gradient instanceof Tensor) || gradient.disposed) {
      throw new TypeError(`Cannot run backward from ${root} with gradient ${gradient}`);
    }
    if (
      gradient.device !== root.device || gradient.shape.length !== root.shape.length ||
      gradient.shape.some((n, i) => n !== root.shape[i])
    ) {
      throw new RangeError(
        `Cannot run backward from ${root} with gradient ${gradient}: it must have the same ` +
          `shape and device`,
      );
    }
  }
}

/** The nodes reachable from a root, and how many edges reach each leaf. */
interface BackwardGraph {
  /** The node that made the root; undefined when the root is a leaf. */
  rootNode: Node | undefined;
  /** Every reachable node, in reverse topological order (the root's node first). */
  order: Node[];
  /** For each leaf that requires grad, the number of edges into it. */
  leafEdges: Map<Tensor, number>;
}

/** Walks the graph from `root` depth first, checking each node and input on the way. */
function backwardGraph(root: Tensor): BackwardGraph {
  const order: Node[] = [];
  const leafEdges = new Map<Tensor, number>();
  const seen = new Set<Node>();
  const rootNode = root.gradFn as Node | undefined;
  const stack: [Node, number][] = rootNode ? [[rootNode, 0]] : [];
  if (rootNode) seen.add(rootNode);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i === 0) checkNode(node);
    const inputs = node.inputs!;
    if (i < inputs.length) {
      top[1]++;
      const input = inputs[i];
      if (!input.requiresGrad) continue;
      if (input.disposed && !input.gradFn) {
        throw new TypeError(
          `Cannot compute the gradient of ${input}: it was disposed (an input of ` +
            `${node.name}${siteOf(node)})`,
        );
      }
      const child = input.gradFn as Node | undefined;
      if (!child) leafEdges.set(input, (leafEdges.get(input) ?? 0) + 1);
      else if (!seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  order.reverse();
  return { rootNode, order, leafEdges };
}

/** Throws unless backward can run through `node`: not freed, its tensors kept, a rule known. */
function checkNode(node: Node): void {
  if (node.freed) {
    throw new TypeError(
      `Cannot run backward through ${node.name}${siteOf(node)}: an earlier backward() ` +
        `already freed this graph; pass { retainGraph: true } to the first backward() ` +
        `to run it twice`,
    );
  }
  const saved = [...node.inputs!, ...(node.ctx!.out ? [node.ctx!.out as Tensor] : [])];
  const gone = saved.find((t) => t.disposed && (t.gradFn !== undefined || !t.requiresGrad));
  if (gone) {
    throw new TypeError(
      `Cannot run backward through ${node.name}${siteOf(node)}: ${gone}, which its ` +
        `gradient reads, was disposed (keep tensors until backward() has been called)`,
    );
  }
  if (!RULES.has(node.name)) {
    throw new TypeError(
      `Cannot run backward through ${node.name}${siteOf(node)}: it has no gradient ` +
        `(compute it inside noGrad or from detached tensors)`,
    );
  }
}

/** The gradients of one backward pass in flight, and who still reads each of them. */
class BackwardPass {
  /** The gradient flowing into each node not yet run. */
  readonly #grads = new Map<Node, Tensor>();
  /** How many pending uses (a node's incoming gradient) each gradient tensor has. */
  readonly #refs = new Map<Tensor, number>();
  /** Tensors that became a leaf's `.grad`: never disposed by the pass. */
  readonly #kept = new Set<Tensor>();

  constructor(
    readonly userGradient: Tensor | undefined,
    readonly leafEdges: Map<Tensor, number>,
    readonly options: RunBackwardOptions,
  ) {}

  /** Counts one more pending use of `t`. */
  #own(t: Tensor): void {
    this.#refs.set(t, (this.#refs.get(t) ?? 0) + 1);
  }

  /** Counts one pending use of `t` less. */
  #unown(t: Tensor): void {
    this.#refs.set(t, (this.#refs.get(t) ?? 1) - 1);
  }

  /** Disposes `t` when nothing of the pass (nor the caller, nor a leaf) still needs it. */
  dropIfFree(t: Tensor): void {
    if (
      (this.#refs.get(t) ?? 0) <= 0 && !this.#kept.has(t) && t !== this.userGradient &&
      !t.disposed
    ) {
      t.dispose();
    }
  }

  /** Accumulates `g` into `leaf.grad`; tells the observers once the leaf's gradient is whole. */
  toLeaf(leaf: Tensor, g: Tensor): void {
    if (leaf.grad === undefined || leaf.grad.disposed) {
      leaf.grad = (this.#refs.get(g) ?? 0) > 0 || this.#kept.has(g) || g === this.userGradient
        ? g.detach()
        : g;
      this.#kept.add(leaf.grad);
    } else if (leaf.grad === g) {
      // g reached the leaf twice (x.add(x)): sub_ cannot read the buffer it writes.
      const copy = g.detach();
      leaf.grad.sub_(copy, { alpha: -1 });
      copy.dispose();
    } else {
      leaf.grad.sub_(g, { alpha: -1 }); // accumulates in place: the Tensor stays the same
    }
    const left = this.leafEdges.get(leaf)! - 1;
    this.leafEdges.set(leaf, left);
    if (left === 0) {
      this.options.onGradReady?.(leaf);
      for (const o of observers) o.gradReady(leaf);
    }
  }

  /** Queues every node's rule, in `order`, starting from `seed` at `rootNode`. */
  run(rootNode: Node, seed: Tensor, order: readonly Node[]): void {
    this.#grads.set(rootNode, seed);
    this.#own(seed);
    for (const node of order) this.#step(node);
  }

  /** Queues `node`'s rule and hands each input's gradient on to its node or leaf. */
  #step(node: Node): void {
    const gy = this.#grads.get(node)!;
    this.#grads.delete(node);
    const inputs = node.inputs!;
    const needs = inputs.map((t) => t.requiresGrad);
    const gs = RULES.get(node.name)!(gy, { inputs, ctx: node.ctx!, needs });
    this.#unown(gy);
    const touched = [gy];
    inputs.forEach((input, i) => {
      const g = gs[i];
      if (!needs[i] || g === undefined) return;
      touched.push(g);
      const child = input.gradFn as Node | undefined;
      if (!child) return this.toLeaf(input, g);
      this.#addTo(child, this.#kept.has(g) ? g.detach() : g, touched);
    });
    for (const t of touched) this.dropIfFree(t);
    if (!this.options.retainGraph) node.free();
  }

  /** Adds `g` to the gradient flowing into `child` (a sum when one is there already). */
  #addTo(child: Node, g: Tensor, touched: Tensor[]): void {
    const prev = this.#grads.get(child);
    if (prev === undefined) {
      this.#grads.set(child, g);
      this.#own(g);
    } else {
      const sum = prev.add(g);
      this.#unown(prev);
      touched.push(prev);
      this.#grads.set(child, sum);
      this.#own(sum);
    }
  }
}

/**
 * Told of every backward pass, as PyTorch's post-accumulate-grad hooks and its reducer are:
 * `gradReady` when a leaf's gradient for the pass is complete (all of its contributions are
 * queued), `finished` once the pass has queued everything. DistributedDataParallel starts
 * its bucket all-reduces from these.
 */
export interface BackwardObserver {
  gradReady(leaf: Tensor): void;
  finished(): void;
}

const observers = new Set<BackwardObserver>();

/**
 * Adds `observer` to every backward pass from now on; returns the function that removes it.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * import { observeBackward } from "./tape.ts";
 * const w = fromArray([1, 2], [2], { requiresGrad: true });
 * const ready: string[] = [];
 * const stop = observeBackward({ gradReady: (t) => ready.push(String(t)), finished: () => {} });
 * w.mul(w).sum().backward();
 * stop();
 * console.log(ready); // ["Tensor[2] on cpu"]
 * ```
 */
export function observeBackward(observer: BackwardObserver): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

setGradRecorder({
  enabled: gradEnabled,
  record(out, op, inputs, ctx) {
    // The engine captured where the op was created; its producer holds that stack.
    out.gradFn = new Node(
      op,
      inputs,
      ctx,
      recordOf(out).producer?.site ?? new Error("created here"),
    );
  },
  backward: runBackward,
});
