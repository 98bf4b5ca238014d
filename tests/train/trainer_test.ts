import assert from "node:assert/strict";
import { cpu, type Device, synchronize, tryAllGpus } from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { loadMnist, mulberry32 } from "../../lib/train/mnist.ts";
import { trainEpoch } from "../../lib/train/epoch.ts";
import { mlp, Trainer } from "../../lib/train/trainer.ts";
import { assertClose } from "../assert_close.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });

interface Dims {
  inputs: number;
  hidden: number;
  outputs: number;
}

/**
 * The mean loss of the MLP in float64, written apart from the kernels. The parameters are
 * in `parameters()` order, laid out as PyTorch's: weights `[out, in]`, then biases.
 */
function lossRef(p: Float64Array[], x: Float32Array, y: Float32Array, dims: Dims): number {
  const { inputs, hidden, outputs } = dims;
  const [w1, b1, w2, b2] = p;
  let total = 0;
  for (let r = 0; r < y.length; r++) {
    const h = Array.from({ length: hidden }, (_, j) => {
      let s = b1[j];
      for (let k = 0; k < inputs; k++) s += x[r * inputs + k] * w1[j * inputs + k];
      return Math.max(0, s);
    });
    const z = Array.from({ length: outputs }, (_, j) => {
      let s = b2[j];
      for (let k = 0; k < hidden; k++) s += h[k] * w2[j * hidden + k];
      return s;
    });
    const m = Math.max(...z);
    total += Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) + m - z[y[r]];
  }
  return total / y.length;
}

function uniform(length: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length }, () => r() * 2 - 1);
}

const parameters = (t: Trainer, replica = 0): Promise<Float32Array[]> =>
  Promise.all(t.dp.replicas[replica].parameters().map((p) => p.data()));

/** Drops what a step returns (the caller owns it), as trainEpoch does once it read it. */
function step(t: Trainer, x: Float32Array, y: Float32Array, rows: number): void {
  const out = t.step(x, y, rows);
  for (const z of [...out.losses, ...out.logits]) z.dispose();
}

const stepCases: [string, Device[]][] = [["the host", [cpu()]], ["two GPUs", [gpu0, gpu1]]];
for (const [name, devices] of stepCases) {
  Deno.test(
    `one step on ${name} moves every parameter by lr times the finite-difference gradient`,
    opts,
    async () => {
      const dims = { inputs: 5, hidden: 4, outputs: 3 };
      const rows = 6;
      const x = uniform(rows * dims.inputs, 1);
      const y = Float32Array.from({ length: rows }, (_, r) => r % dims.outputs);
      const lr = 1;
      const trainer = new Trainer(mlp({ ...dims, seed: 3 }), devices, { lr });
      const before = await parameters(trainer);
      step(trainer, x, y, rows);
      const after = await parameters(trainer);
      const replicas = trainer.dp.replicas.map((_, r) => parameters(trainer, r));
      for (const [r, other] of (await Promise.all(replicas)).entries()) {
        assert.deepEqual(other, after, `replica ${r} differs`);
      }
      const p64 = before.map((p) => Float64Array.from(p));
      const eps = 1e-6;
      let checked = 0;
      p64.forEach((p, n) => {
        for (let i = 0; i < p.length; i++) {
          const v = p[i];
          p[i] = v + eps;
          const up = lossRef(p64, x, y, dims);
          p[i] = v - eps;
          const down = lossRef(p64, x, y, dims);
          p[i] = v;
          const numeric = (up - down) / (2 * eps);
          const analytic = (before[n][i] - after[n][i]) / lr;
          assert.ok(
            Math.abs(analytic - numeric) <= 1e-4 + 1e-3 * Math.abs(numeric),
            `d loss / d parameter ${n}[${i}]: the step gives ${analytic}, finite differences ` +
              `${numeric}`,
          );
          checked++;
        }
      });
      assert.equal(checked, 4 * 5 + 4 + 3 * 4 + 3);
      trainer.dispose();
    },
  );
}

Deno.test(
  "with staleness 2, three steps on one batch all take their gradients at the start",
  opts,
  async () => {
    const dims = { inputs: 16, hidden: 8, outputs: 4 };
    const rows = 8;
    const x = uniform(rows * dims.inputs, 7);
    const y = Float32Array.from({ length: rows }, (_, r) => r % 4);
    const stale = new Trainer(mlp({ ...dims, seed: 4 }), [gpu0, gpu1], { lr: 0.1, staleness: 2 });
    const sync = new Trainer(mlp({ ...dims, seed: 4 }), [gpu0], { lr: 0.3 });
    const start = await parameters(sync);
    for (let i = 0; i < 3; i++) step(stale, x, y, rows);
    assert.notDeepEqual(await parameters(stale), start, "no update was applied in 3 steps");
    stale.flush();
    stale.flush(); // nothing pending: no second update
    step(sync, x, y, rows);
    const [a, b, c] = await Promise.all([
      parameters(stale),
      parameters(stale, 1),
      parameters(sync),
    ]);
    assert.deepEqual(a, b, "the replicas differ");
    c.forEach((want, i) => assertClose(a[i], want, 1e-5, `parameter ${i}`));
    stale.dispose();
    sync.dispose();
    assert.ok(stale.dp.parameters().every((p) => p.disposed), "dispose left a parameter");
  },
);

/**
 * Trains a tiny model on `devices` for `max(at)` steps; returns the device buffers alive
 * after each step of `at`, and before and after the trainer's life.
 */
async function liveBuffers(devices: Device[], staleness: number, at: number[]) {
  const dims = { inputs: 4, hidden: 8, outputs: 3 };
  const rows = 6;
  const x = uniform(rows * dims.inputs, 11);
  const y = Float32Array.from({ length: rows }, (_, r) => r % dims.outputs);
  const live = async () => (await synchronize(), engine().liveBuffers().count);
  const before = await live();
  const trainer = new Trainer(mlp({ ...dims, seed: 12 }), devices, { lr: 0.1, staleness });
  const counts: number[] = [];
  for (let s = 1; s <= Math.max(...at); s++) {
    step(trainer, x, y, rows);
    if (at.includes(s)) counts.push(await live());
  }
  trainer.dispose();
  return { before, counts, after: await live() };
}

Deno.test(
  "1,000 training steps on a GPU keep the device buffers flat, and dispose frees them all",
  opts,
  async () => {
    const { before, counts: [at100, at1000], after } = await liveBuffers([gpu0], 0, [100, 1000]);
    assert.equal(at1000, at100, `${at100} buffers after step 100, ${at1000} after 1000`);
    assert.equal(after, before, "the trainer left buffers after dispose");
  },
);

Deno.test(
  "data-parallel steps with staleness 1 on two GPUs keep the device buffers flat",
  opts,
  async () => {
    const { before, counts: [at50, at200], after } = await liveBuffers([gpu0, gpu1], 1, [50, 200]);
    assert.equal(at200, at50, `${at50} buffers after step 50, ${at200} after 200`);
    assert.equal(after, before, "the trainer left buffers after dispose");
  },
);

Deno.test(
  "50 steps on 1,000 digits lower the loss clearly and classify test digits well above chance",
  opts,
  async () => {
    const { train, test } = loadMnist();
    const trainer = new Trainer(mlp({ seed: 1 }), [gpu0, gpu1], { lr: 0.5 });
    const initial = await trainer.evaluate(test);
    let steps = 0;
    let last = { loss: Infinity, steps: 0 };
    for (let epoch = 0; steps < 50; epoch++) {
      const r = await trainEpoch(trainer, train, { batch: 100, limit: 1000, seed: epoch });
      steps += r.steps;
      last = r;
    }
    await synchronize();
    const final = await trainer.evaluate(test);
    trainer.dispose();
    assert.equal(steps, 50);
    // Chance is a loss of ln 10 = 2.3 and an accuracy of 10%.
    assert.ok(initial.loss > 2, `initial test loss ${initial.loss}`);
    assert.ok(last.loss < 0.6 * initial.loss, `training loss ${last.loss} vs ${initial.loss}`);
    assert.ok(final.loss < 0.6 * initial.loss, `test loss ${final.loss} vs ${initial.loss}`);
    assert.ok(final.accuracy > 0.6, `test accuracy ${final.accuracy}`);
  },
);
