/**
 * The gradient rule of each differentiable op: given the gradient `gy` of the op's output,
 * the gradients of the inputs that need one. Rules are written with Tensor ops, so the
 * backward pass is queued work like the forward pass, on the same devices.
 *
 * @module
 */
import type { OpContext, Tensor } from "../tensor/tensor.ts";

/** One recorded op as a rule sees it. */
export interface RuleInput {
  readonly inputs: readonly Tensor[];
  readonly ctx: OpContext;
  /** Which inputs need a gradient (those that require grad). */
  readonly needs: readonly boolean[];
}

/** A gradient rule: the inputs' gradients, `undefined` where none is needed. */
export type GradRule = (gy: Tensor, op: RuleInput) => (Tensor | undefined)[];

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((n, i) => n === b[i]);

/** `g` (of a broadcast shape) summed down to `shape`: the gradient of a broadcast. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.shape.length - shape.length;
  let t = g;
  for (let i = g.shape.length - 1; i >= 0; i--) {
    const next = i < lead
      ? t.sum(i)
      : shape[i - lead] === 1 && g.shape[i] !== 1
      ? t.sum(i, { keepdim: true })
      : t;
    if (next !== t && t !== g) t.dispose();
    t = next;
  }
  // Only sizes of 1 can still differ (g [1, n] for shape [n]).
  if (!sameShape(t.shape, shape)) {
    const r = t.reshape(shape);
    if (t !== g) t.dispose();
    t = r;
  }
  return t;
}

/** Disposes `ts` (temporaries of a rule) and returns `result`. */
function freeing<T>(result: T, ...ts: Tensor[]): T {
  for (const t of ts) t.dispose();
  return result;
}

const out = (op: RuleInput) => op.ctx.out as Tensor;

function binaryRule(
  grads: (gy: Tensor, a: Tensor, b: Tensor, op: RuleInput) => [() => Tensor, () => Tensor],
  scalarGrad: (gy: Tensor, s: number) => Tensor,
): GradRule {
  return (gy, op) => {
    const [a, b] = op.inputs;
    if (b === undefined) return [scalarGrad(gy, op.ctx.scalar as number)];
    const [ga, gb] = grads(gy, a, b, op);
    return [
      op.needs[0] ? reduced(ga(), a.shape, gy) : undefined,
      op.needs[1] ? reduced(gb(), b.shape, gy) : undefined,
    ];
  };
}

/** `sumTo`, freeing the unreduced gradient when it was a temporary of the rule. */
function reduced(g: Tensor, shape: readonly number[], gy: Tensor): Tensor {
  const r = sumTo(g, shape);
  return r === g || g === gy ? r : freeing(r, g);
}

/** Every rule, by the op name the Tensor records. */
export const RULES: ReadonlyMap<string, GradRule> = new Map<string, GradRule>([
  ["add", binaryRule((gy) => [() => gy, () => gy], (gy) => gy)],
  ["sub", binaryRule((gy) => [() => gy, () => gy.neg()], (gy) => gy)],
  ["mul", binaryRule((gy, a, b) => [() => gy.mul(b), () => gy.mul(a)], (gy, s) => gy.mul(s))],
  [
    "div",
    binaryRule((gy, _a, b, op) => [() => gy.div(b), () => {
      // d(a/b)/db = -(a/b)/b
      const t = gy.mul(out(op));
      const u = t.div(b);
      return freeing(u.neg(), t, u);
    }], (gy, s) => gy.mul(1 / s)),
  ],
  ["neg", (gy) => [gy.neg()]],
  ["exp", (gy, op) => [gy.mul(out(op))]],
  ["log", (gy, op) => [gy.div(op.inputs[0])]],
  ["sqrt", (gy, op) => {
    const t = gy.div(out(op));
    return [freeing(t.mul(0.5), t)];
  }],
  ["tanh", (gy, op) => {
    const y = out(op);
    const y2 = y.mul(y);
    const d = y2.neg();
    const one = d.add(1);
    return [freeing(gy.mul(one), y2, d, one)];
  }],
  ["sigmoid", (gy, op) => {
    const y = out(op);
    const oneMinus = y.neg();
    const om = oneMinus.add(1);
    const d = y.mul(om);
    return [freeing(gy.mul(d), oneMinus, om, d)];
  }],
  ["relu", (gy, op) => [out(op).reluBackward(gy)]],
  ["reshape", (gy, op) => [gy.reshape(op.inputs[0].shape)]],
  ["transpose", (gy) => [gy.transpose()]],
  ["narrow", (gy, op) => {
    const { axis, start, size } = op.ctx as { axis: number; start: number; size: number };
    return [gy.unnarrow(axis, start, size)];
  }],
  ["expand", (gy, op) => [sumTo(gy, op.inputs[0].shape)]],
  ["to", (gy, op) => [gy.to(op.inputs[0].device, { nonBlocking: true })]],
  ["mm", (gy, op) => {
    const [a, b] = op.inputs;
    const { transA, transB } = op.ctx as { transA: boolean; transB: boolean };
    // C = op(A) op(B): dop(A) = gy op(B)^T and dop(B) = op(A)^T gy, transposed back when
    // the operand was stored transposed; no transpose is materialised.
    const ga = !op.needs[0]
      ? undefined
      : transA
      ? b.mm(gy, { transA: transB, transB: true })
      : gy.mm(b, { transB: !transB });
    const gb = !op.needs[1]
      ? undefined
      : transB
      ? gy.mm(a, { transA: true, transB: transA })
      : a.mm(gy, { transA: !transA });
    return [ga, gb];
  }],
  ["sum", (gy, op) => [spread(gy, op, 1)]],
  ["mean", (gy, op) => {
    const x = op.inputs[0];
    return [spread(gy, op, x.size / out(op).size)];
  }],
  ["max", (gy, op) => {
    // Every element equal to the maximum gets gy: where max - x is 0, so where relu's mask
    // of max - x is off.
    const g = spread(gy, op, 1);
    const m = spread(out(op), op, 1);
    const below = m.sub(op.inputs[0]);
    const off = below.reluBackward(g);
    return [freeing(g.sub(off), g, m, below, off)];
  }],
  ["logSoftmax", (gy, op) => {
    // dx = gy - softmax(x) * sum(gy, axis)
    const axis = op.ctx.axis as number;
    const s = gy.sum(axis, { keepdim: true });
    const p = out(op).exp();
    const ps = p.mul(s);
    return [freeing(gy.sub(ps), s, p, ps)];
  }],
  ["crossEntropy", (gy, op) => [(op.ctx.grad as Tensor).mul(gy)]],
]);

/** The gradient of a sum (divided by `count` for a mean): `gy` spread over the reduced axis. */
function spread(gy: Tensor, op: RuleInput, count: number): Tensor {
  const x = op.inputs[0];
  const { axis, keepdim } = op.ctx as { axis?: number; keepdim: boolean };
  let g = gy;
  if (axis !== undefined && !keepdim && x.shape.length > 0) {
    g = gy.reshape(x.shape.map((s, i) => i === axis ? 1 : s));
  }
  const scaled = count === 1 ? g : g.mul(1 / count);
  if (scaled !== g && g !== gy) g.dispose();
  const full = scaled.expandTo(x.shape);
  if (scaled !== gy) scaled.dispose();
  return full;
}
