import { cpu, type Device, tryAllGpus } from "../../mod.ts";
import {
  ex,
  type Expr,
  gradcheck,
  type Input,
  show,
  type UnaryName,
  uniform,
} from "./gradcheck.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });

const x0 = ex.input(0);
const x1 = ex.input(1);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
let seed = 1;

/** Values in [-1, 1), away from 0 by `gap`, so that relu's kink is never crossed. */
function signed(shape: readonly number[], gap = 0): Input {
  const values = uniform(sizeOf(shape), seed++).map((v) =>
    Math.fround(Math.sign(v || 1) * (gap + Math.abs(v)))
  );
  return { shape, values };
}

/** Values in [lo, hi): for log and sqrt, and for denominators. */
function positive(shape: readonly number[], lo = 0.5, hi = 2): Input {
  return { shape, values: uniform(sizeOf(shape), seed++, lo, hi) };
}

interface Case {
  expr: Expr;
  inputs: Input[];
}

const c = (expr: Expr, ...inputs: Input[]): Case => ({ expr, inputs });

const binaryCases: Case[] = [
  c(ex.add(x0, x1), signed([2, 3]), signed([2, 3])),
  c(ex.add(x0, x1), signed([2, 3]), signed([3])),
  c(ex.add(x0, x1), signed([3]), signed([2, 3])),
  c(ex.add(x0, x1), signed([2, 3, 4]), signed([3, 1])),
  c(ex.sub(x0, x1), signed([2, 3]), signed([2, 3])),
  c(ex.sub(x0, x1), signed([3, 1]), signed([1, 4])),
  c(ex.sub(x0, x1), signed([2, 1]), signed([2, 3])),
  c(ex.mul(x0, x1), signed([2, 3]), signed([2, 3])),
  c(ex.mul(x0, x1), signed([2, 3]), signed([2, 1])),
  c(ex.mul(x0, x1), signed([]), signed([2, 2])),
  c(ex.mul(x0, x1), signed([2, 2]), signed([])),
  c(ex.mul(x0, x1), signed([2, 2]), signed([1])),
  c(ex.mul(x0, x0), signed([2, 3])),
  c(ex.div(x0, x1), signed([2, 3]), positive([2, 3])),
  c(ex.div(x0, x1), signed([2, 3]), positive([3])),
  c(ex.div(x0, x1), signed([3]), positive([2, 3])),
  c(ex.div(x0, x1), signed([2, 1]), positive([1, 3])),
  c(ex.div(x0, x1), signed([]), positive([2, 2])),
  c(ex.add(x0, 2.5), signed([2, 3])),
  c(ex.sub(x0, -1.5), signed([2, 3])),
  c(ex.mul(x0, -0.75), signed([2, 3])),
  c(ex.div(x0, 0.4), signed([2, 3])),
];

const unaryCases: Case[] = (["neg", "exp", "tanh", "sigmoid", "relu"] as UnaryName[])
  .map((op) => c(ex.unary(op, x0), signed([2, 3], op === "relu" ? 0.1 : 0)))
  .concat(
    c(ex.unary("log", x0), positive([2, 3], 0.2)),
    c(ex.unary("sqrt", x0), positive([2, 3], 0.2)),
    c(ex.unary("tanh", x0), { shape: [3], values: [-3, 0.5, 4] }),
    c(ex.unary("sigmoid", x0), { shape: [3], values: [-6, 0.5, 5] }),
  );

const reduceCases: Case[] = (["sum", "mean", "max", "logSumExp"] as const).flatMap((op) => [
  c(ex.reduce(op, x0), signed([3, 4])),
  c(ex.reduce(op, x0, undefined, true), signed([3, 4])),
  c(ex.reduce(op, x0, 0), signed([3, 4])),
  c(ex.reduce(op, x0, 1), signed([3, 4])),
  c(ex.reduce(op, x0, -1), signed([3, 4])),
  c(ex.reduce(op, x0, 0, true), signed([3, 4])),
  c(ex.reduce(op, x0, 1, true), signed([3, 4])),
  c(ex.reduce(op, x0, 0), signed([5])),
  c(ex.reduce(op, x0, 1), signed([2, 3, 4])),
  c(ex.reduce(op, x0, 1, true), signed([2, 3, 4])),
]);

const layoutCases: Case[] = [
  c(ex.reshape(x0, [3, 2]), signed([2, 3])),
  c(ex.reshape(x0, [6]), signed([2, 3])),
  c(ex.reshape(x0, [2, -1]), signed([6])),
  c(ex.reshape(x0, []), signed([1, 1])),
  c(ex.transpose(x0), signed([2, 3])),
  c(ex.transpose(x0), signed([1, 4])),
  c(ex.expandTo(x0, [3, 4]), signed([3, 1])),
  c(ex.expandTo(x0, [2, 3]), signed([3])),
  c(ex.expandTo(x0, [2, 2]), signed([])),
  c(ex.expandTo(x0, [2, 4, 3]), signed([2, 1, 3])),
  c(ex.expandTo(x0, [2, 3]), signed([2, 3])),
];

const softmaxCases: Case[] = [
  c(ex.logSoftmax(x0, 0), signed([3, 4])),
  c(ex.logSoftmax(x0, 1), signed([3, 4])),
  c(ex.logSoftmax(x0, -1), signed([2, 5])),
  c(ex.logSoftmax(x0, 1), signed([2, 3, 2])),
  c(ex.logSoftmax(x0, 0), signed([4])),
  c(ex.crossEntropy(x0, [0, 3, 1]), signed([3, 4])),
  c(ex.crossEntropy(x0, [1]), signed([1, 2])),
  c(ex.crossEntropy(ex.mul(x0, 3), [2, 0]), signed([2, 3])),
];

const mmCases: Case[] = [[false, false], [true, false], [false, true], [true, true]].flatMap((
  [tA, tB],
) => [
  c(ex.mm(x0, x1, tA, tB), signed(tA ? [3, 2] : [2, 3]), signed(tB ? [4, 3] : [3, 4])),
  c(ex.mm(x0, x1, tA, tB), signed([1, 1]), signed(tB ? [5, 1] : [1, 5])),
  c(ex.mm(x0, x0, tA, tB), signed([3, 3])),
]);

const copyCases: Case[] = [
  c(ex.toHost(x0), signed([2, 3])),
  c(ex.mul(ex.toHost(ex.unary("tanh", x0)), ex.toHost(x1)), signed([2, 3]), signed([3])),
  c(ex.reduce("sum", ex.toHost(ex.mm(x0, x1)), 1), signed([2, 3]), signed([3, 2])),
];

const t = ex.unary("tanh", x0);
const h = ex.mm(x0, x1);
const sharedCases: Case[] = [
  c(ex.add(x0, x0), signed([2, 3])),
  c(ex.sub(ex.mul(x0, x0), x0), signed([2, 3])),
  c(ex.mul(t, t), signed([2, 3])),
  c(ex.div(ex.add(t, x0), ex.add(ex.mul(t, t), 1)), signed([2, 3])),
  c(ex.add(ex.logSoftmax(h, 1), ex.reduce("max", h, 0, true)), signed([2, 3]), signed([3, 4])),
];

const families: [string, Case[]][] = [
  ["a tensor read by several ops", sharedCases],
  ["add, sub, mul and div with broadcasting and scalars", binaryCases],
  ["the unary functions", unaryCases],
  ["sum, mean, max and logSumExp over all elements and along an axis", reduceCases],
  ["reshape, transpose and expandTo", layoutCases],
  ["logSoftmax and crossEntropy", softmaxCases],
  ["mm with every transA and transB", mmCases],
  ["to(cpu())", copyCases],
];

// Without a GPU the GPU checks are listed as ignored rather than left out unseen.
const devices: (Device | undefined)[] = [cpu(), gpu];

for (const device of devices) {
  for (const [family, cases] of families) {
    for (const { expr, inputs } of cases) {
      const shapes = inputs.map((x) => `[${x.shape.join(", ")}]`).join(", ");
      Deno.test({
        name: `${family} on ${device?.name ?? "a GPU"}: ${show(expr)} at ${shapes} has the ` +
          `float64 gradient`,
        ignore: device === undefined,
        ...opts,
        fn: () => gradcheck(expr, inputs, { device: device!, tol: device === cpu() ? 1e-4 : 3e-4 }),
      });
    }
  }
}
