import assert from "node:assert/strict";
import { Adam, cpu, type Device, fromArray, type Optimizer, SGD, tryAllGpus } from "../../mod.ts";
import { mulberry32 } from "../../lib/train/mnist.ts";
import { assertClose } from "../assert_close.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 2 });

const SHAPES = [[2, 3], [3]];
const STEPS = 3;

function uniform(length: number, seed: number): Float64Array {
  const r = mulberry32(seed);
  return Float64Array.from({ length }, () => Math.fround(r() * 2 - 1));
}

/** The starting values, and the gradient of each parameter at each step. */
const start = SHAPES.map((s, i) => uniform(s[0] * (s[1] ?? 1), 10 + i));
const grads = Array.from(
  { length: STEPS },
  (_, t) => SHAPES.map((s, i) => uniform(s[0] * (s[1] ?? 1), 100 + 10 * t + i)),
);

/** One float64 update of every parameter `p` (in place) from its gradient at step `t`. */
type Reference = (p: Float64Array, g: Float64Array, i: number, t: number) => void;

/**
 * Runs `STEPS` steps of the optimizer on `device`, each with the gradients of `grads` put
 * in `.grad` (a third parameter never gets one), against `reference` in float64; `before`
 * may change the optimizer between steps (its learning rate).
 */
async function checkSteps(
  device: Device,
  make: (params: ReturnType<typeof fromArray>[]) => Optimizer,
  reference: Reference,
  before: (opt: Optimizer, t: number) => void = () => {},
): Promise<void> {
  const params = [...SHAPES, [2]].map((shape, i) =>
    fromArray(i < SHAPES.length ? Float32Array.from(start[i]) : [5, 6], shape, {
      device,
      requiresGrad: true,
    })
  );
  const opt = make(params);
  const want = start.map((p) => p.slice());
  for (let t = 0; t < STEPS; t++) {
    before(opt, t);
    SHAPES.forEach((shape, i) => {
      params[i].grad = fromArray(Float32Array.from(grads[t][i]), shape, { device });
    });
    opt.step();
    opt.zeroGrad();
    want.forEach((p, i) => reference(p, grads[t][i], i, t));
    const got = await Promise.all(params.map((p) => p.data()));
    want.forEach((p, i) => assertClose(got[i], p, 1e-5, `step ${t + 1}, parameter ${i}`));
    assert.deepEqual(got[2], new Float32Array([5, 6]), "a parameter without grad moved");
  }
  assert.ok(params.every((p) => p.grad === undefined), "zeroGrad left a gradient");
  for (const p of params) p.dispose();
}

for (const [name, device] of [["the host", cpu()], ["a GPU", gpu]] as const) {
  Deno.test(
    `SGD on ${name} follows p -= lr * g over 3 steps, with lr changed between steps`,
    opts,
    async () => {
      const lrs = [0.5, 0.5, 0.1];
      await checkSteps(
        device,
        (ps) => new SGD(ps, { lr: lrs[0] }),
        (p, g, _i, t) => p.forEach((v, k) => (p[k] = v - lrs[t] * g[k])),
        (opt, t) => ((opt as SGD).lr = lrs[t]),
      );
    },
  );

  Deno.test(
    `SGD with momentum and weight decay on ${name} follows PyTorch's update over 3 steps`,
    opts,
    async () => {
      const [lr, momentum, weightDecay] = [0.3, 0.9, 0.1];
      const velocity: Float64Array[] = [];
      await checkSteps(
        device,
        (ps) => new SGD(ps, { lr, momentum, weightDecay }),
        (p, g, i) => {
          const d = g.map((gk, k) => gk + weightDecay * p[k]);
          velocity[i] = velocity[i] ? velocity[i].map((v, k) => momentum * v + d[k]) : d;
          p.forEach((v, k) => (p[k] = v - lr * velocity[i][k]));
        },
      );
    },
  );

  Deno.test(
    `Adam on ${name} follows the bias-corrected update of Kingma and Ba over 3 steps`,
    opts,
    async () => {
      const [lr, b1, b2, eps] = [0.1, 0.8, 0.9, 1e-3];
      const m: Float64Array[] = [];
      const v: Float64Array[] = [];
      await checkSteps(
        device,
        (ps) => new Adam(ps, { lr, betas: [b1, b2], eps }),
        (p, g, i, t) => {
          m[i] = (m[i] ?? new Float64Array(g.length)).map((mk, k) => b1 * mk + (1 - b1) * g[k]);
          v[i] = (v[i] ?? new Float64Array(g.length)).map((vk, k) =>
            b2 * vk + (1 - b2) * g[k] ** 2
          );
          const [c1, c2] = [1 - b1 ** (t + 1), 1 - b2 ** (t + 1)];
          p.forEach((x, k) => (p[k] = x - (lr * (m[i][k] / c1)) / (Math.sqrt(v[i][k] / c2) + eps)));
        },
      );
    },
  );
}

Deno.test("optimizers reject bad options and parameters that are not leaves", () => {
  const w = fromArray([1, 2], [2], { requiresGrad: true });
  assert.throws(() => new SGD([w], { lr: -1 }), /Cannot use lr -1/);
  assert.throws(() => new SGD([w], { lr: 0.1, momentum: 1.5 }), /Cannot use momentum 1.5/);
  assert.throws(() => new Adam([w], { betas: [0.9, 1] }), /Cannot use betas\[1\] 1/);
  assert.throws(() => new SGD([], { lr: 0.1 }), RangeError);
  assert.throws(() => new Adam([w.mul(2)]), /must be leaf tensors with requiresGrad/);
  assert.throws(() => new SGD([fromArray([1], [1])], { lr: 0.1 }), TypeError);
});
