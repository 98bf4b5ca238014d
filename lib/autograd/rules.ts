/**
 * The gradient rule of each differentiable op: given the gradient `gy` of the op's output,
 * the gradients of the inputs that need one. Rules are written with Tensor ops, so the
 * backward pass is queued work like the forward pass, on the same devices.
 *
 * @module
 */
import type { OpContext, Tensor } from "../tensor/tensor.ts";
import type { GradOp } from "../tensor/grad_ops.ts";
import { zeros } from "../tensor/creation.ts";
import {
  clampBackward,
  evenlyDistributeBackward,
  minmaxBackward,
  valueSelectingBackward,
} from "../tensor/selection_grads.ts";
import type { MinMaxOp } from "../kernels/minmax.ts";

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

/** Every rule, by the op name the Tensor records (see lib/tensor/grad_ops.ts). */
const TABLE = ([
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
  ["permute", (gy, op) => {
    const dims = op.ctx.dims as number[];
    const inverse = dims.map((_, i) => dims.indexOf(i));
    return [gy.permute(inverse)];
  }],
  ["slice", (gy, op) => {
    const { axis, start, step, size } = op.ctx as Record<string, number>;
    return [gy.unslice(axis, start, step, size)];
  }],
  ["unslice", (gy, op) => {
    const { axis, start, step, length } = op.ctx as Record<string, number>;
    return [gy.slice(axis, start, start + (length - 1) * step + 1, step)];
  }],
  ["cat", (gy, op) => {
    const { axis, sizes } = op.ctx as { axis: number; sizes: number[] };
    let at = 0;
    return sizes.map((size, i) => {
      const g = op.needs[i] ? gy.narrow(axis, at, size) : undefined;
      at += size;
      return g;
    });
  }],
  ["stack", (gy, op) => {
    const axis = op.ctx.axis as number;
    return op.inputs.map((x, i) => {
      if (!op.needs[i]) return undefined;
      const g = gy.narrow(axis, i, 1);
      return freeing(g.reshape(x.shape), g);
    });
  }],
  ["indexSelect", (gy, op) => {
    const { axis, index } = op.ctx as { axis: number; index: Tensor };
    const x = op.inputs[0];
    const z = zeros(x.shape, { device: x.device });
    return [freeing(z.indexAdd(axis, index, gy), z)];
  }],
  ["indexAdd", (gy, op) => {
    const { axis, index } = op.ctx as { axis: number; index: Tensor };
    return [gy, op.needs[1] ? gy.indexSelect(axis, index) : undefined];
  }],
  ["gather", (gy, op) => {
    const { axis, index } = op.ctx as { axis: number; index: Tensor };
    const x = op.inputs[0];
    const z = zeros(x.shape, { device: x.device });
    return [freeing(z.scatterAdd(axis, index, gy), z)];
  }],
  ["scatterAdd", (gy, op) => {
    const { axis, index } = op.ctx as { axis: number; index: Tensor };
    const src = op.inputs[1];
    if (!op.needs[1]) return [gy, undefined];
    // The source beyond the index's extent is not read: its gradient is 0 there.
    let g = gy.gather(axis, index);
    for (const [d, n] of src.shape.entries()) {
      if (g.shape[d] !== n) g = freeing(g.unslice(d, 0, 1, n), g);
    }
    return [gy, g];
  }],
  ["matmul", matmulRule],
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
    // PyTorch: along an axis to the index max picked; of all elements shared by the ties.
    const x = op.inputs[0];
    const { axis, keepdim } = op.ctx as { axis?: number; keepdim: boolean };
    if (axis === undefined) return [evenlyDistributeBackward(gy, x, out(op))];
    const indices = x.argmax(axis, { keepdim });
    return [freeing(valueSelectingBackward(gy, indices, x.shape, axis), indices)];
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
  ["min", (gy, op) => {
    // PyTorch: along an axis to the index min picked; of all elements shared by the ties.
    const x = op.inputs[0];
    const { axis, keepdim } = op.ctx as { axis?: number; keepdim: boolean };
    if (axis === undefined) return [evenlyDistributeBackward(gy, x, out(op))];
    const indices = x.argmin(axis, { keepdim });
    return [freeing(valueSelectingBackward(gy, indices, x.shape, axis), indices)];
  }],
  ["maximum", minmaxRule("maximum")],
  ["minimum", minmaxRule("minimum")],
  ["clamp", (gy, op) => {
    const { lo, hi } = op.ctx as { lo: number; hi: number };
    return [clampBackward(gy, op.inputs[0], lo, hi)];
  }],
  ["softmax", (gy, op) => {
    // dx = y * (gy - sum(gy * y, axis))
    const y = out(op);
    const gyy = gy.mul(y);
    const s = gyy.sum(op.ctx.axis as number, { keepdim: true });
    const d = gy.sub(s);
    return [freeing(y.mul(d), gyy, s, d)];
  }],
  ["logSumExp", (gy, op) => {
    // dx = exp(x - result) * gy, the result and gy spread back over the reduced axis.
    const x = op.inputs[0];
    const { axis, keepdim } = op.ctx as { axis?: number; keepdim: boolean };
    const kept = axis === undefined
      ? x.shape.map(() => 1)
      : x.shape.map((s, i) => i === axis ? 1 : s);
    const back = (t: Tensor) => keepdim || x.shape.length === 0 ? t : t.reshape(kept);
    const [r, g] = [back(out(op)), back(gy)];
    const d = x.sub(r);
    const e = d.exp();
    const dx = e.mul(g);
    return [freeing(dx, ...[d, e, ...[r, g].filter((t, i) => t !== [out(op), gy][i])])];
  }],
] as const) satisfies readonly (readonly [GradOp, GradRule])[];

/** Compiles only while every recorded op has a rule: names the ops that have none. */
type Missing = Exclude<GradOp, typeof TABLE[number][0]>;
const complete: [Missing] extends [never] ? true : Missing = true;

/** Every rule, by the op name the Tensor records. */
export const RULES: ReadonlyMap<string, GradRule> = complete && new Map<string, GradRule>(TABLE);

/** The rule of `maximum` or `minimum`: both gradients from one kernel, summed down. */
function minmaxRule(name: MinMaxOp): GradRule {
  return (gy, op) => {
    const [a, b] = op.inputs;
    const full = minmaxBackward(gy, a, b, name);
    return [a, b].map((x, i) =>
      op.needs[i] ? reduced(full[i], x.shape, gy) : freeing(undefined, full[i])
    );
  };
}

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

/**
 * The gradient of `torch.matmul` (as {@link Tensor.matmul} ran it, on operands of at least
 * 2-D, `canon*`): `dA = gy B^T` and `dB = A^T gy`, summed over the batch dims an operand
 * was broadcast along. A 2-D `B` shared by the batch gets one product over all rows.
 */
function matmulRule(gy: Tensor, op: RuleInput): (Tensor | undefined)[] {
  const [a, b] = op.inputs;
  const { canonA, canonB, canonOut } = op.ctx as Record<string, number[]>;
  const temps: Tensor[] = [];
  const as = (t: Tensor, shape: readonly number[]) => {
    if (sameShape(t.shape, shape)) return t;
    const r = t.reshape(shape);
    temps.push(r);
    return r;
  };
  const g = as(gy, canonOut), ac = as(a, canonA), bc = as(b, canonB);
  const back = (full: Tensor, canon: readonly number[], x: Tensor) => {
    const summed = sumTo(full, canon);
    if (summed !== full) temps.push(full);
    if (sameShape(summed.shape, x.shape)) return summed;
    temps.push(summed);
    return summed.reshape(x.shape);
  };
  let ga: Tensor | undefined, gb: Tensor | undefined;
  if (op.needs[0]) {
    const bt = bc.transpose(-2, -1);
    temps.push(bt);
    ga = back(g.matmul(bt), canonA, a);
  }
  if (op.needs[1]) {
    const [K, N] = canonB.slice(-2);
    if (canonB.length === 2 && canonOut.length > 2) {
      const rows = g.size / N;
      gb = back(as(ac, [rows, K]).mm(as(g, [rows, N]), { transA: true }), canonB, b);
    } else {
      const at = ac.transpose(-2, -1);
      temps.push(at);
      gb = back(at.matmul(g), canonB, b);
    }
  }
  return freeing([ga, gb], ...temps);
}
