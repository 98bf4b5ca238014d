import assert from "node:assert/strict";
import { cpu, synchronize, trace$, type TraceEvent, tryAllGpus } from "../../mod.ts";
import { gradientTraffic } from "../../lib/train/traffic.ts";
import { DataParallelMlp, PARAMETER_NAMES } from "../../lib/train/mlp.ts";
import { loadMnist, mulberry32 } from "../../lib/train/mnist.ts";
import { trainEpoch } from "../../lib/train/epoch.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });

type Params = Record<(typeof PARAMETER_NAMES)[number], Float32Array>;

/** The mean loss of the MLP in float64, written apart from the kernels. */
function lossRef(
  p: { [K in keyof Params]: Float64Array },
  x: Float32Array,
  y: Float32Array,
  dims: { inputs: number; hidden: number; outputs: number },
): number {
  const { inputs, hidden, outputs } = dims;
  let total = 0;
  for (let r = 0; r < y.length; r++) {
    const h = Array.from({ length: hidden }, (_, j) => {
      let s = p.b1[j];
      for (let k = 0; k < inputs; k++) s += x[r * inputs + k] * p.w1[k * hidden + j];
      return Math.max(0, s);
    });
    const z = Array.from({ length: outputs }, (_, j) => {
      let s = p.b2[j];
      for (let k = 0; k < hidden; k++) s += h[k] * p.w2[j * hidden + k]; // w2 is [outputs, hidden]
      return s;
    });
    const m = Math.max(...z);
    total += Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) + m - z[y[r]];
  }
  return total / y.length;
}

/**
 * Asserts every parameter of `got` is within 1e-5 of `want` (`what` says how `got` was
 * reached) and, given `start`, that every parameter moved away from it.
 */
function assertParams(got: Params, want: Params, what: string, start?: Params): void {
  for (const name of PARAMETER_NAMES) {
    let moved = 0;
    for (let i = 0; i < want[name].length; i++) {
      assert.ok(
        Math.abs(got[name][i] - want[name][i]) <= 1e-5,
        `${name}[${i}]: ${got[name][i]} ${what}, ${want[name][i]} expected`,
      );
      if (start) moved = Math.max(moved, Math.abs(want[name][i] - start[name][i]));
    }
    if (start) assert.ok(moved > 1e-3, `${name} did not move`);
  }
}

function uniform(length: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length }, () => r() * 2 - 1);
}

Deno.test(
  "one SGD step moves every parameter by lr times the finite-difference gradient",
  opts,
  async () => {
    const dims = { inputs: 5, hidden: 4, outputs: 3 };
    const rows = 6;
    const x = uniform(rows * dims.inputs, 1);
    const y = Float32Array.from({ length: rows }, (_, r) => r % dims.outputs);
    const lr = 1;
    const mlp = new DataParallelMlp([cpu()], { ...dims, lr, seed: 3 });
    const before = await mlp.parameters();
    mlp.step(x, y, rows);
    const after = await mlp.parameters();
    const p64 = Object.fromEntries(
      PARAMETER_NAMES.map((n) => [n, Float64Array.from(before[n])]),
    ) as { [K in keyof Params]: Float64Array };
    const eps = 1e-6;
    let checked = 0;
    for (const name of PARAMETER_NAMES) {
      for (let i = 0; i < p64[name].length; i++) {
        const v = p64[name][i];
        p64[name][i] = v + eps;
        const up = lossRef(p64, x, y, dims);
        p64[name][i] = v - eps;
        const down = lossRef(p64, x, y, dims);
        p64[name][i] = v;
        const numeric = (up - down) / (2 * eps);
        const analytic = (before[name][i] - after[name][i]) / lr;
        assert.ok(
          Math.abs(analytic - numeric) <= 1e-4 + 1e-3 * Math.abs(numeric),
          `d loss / d ${name}[${i}]: the step gives ${analytic}, finite differences ${numeric}`,
        );
        checked++;
      }
    }
    assert.equal(checked, 5 * 4 + 4 + 4 * 3 + 3);
  },
);

Deno.test(
  "one data-parallel step on two devices gives the parameters of one step on one device",
  opts,
  async () => {
    const dims = { inputs: 64, hidden: 32, outputs: 10 };
    const rows = 50;
    const x = uniform(rows * dims.inputs, 2);
    const y = Float32Array.from({ length: rows }, (_, r) => (r * 7) % 10);
    const one = new DataParallelMlp([gpu0], { ...dims, lr: 0.5, seed: 9 });
    const two = new DataParallelMlp([gpu0, gpu1], { ...dims, lr: 0.5, seed: 9 });
    const start = await two.parameters(0);
    one.step(x, y, rows);
    two.step(x, y, rows);
    const [p1, p20, p21] = await Promise.all([
      one.parameters(),
      two.parameters(0),
      two.parameters(1),
    ]);
    for (const name of PARAMETER_NAMES) {
      assert.deepEqual(p20[name], p21[name], `${name}: the replicas differ`);
    }
    assertParams(p20, p1, "on two devices", start);
  },
);

Deno.test(
  "50 steps on 1,000 digits lower the loss clearly and classify test digits well above chance",
  opts,
  async () => {
    const { train, test } = loadMnist();
    const mlp = new DataParallelMlp([gpu0, gpu1], { lr: 0.5, seed: 1 });
    const initial = await mlp.evaluate(test);
    let steps = 0;
    let last = { loss: Infinity, steps: 0 };
    for (let epoch = 0; steps < 50; epoch++) {
      const r = await trainEpoch(mlp, train, { batch: 100, limit: 1000, seed: epoch });
      steps += r.steps;
      last = r;
    }
    await synchronize();
    const final = await mlp.evaluate(test);
    assert.equal(steps, 50);
    // Chance is a loss of ln 10 = 2.3 and an accuracy of 10%.
    assert.ok(initial.loss > 2, `initial test loss ${initial.loss}`);
    assert.ok(last.loss < 0.6 * initial.loss, `training loss ${last.loss} vs ${initial.loss}`);
    assert.ok(final.loss < 0.6 * initial.loss, `test loss ${final.loss} vs ${initial.loss}`);
    assert.ok(final.accuracy > 0.6, `test accuracy ${final.accuracy}`);
  },
);

Deno.test(
  "with staleness 1 each step's gradients come from the weights before the last update",
  opts,
  async () => {
    const dims = { inputs: 64, hidden: 32, outputs: 10 };
    const rows = 40;
    const x = uniform(rows * dims.inputs, 4);
    const y = Float32Array.from({ length: rows }, (_, r) => (r * 3) % 10);
    // Two delayed steps on one batch: both gradients are taken at the initial weights, so
    // they move the weights as one synchronous step with twice the learning rate.
    const stale = new DataParallelMlp([gpu0, gpu1], { ...dims, lr: 0.25, seed: 5, staleness: 1 });
    const sync = new DataParallelMlp([gpu0], { ...dims, lr: 0.5, seed: 5 });
    const start = await sync.parameters();
    stale.step(x, y, rows);
    stale.step(x, y, rows);
    sync.step(x, y, rows);
    const [a, b, c] = await Promise.all([
      stale.parameters(0),
      stale.parameters(1),
      sync.parameters(),
    ]);
    for (const name of PARAMETER_NAMES) {
      assert.deepEqual(a[name], b[name], `${name}: the replicas differ`);
    }
    assertParams(a, c, "after two delayed steps", start);
  },
);

Deno.test("with staleness 1, flush applies the pending update once", opts, async () => {
  const dims = { inputs: 16, hidden: 8, outputs: 4 };
  const rows = 8;
  const x = uniform(rows * dims.inputs, 6);
  const y = Float32Array.from({ length: rows }, (_, r) => r % 4);
  const stale = new DataParallelMlp([gpu0], { ...dims, lr: 0.5, seed: 2, staleness: 1 });
  const sync = new DataParallelMlp([gpu0], { ...dims, lr: 0.5, seed: 2 });
  stale.step(x, y, rows);
  stale.flush();
  stale.flush(); // nothing pending: no second update
  sync.step(x, y, rows);
  const [a, c] = await Promise.all([stale.parameters(), sync.parameters()]);
  for (const name of PARAMETER_NAMES) assert.deepEqual(a[name], c[name], name);
  stale.dispose();
  sync.dispose();
  assert.ok(stale.replicas[0].w1.disposed, "dispose frees the parameters");
});

Deno.test("a staleness that is not a whole number from 0 to 8 is a RangeError", () => {
  for (const staleness of [-1, 1.5, 9]) {
    assert.throws(
      () => new DataParallelMlp([cpu()], { staleness }),
      new RegExp(`staleness must be a whole number from 0 to 8, got ${staleness}`),
    );
  }
});

Deno.test(
  "with staleness 2, three steps on one batch all take their gradients at the start",
  opts,
  async () => {
    const dims = { inputs: 16, hidden: 8, outputs: 4 };
    const rows = 8;
    const x = uniform(rows * dims.inputs, 7);
    const y = Float32Array.from({ length: rows }, (_, r) => r % 4);
    const stale = new DataParallelMlp([gpu0], { ...dims, lr: 0.1, seed: 4, staleness: 2 });
    const sync = new DataParallelMlp([gpu0], { ...dims, lr: 0.3, seed: 4 });
    for (let i = 0; i < 3; i++) stale.step(x, y, rows);
    sync.step(x, y, rows);
    const [a, c] = await Promise.all([stale.parameters(), sync.parameters()]);
    assertParams(a, c, "after three steps delayed by 2");
  },
);

Deno.test(
  "without exchange each replica steps on its own rows, and nothing reaches the host",
  opts,
  async () => {
    const dims = { inputs: 16, hidden: 8, outputs: 4 };
    const rows = 20;
    const x = uniform(rows * dims.inputs, 8);
    const y = Float32Array.from({ length: rows }, (_, r) => r % 4);
    const local = new DataParallelMlp([gpu0, gpu1], { ...dims, lr: 0.4, seed: 6, exchange: false });
    // Replica 0 sees rows 0..9, with the gradient scaled by 1/20: one step on those 10 rows
    // alone (scaled by 1/10) at half the learning rate.
    const half = new DataParallelMlp([gpu0], { ...dims, lr: 0.2, seed: 6 });
    const start = await half.parameters();
    const events: TraceEvent[] = [];
    const sub = trace$().subscribe((e) => events.push(e));
    local.step(x, y, rows);
    await synchronize();
    sub.unsubscribe();
    assert.equal(gradientTraffic(events).total, 0, "no gradient was copied");
    assert.ok(events.every((e) => e.lane !== "host"), "no host op ran");
    half.step(x.subarray(0, 10 * dims.inputs), y.subarray(0, 10), 10);
    const [a0, a1, h] = await Promise.all([
      local.parameters(0),
      local.parameters(1),
      half.parameters(),
    ]);
    assertParams(a0, h, "on replica 0 without exchange", start);
    assert.notDeepEqual(a0.w1, a1.w1, "the replicas drift apart");
  },
);
