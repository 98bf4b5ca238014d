import fc from "fast-check";
import { cpu, type Device, tryAllGpus } from "../../mod.ts";
import {
  broadcastShapes,
  ex,
  type Expr,
  gradcheck,
  type Input,
  type Ref,
  show,
  smoothness,
  type UnaryName,
  uniform,
} from "./gradcheck.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });

const KINDS = [
  "unary",
  "binary",
  "scalar",
  "reduce",
  "reshape",
  "transpose",
  "expandTo",
  "logSoftmax",
  "crossEntropy",
  "mm",
] as const;
const UNARY: UnaryName[] = ["neg", "exp", "log", "tanh", "sigmoid", "sqrt", "relu"];
const BINARY = ["add", "sub", "mul", "div"] as const;
const REDUCE = ["sum", "mean", "max"] as const;
/** The most elements any value may have, so that a check stays quick. */
const MAX_SIZE = 24;

/** One step of a composition; the numbers pick among the choices the step has. */
interface Step {
  kind: typeof KINDS[number];
  a: number;
  b: number;
  c: number;
}

/** A random composition: the first input's shape, then 2 to 4 ops applied in turn. */
interface Plan {
  shape: number[];
  steps: Step[];
  seed: number;
}

/** Op kinds, the elementwise ones more often (they have the most rules). */
const kindArb = fc.constantFrom(...KINDS, "unary", "unary", "binary");

const planArb: fc.Arbitrary<Plan> = fc.record({
  shape: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }),
  steps: fc.array(
    fc.record({ kind: kindArb, a: fc.nat(99), b: fc.nat(99), c: fc.nat(99) }),
    { minLength: 2, maxLength: 4 },
  ),
  seed: fc.nat(),
});

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

interface Node {
  expr: Expr;
  shape: readonly number[];
}

/** A composition of the plan: its expression and inputs (denominators and logs kept positive). */
function build(plan: Plan): { expr: Expr; inputs: Input[] } {
  const inputs: Input[] = [];
  const input = (shape: readonly number[], positive = false): Node => {
    const values = positive
      ? uniform(sizeOf(shape), plan.seed + inputs.length, 0.5, 2)
      : uniform(sizeOf(shape), plan.seed + inputs.length);
    inputs.push({ shape, values });
    return { expr: ex.input(inputs.length - 1), shape };
  };
  /** `x * x + 0.5`: an operand that stays away from 0 whatever `x` is. */
  const positive = (n: Node): Node => ({
    expr: ex.add(ex.mul(n.expr, n.expr), 0.5),
    shape: n.shape,
  });
  /** `n` as a matrix, reshaped when it is not one. */
  const matrix = (n: Node, pick: number): Node => {
    if (n.shape.length === 2) return n;
    const size = sizeOf(n.shape);
    const rows = divisors(size)[pick % divisors(size).length];
    return { expr: ex.reshape(n.expr, [rows, size / rows]), shape: [rows, size / rows] };
  };
  /** A shape that broadcasts with `shape`: sizes set to 1, leading sizes dropped or added. */
  const partner = (shape: readonly number[], pick: number): number[] => {
    const out = shape.map((n, i) =>
      (pick >> i) & 1 ? 1 : n === 1 && sizeOf(shape) * 3 <= MAX_SIZE ? 1 + (pick % 3) : n
    );
    const drop = (pick >> 3) % (shape.length + 1);
    const lead = drop === 0 && shape.length < 3 && (pick >> 5) & 1 && sizeOf(shape) * 2 <= MAX_SIZE
      ? [2]
      : [];
    return [...lead, ...out.slice(drop)];
  };

  const pool: Node[] = [input(plan.shape)];
  let cur = pool[0];
  for (const { kind, a, b, c } of plan.steps) {
    const rank = cur.shape.length;
    let next: Node;
    switch (kind) {
      case "unary": {
        const op = UNARY[a % UNARY.length];
        const x = op === "log" || op === "sqrt" ? positive(cur) : cur;
        next = { expr: ex.unary(op, x.expr), shape: cur.shape };
        break;
      }
      case "scalar": {
        const op = BINARY[a % 4];
        const s = [2.5, -1.5, 0.5, 3][b % 4];
        next = { expr: ex[op](cur.expr, s), shape: cur.shape };
        break;
      }
      case "binary": {
        const op = BINARY[a % 4];
        const fits = pool.filter((n) => {
          const s = broadcastShapes(n.shape, cur.shape);
          return s && sizeOf(s) <= Math.max(MAX_SIZE, sizeOf(cur.shape));
        });
        // An earlier value (perhaps cur itself) or a new input; on either side.
        const reuse = b % 3 === 0;
        const other = reuse ? fits[c % fits.length] : input(partner(cur.shape, c), op === "div");
        const swap = (b >> 2) & 1;
        const [x, y0] = swap ? [other, cur] : [cur, other];
        const y = op === "div" && (swap || reuse) ? positive(y0) : y0;
        const shape = broadcastShapes(x.shape, y.shape)!;
        next = { expr: ex[op](x.expr, y.expr), shape };
        break;
      }
      case "reduce": {
        const op = REDUCE[a % 3];
        const choice = b % (rank + 1);
        const keepdim = c % 2 === 1;
        if (choice === rank) {
          const shape = keepdim ? cur.shape.map(() => 1) : [];
          next = { expr: ex.reduce(op, cur.expr, undefined, keepdim), shape };
        } else {
          const axis = (c >> 1) & 1 ? choice - rank : choice;
          const shape = keepdim
            ? cur.shape.map((n, i) => i === choice ? 1 : n)
            : cur.shape.filter((_, i) => i !== choice);
          next = { expr: ex.reduce(op, cur.expr, axis, keepdim), shape };
        }
        break;
      }
      case "reshape": {
        const size = sizeOf(cur.shape);
        const ds = divisors(size);
        const d = ds[a % ds.length];
        const options: number[][] = [[size], [d, size / d], [1, size], [size, 1]];
        if (size === 1) options.push([]);
        const shape = options[b % options.length];
        const asked = c % 2 && shape.length > 0 ? shape.map((n, i) => i === 0 ? -1 : n) : shape;
        next = { expr: ex.reshape(cur.expr, asked), shape };
        break;
      }
      case "transpose": {
        const m = matrix(cur, a);
        next = { expr: ex.transpose(m.expr), shape: [m.shape[1], m.shape[0]] };
        break;
      }
      case "expandTo": {
        const grow = sizeOf(cur.shape) * 4 <= MAX_SIZE;
        const shape = cur.shape.map((n, i) => n === 1 && grow && (a >> i) & 1 ? 2 + (b % 3) : n);
        const lead = rank < 3 && c % 2 && sizeOf(shape) * 2 <= MAX_SIZE ? [2] : [];
        next = { expr: ex.expandTo(cur.expr, [...lead, ...shape]), shape: [...lead, ...shape] };
        break;
      }
      case "logSoftmax": {
        const axis = rank === 0 ? 0 : a % rank - (b % 2 ? rank : 0);
        next = { expr: ex.logSoftmax(cur.expr, axis), shape: cur.shape };
        break;
      }
      case "crossEntropy": {
        const m = matrix(cur, a);
        const [rows, cols] = m.shape;
        const labels = uniform(rows, plan.seed + b, 0, cols).map(Math.floor);
        next = { expr: ex.crossEntropy(m.expr, labels), shape: [] };
        break;
      }
      case "mm": {
        const m = matrix(cur, a);
        const transA = (b & 1) === 1;
        const transB = (b & 2) === 2;
        const [rows, inner] = transA ? [m.shape[1], m.shape[0]] : m.shape;
        const room = (n: number) => Math.max(1, Math.floor(MAX_SIZE / n));
        if (c % 3 === 0 && transA !== transB && rows * rows <= MAX_SIZE) {
          // x.mm(x) transposed once: the same tensor on both sides.
          next = { expr: ex.mm(m.expr, m.expr, transA, transB), shape: [rows, rows] };
        } else if (c % 3 === 1) {
          // m on the right: op(left) is [k, K] where op(m) is [K, N].
          const [K, N] = transB ? [m.shape[1], m.shape[0]] : m.shape;
          const k = 1 + (a % Math.min(3, room(N)));
          const left = input(transA ? [K, k] : [k, K]);
          next = { expr: ex.mm(left.expr, m.expr, transA, transB), shape: [k, N] };
        } else {
          const n = 1 + (c % Math.min(4, room(rows)));
          const right = input(transB ? [n, inner] : [inner, n]);
          next = { expr: ex.mm(m.expr, right.expr, transA, transB), shape: [rows, n] };
        }
        break;
      }
    }
    pool.push(next);
    cur = next;
  }
  return { expr: cur.expr, inputs };
}

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

/** Whether central differences are meaningful for the composition at its inputs. */
function smooth(expr: Expr, inputs: readonly Input[]): boolean {
  const refs: Ref[] = inputs.map((x) => ({
    shape: x.shape,
    data: Float64Array.from(Float32Array.from(x.values)),
  }));
  const { margin, largest } = smoothness(expr, refs);
  return margin > 0.02 && largest < 50;
}

async function check(plan: Plan, device: Device): Promise<void> {
  const { expr, inputs } = build(plan);
  fc.pre(smooth(expr, inputs));
  await gradcheck(expr, inputs, { device, tol: 1e-3, seed: plan.seed, what: show(expr) });
}

Deno.test(
  "autograd matches float64 finite differences on random compositions of the ops on the host",
  opts,
  async () => {
    await fc.assert(fc.asyncProperty(planArb, (plan) => check(plan, cpu())), {
      numRuns: 300,
    });
  },
);

Deno.test({
  name: "autograd matches float64 finite differences on random compositions on a GPU",
  ignore: gpu === undefined,
  ...opts,
  fn: async () => {
    await fc.assert(fc.asyncProperty(planArb, (plan) => check(plan, gpu!)), {
      numRuns: 40,
    });
  },
});
