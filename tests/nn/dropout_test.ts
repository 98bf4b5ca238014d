import assert from "node:assert/strict";
import {
  capture,
  cpu,
  type Device,
  Dropout,
  fromArray,
  Linear,
  Module,
  ones,
  ReLU,
  Sequential,
  SGD,
  type Tensor,
  tryAllGpus,
} from "../../mod.ts";
import { dropoutAt } from "../../lib/kernels/dropout.ts";
import { dropoutMask } from "../../lib/tensor/dropout_mask.ts";
import { zeros } from "../../lib/tensor/creation.ts";
import { assertClose } from "../assert_close.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });
const devices: Device[] = gpu ? [cpu(), gpu] : [cpu()];

/** The mask of call `count` of stream `seed`, from the reference function. */
const expectedMask = (seed: number, count: number, n: number, p: number) =>
  Float32Array.from({ length: n }, (_, i) => dropoutAt(seed, count, i, p, 1 / (1 - p)));

class Net extends Module {
  body = new Sequential(new Linear(4, 4, { seed: 1 }), new ReLU(), new Dropout(0.5));
  heads = [new Dropout(0.1), new Linear(4, 2, { seed: 2 })];
  forward(x: Tensor): Tensor {
    return this.heads[1].forward(this.heads[0].forward(this.body.forward(x)));
  }
}

Deno.test("train() and eval() set training on the module and every child, and return it", () => {
  const net = new Net();
  const modules = () => [net, net.body, ...net.body.layers, ...net.heads] as Module[];
  assert.ok(modules().every((m) => m.training));
  assert.equal(net.eval(), net);
  assert.ok(modules().every((m) => !m.training));
  assert.equal(net.train(), net);
  assert.ok(modules().every((m) => m.training));
  net.body.eval();
  assert.deepEqual(modules().map((m) => m.training), [
    true,
    false,
    false,
    false,
    false,
    true,
    true,
  ]);
  assert.equal(net.train(false), net);
  assert.ok(modules().every((m) => !m.training));
  assert.throws(() => net.train("no" as unknown as boolean), TypeError);
});

Deno.test("Dropout refuses a p outside [0, 1] and a bad seed", () => {
  for (const p of [-0.1, 1.5, NaN, Infinity]) assert.throws(() => new Dropout(p), RangeError);
  assert.throws(() => new Dropout("0.5" as unknown as number), TypeError);
  assert.throws(() => new Dropout(0.5, { seed: -1 }), RangeError);
  assert.throws(() => new Dropout(0.5, { seed: 1.5 }), RangeError);
  assert.equal(new Dropout().p, 0.5);
});

for (const device of devices) {
  Deno.test({
    name: `Dropout on ${device.name} is the identity in eval mode and for p 0, zeros for p 1`,
    ...opts,
    fn: async () => {
      const x = fromArray([1, -2, 3, -4, 5], [5], { device });
      assert.equal(new Dropout(0.5, { seed: 1 }).eval().forward(x), x);
      assert.equal(new Dropout(0, { seed: 1 }).forward(x), x);
      const y = new Dropout(1, { seed: 1 }).forward(x);
      assert.notEqual(y, x);
      assert.deepEqual([...await y.data()].map(Math.abs), [0, 0, 0, 0, 0]);
    },
  });

  Deno.test({
    name: `Dropout on ${device.name} zeroes about p of the elements and scales the rest by 1/(1-p)`,
    ...opts,
    fn: async () => {
      const n = 20000;
      for (const p of [0.2, 0.5, 0.9]) {
        const values = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3 + 0.5);
        const y = await new Dropout(p, { seed: 11 }).forward(
          fromArray(values, [100, 200], { device }),
        )
          .data();
        let dropped = 0;
        for (let i = 0; i < n; i++) {
          if (y[i] === 0) dropped++;
          else assert.equal(y[i], Math.fround(values[i] * Math.fround(1 / (1 - p))));
        }
        // A fixed seed gives a fixed count; the bound is that of a fair draw, not a flaky one.
        assert.ok(Math.abs(dropped / n - p) < 0.02, `p ${p}: ${dropped} of ${n} dropped`);
      }
    },
  });

  Deno.test({
    name: `Dropout on ${device.name} draws a new mask each call, reproducible from the seed`,
    ...opts,
    fn: async () => {
      const p = 0.5;
      const run = async (seed: number) => {
        const drop = new Dropout(p, { seed });
        const x = ones([64], { device });
        return [await drop.forward(x).data(), await drop.forward(x).data()];
      };
      const [a1, a2] = await run(3);
      const [b1, b2] = await run(3);
      const [c1] = await run(4);
      assert.deepEqual(a1, b1);
      assert.deepEqual(a2, b2);
      assert.notDeepEqual(a1, a2);
      assert.notDeepEqual(a1, c1);
      assert.deepEqual(a1, expectedMask(3, 0, 64, p));
      assert.deepEqual(a2, expectedMask(3, 1, 64, p));
    },
  });

  Deno.test({
    name: `gradients flow through Dropout on ${device.name}: the mask, times the output's gradient`,
    ...opts,
    fn: async () => {
      const x = fromArray([1, 2, 3, 4, 5, 6, 7, 8], [2, 4], { device, requiresGrad: true });
      const y = new Dropout(0.25, { seed: 8 }).forward(x);
      assert.ok(y.requiresGrad);
      y.mul(fromArray([1, 2, 3, 4], [4], { device })).sum().backward();
      const mask = expectedMask(8, 0, 8, 0.25);
      assert.deepEqual(await x.grad!.data(), mask.map((m, i) => m * ((i % 4) + 1)));
      assert.deepEqual(await y.data(), mask.map((m, i) => m * (i + 1)));
    },
  });

  Deno.test({
    name: `a captured step with Dropout on ${device.name} draws a fresh mask each replay`,
    ...opts,
    fn: async () => {
      const drop = new Dropout(0.5, { seed: 21 });
      const step = capture((x) => drop.forward(x).mul(1));
      const x = ones([32], { device });
      const masks: Float32Array[] = [];
      for (let i = 0; i < 5; i++) masks.push(await step.replay(x).data());
      assert.equal(step.replays, 3);
      // Warm-up, recording and replays all continue the one stream of the seed.
      masks.forEach((m, k) => assert.deepEqual(m, expectedMask(21, k, 32, 0.5), `call ${k}`));
      assert.equal(new Set(masks.map((m) => m.join())).size, 5);
      step.dispose();
    },
  });
}

for (const device of devices) {
  Deno.test({
    name: `a captured SGD step through Dropout on ${device.name} trains as the uncaptured one`,
    ...opts,
    fn: async () => {
      const make = () => {
        const model = new Sequential(
          new Linear(6, 16, { seed: 1, device }),
          new ReLU(),
          new Dropout(0.5, { seed: 7 }),
          new Linear(16, 3, { seed: 2, device }),
        );
        const opt = new SGD(model.parameters(), { lr: 0.1 });
        const step = (x: Tensor, y: Tensor) => {
          opt.zeroGrad();
          const loss = model.forward(x).crossEntropy(y);
          loss.backward();
          opt.step();
          return loss;
        };
        return { model, step };
      };
      const x = fromArray(Float32Array.from({ length: 24 }, (_, i) => Math.sin(i)), [4, 6], {
        device,
      });
      const y = fromArray([0, 1, 2, 1], [4], { device });
      const plain = make();
      const captured = make();
      const replayed = capture(captured.step);
      for (let i = 0; i < 5; i++) {
        const a = await plain.step(x, y).data();
        const b = await replayed.replay(x, y).data();
        assertClose(b, a, 1e-5, `loss ${i}`);
      }
      assert.equal(replayed.replays, 3);
      for (const [k, p] of plain.model.parameters().entries()) {
        assertClose(
          await captured.model.parameters()[k].data(),
          await p.data(),
          1e-5,
          `param ${k}`,
        );
      }
      replayed.dispose();
    },
  });
}

Deno.test({
  name: "Dropout gives the same bits on the host and on a GPU",
  ignore: !gpu,
  ...opts,
  fn: async () => {
    const shape = [37, 29];
    const hostDrop = new Dropout(0.3, { seed: 123456789 });
    const gpuDrop = new Dropout(0.3, { seed: 123456789 });
    for (let call = 0; call < 3; call++) {
      const h = await hostDrop.forward(ones(shape)).data();
      const g = await gpuDrop.forward(ones(shape, { device: gpu })).data();
      assert.deepEqual(g, h, `call ${call}`);
    }
  },
});

Deno.test("dropoutMask() counts its calls in the counter tensor, wrapping below 2^24", async () => {
  const counter = fromArray([2 ** 24 - 1], [1]);
  const a = await dropoutMask([16], counter, { p: 0.5, seed: 5 }).data();
  assert.deepEqual(a, expectedMask(5, 2 ** 24 - 1, 16, 0.5));
  assert.deepEqual(await counter.data(), Float32Array.of(0));
  assert.deepEqual(
    await dropoutMask([16], counter, { p: 0.5, seed: 5 }).data(),
    expectedMask(5, 0, 16, 0.5),
  );
  assert.throws(() => dropoutMask([2], zeros([2]), { p: 0.5, seed: 1 }), RangeError);
  assert.throws(() => dropoutMask([2], counter, { p: 2, seed: 1 }), RangeError);
});

Deno.test({
  name: "capture() refuses to record a Dropout layer's first call, which would replay one mask",
  ...opts,
  fn: () => {
    const drop = new Dropout(0.5, { seed: 1 }).eval();
    const step = capture((x) => drop.forward(x).mul(1));
    const x = ones([4]);
    step.replay(x); // warm-up: in eval mode, no counter is made
    drop.train();
    assert.throws(() => step.replay(x), /Cannot record a Dropout layer's first call on cpu/);
  },
});
