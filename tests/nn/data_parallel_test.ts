import assert from "node:assert/strict";
import {
  cpu,
  DataParallel,
  type Device,
  fromArray,
  Linear,
  Module,
  type Optimizer,
  ReLU,
  Sequential,
  SGD,
  synchronize,
  type Tensor,
  trace$,
  type TraceEvent,
  tryAllGpus,
} from "../../mod.ts";
import { mulberry32 } from "../../lib/train/mnist.ts";
import { mlp } from "../../lib/train/trainer.ts";
import { assertClose } from "../assert_close.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });

const DIMS = { inputs: 6, hidden: 8, outputs: 4 };
const crossEntropy = (out: Tensor, y: Tensor) => out.crossEntropy(y);

/** A batch of `rows` samples on the host, as values and as tensors. */
function batch(rows: number, seed: number, dims: { inputs: number; outputs: number } = DIMS) {
  const r = mulberry32(seed);
  const xs = Float32Array.from({ length: rows * dims.inputs }, () => r() * 2 - 1);
  const ys = Float32Array.from({ length: rows }, () => Math.floor(r() * dims.outputs));
  return { xs, ys, x: fromArray(xs, [rows, dims.inputs]), y: fromArray(ys, [rows]) };
}

type Batch = ReturnType<typeof batch>;

/** Rows [from, to) of `b` on `device`. */
function rowsOf(b: Batch, from: number, to: number, device: Device): [Tensor, Tensor] {
  const inputs = b.xs.length / b.ys.length;
  return [
    fromArray(b.xs.subarray(from * inputs, to * inputs), [to - from, inputs], { device }),
    fromArray(b.ys.subarray(from, to), [to - from], { device }),
  ];
}

const values = (m: Module): Promise<Float32Array[]> =>
  Promise.all(m.parameters().map((p) => p.data()));

/** Backward of the mean cross-entropy of `model` on `x`, `y` (on the model's device). */
function backward(model: Module, x: Tensor, y: Tensor): void {
  const out = model.forward(x);
  const loss = out.crossEntropy(y);
  loss.backward();
  for (const t of [out, loss, x, y]) t.dispose();
}

/** One step of `model` alone on the whole batch, on `device`: the reference. */
function referenceStep(model: Module, opt: Optimizer, b: Batch, device: Device): void {
  opt.zeroGrad();
  backward(model, ...rowsOf(b, 0, b.ys.length, device));
  opt.step();
}

/** One data-parallel step; returns the rows each replica took. */
function parallelStep(dp: DataParallel, opt: Optimizer, b: Batch): number[] {
  opt.zeroGrad();
  const r = dp.forwardBackward(b.x, b.y, crossEntropy);
  opt.step();
  for (const t of [...r.losses, ...r.outputs]) t.dispose();
  return r.rows;
}

/** Asserts every parameter is within a float32 tolerance of `want`, and moved from `start`. */
function assertParams(
  got: Float32Array[],
  want: Float32Array[],
  what: string,
  start?: Float32Array[],
): void {
  assert.equal(got.length, want.length, `${what}: parameter count`);
  want.forEach((w, i) => {
    assertClose(got[i], w, 1e-5, `${what}, parameter ${i}`);
    if (start) {
      const moved = Math.max(...w.map((v, k) => Math.abs(v - start[i][k])));
      assert.ok(moved > 1e-3, `${what}: parameter ${i} did not move`);
    }
  });
}

for (const rows of [8, 7]) {
  Deno.test(
    `two replicas on a batch of ${rows} split between them end with the parameters of one ` +
      `device on the whole batch, and equal to each other`,
    opts,
    async () => {
      const ref = mlp({ ...DIMS, seed: 3 }).to(gpu0);
      const refOpt = new SGD(ref.parameters(), { lr: 0.5 });
      const dp = new DataParallel(mlp({ ...DIMS, seed: 3 }), [gpu0, gpu1]);
      const opt = new SGD(dp.parameters(), { lr: 0.5 });
      const start = await values(ref);
      for (let step = 0; step < 3; step++) {
        const b = batch(rows, 20 + step);
        assert.deepEqual(parallelStep(dp, opt, b), [Math.floor(rows / 2), Math.ceil(rows / 2)]);
        referenceStep(ref, refOpt, b, gpu0);
      }
      const [r0, r1, want] = await Promise.all([...dp.replicas.map(values), values(ref)]);
      assert.deepEqual(r0, r1, "the replicas differ");
      assertParams(r0, want, `${rows} rows on two devices`, start);
    },
  );
}

const stalenessCases: [string, Device[]][] = [
  ["two devices", [gpu0, gpu1]],
  ["one device", [gpu0]],
];
for (const [name, devices] of stalenessCases) {
  Deno.test(
    `with staleness 1 on ${name}, each step applies the gradients of the step before, ` +
      `and flush applies the last one once`,
    opts,
    async () => {
      const dp = new DataParallel(mlp({ ...DIMS, seed: 5 }), devices, { staleness: 1 });
      const opt = new SGD(dp.parameters(), { lr: 0.5 });
      // The reference: one device, whole batches, each step's gradients kept for the next.
      const ref = mlp({ ...DIMS, seed: 5 }).to(gpu0);
      const refOpt = new SGD(ref.parameters(), { lr: 0.5 });
      const params = ref.parameters();
      const start = await values(ref);
      let late: (Tensor | undefined)[] = params.map(() => undefined);
      const applyLate = (fresh: (Tensor | undefined)[]) => {
        params.forEach((p, i) => (p.grad = late[i]));
        refOpt.step();
        refOpt.zeroGrad();
        late = fresh;
      };
      for (let step = 0; step < 4; step++) {
        const b = batch(8, 40 + step);
        parallelStep(dp, opt, b);
        backward(ref, ...rowsOf(b, 0, 8, gpu0));
        const fresh = params.map((p) => p.grad);
        params.forEach((p) => (p.grad = undefined));
        applyLate(fresh);
      }
      const beforeFlush = await values(dp.replicas[0]);
      assert.ok(dp.flush(), "no update was pending");
      opt.step();
      opt.zeroGrad();
      assert.equal(dp.flush(), false, "a second update was pending");
      applyLate([]);
      const [r0, want] = await Promise.all([values(dp.replicas[0]), values(ref)]);
      assert.notDeepEqual(r0, beforeFlush, "flush did not move the parameters");
      for (const r of dp.replicas.slice(1)) assert.deepEqual(await values(r), r0);
      assertParams(r0, want, `staleness 1 on ${name}`, start);
    },
  );
}

Deno.test(
  "without exchange each replica steps on its own rows, and no gradient leaves the devices",
  opts,
  async () => {
    const dp = new DataParallel(mlp({ ...DIMS, seed: 6 }), [gpu0, gpu1], { exchange: false });
    const opt = new SGD(dp.parameters(), { lr: 0.4 });
    const b = batch(8, 60);
    await synchronize(); // the replicas' copies of the parameters
    const events: TraceEvent[] = [];
    const sub = trace$().subscribe((e) => events.push(e));
    parallelStep(dp, opt, b);
    await synchronize();
    sub.unsubscribe();
    assert.deepEqual(events.filter((e) => e.op === "copy"), [], "something was copied");
    assert.ok(!events.some((e) => e.op === "add" && e.lane === "host"), "the host summed");
    // Each replica's gradient is its rows' mean scaled by 4/8: one step on those rows alone
    // at half the learning rate.
    const want = await Promise.all([0, 4].map(async (from, d) => {
      const half = mlp({ ...DIMS, seed: 6 }).to([gpu0, gpu1][d]);
      const halfOpt = new SGD(half.parameters(), { lr: 0.2 });
      halfOpt.zeroGrad();
      backward(half, ...rowsOf(b, from, from + 4, [gpu0, gpu1][d]));
      halfOpt.step();
      return await values(half);
    }));
    const [r0, r1] = await Promise.all(dp.replicas.map(values));
    assertParams(r0, want[0], "replica 0 without exchange");
    assertParams(r1, want[1], "replica 1 without exchange");
    assert.notDeepEqual(r0, r1, "the replicas did not drift apart");
  },
);

/** A model that is not an MLP: tanh between two layers, written as a user would. */
class TanhNet extends Module {
  hidden: Linear;
  out: Linear;

  constructor(seed: number) {
    super();
    this.hidden = new Linear(DIMS.inputs, 5, { seed });
    this.out = new Linear(5, DIMS.outputs, { seed: seed + 2 });
  }

  forward(x: Tensor): Tensor {
    return this.out.forward(this.hidden.forward(x).tanh());
  }
}

Deno.test(
  "a user-defined Module with tanh trains data parallel with momentum as on one device",
  opts,
  async () => {
    assert.deepEqual(new TanhNet(1).namedParameters().map(([name]) => name), [
      "hidden.weight",
      "hidden.bias",
      "out.weight",
      "out.bias",
    ]);
    const dp = new DataParallel(new TanhNet(7), [gpu0, gpu1]);
    const opt = new SGD(dp.parameters(), { lr: 0.3, momentum: 0.9 });
    const ref = new TanhNet(7).to(gpu0);
    const refOpt = new SGD(ref.parameters(), { lr: 0.3, momentum: 0.9 });
    const start = await values(ref);
    for (let step = 0; step < 3; step++) {
      const b = batch(9, 70 + step);
      parallelStep(dp, opt, b);
      referenceStep(ref, refOpt, b, gpu0);
    }
    const [r0, r1, want] = await Promise.all([...dp.replicas.map(values), values(ref)]);
    assert.ok(dp.replicas[1] instanceof TanhNet, "the replica is not a TanhNet");
    assert.deepEqual(r0, r1, "the replicas differ");
    assertParams(r0, want, "TanhNet on two devices", start);
  },
);

Deno.test(
  "gradients go to the host in buckets, last layer first, while backward still runs",
  opts,
  async () => {
    const widths = [8, 9, 10, 11, 4];
    const layers = widths.slice(1).flatMap((w, i) => [
      new Linear(widths[i], w, { seed: 80 + 2 * i }),
      new ReLU(),
    ]).slice(0, -1);
    // The last layer's weight and bias fill the first bucket; every other parameter is
    // bigger than what is left, so it gets a bucket of its own.
    const lastLayerBytes = (11 * 4 + 4) * 4;
    const dp = new DataParallel(new Sequential(...layers), [gpu0, gpu1], {
      bucketBytes: lastLayerBytes,
    });
    const opt = new SGD(dp.parameters(), { lr: 0.1 });
    parallelStep(dp, opt, batch(8, 90, { inputs: 8, outputs: 4 })); // compiles the kernels
    await synchronize();
    const events: TraceEvent[] = [];
    const sub = trace$().subscribe((e) => events.push(e));
    parallelStep(dp, opt, batch(8, 91, { inputs: 8, outputs: 4 }));
    await synchronize();
    sub.unsubscribe();
    events.sort((a, b) => a.id - b.id);

    const shapes = dp.replicas[0].parameters().map((p) => p.shape).reverse();
    const key = (s?: readonly number[]) => JSON.stringify(s);
    for (const device of [gpu0, gpu1]) {
      const mine = events.filter((e) => e.device === device.name);
      const sends = mine.filter((e) => e.op === "copy" && e.label === `${device.name}->cpu`);
      assert.deepEqual(sends.map((e) => key(e.shape)), shapes.map(key), `${device.name} order`);
      const lastForward = Math.max(...mine.filter((e) => e.op === "crossEntropy").map((e) => e.id));
      const backward = mine.filter((e) =>
        e.lane === "compute" && e.id > lastForward && e.op !== "sub_"
      );
      const lastBackward = backward.reduce((a, b) => (b.end > a.end ? b : a));
      const firstSend = sends.reduce((a, b) => (b.start < a.start ? b : a));
      assert.ok(firstSend.id < lastBackward.id, `${device.name}: sent after backward was queued`);
      assert.ok(
        firstSend.start < lastBackward.end,
        `${device.name}: the first gradient left at ${firstSend.start} ms, after backward ` +
          `ended at ${lastBackward.end} ms`,
      );
    }
    // The host sums a bucket once the second replica has sent it; the sums of one bucket
    // come between two of its backward ops.
    const buckets: string[][] = [];
    let open = false;
    for (const e of events) {
      if (e.op === "add" && e.lane === "host") {
        if (!open) buckets.push([]);
        buckets[buckets.length - 1].push(key(e.shape));
        open = true;
      } else if (e.device === gpu1.name && e.lane === "compute") open = false;
    }
    assert.deepEqual(buckets, [
      shapes.slice(0, 2).map(key),
      ...shapes.slice(2).map((s) => [key(s)]),
    ]);
    assert.deepEqual(
      buckets[0],
      [key([4]), key([4, 11])],
      "the first bucket is not the last layer",
    );
  },
);

Deno.test("DataParallel rejects no devices, a bad staleness and a batch too small to split", () => {
  assert.throws(() => new DataParallel(new Linear(2, 2), []), RangeError);
  for (const staleness of [-1, 1.5, 9]) {
    assert.throws(
      () => new DataParallel(new Linear(2, 2), [cpu()], { staleness }),
      new RegExp(`staleness ${staleness}: it must be a whole number from 0 to 8`),
    );
  }
  const dp = new DataParallel(new Linear(2, 2), [cpu(), cpu()]);
  assert.throws(
    () => dp.forwardBackward(fromArray([1, 2], [1, 2]), fromArray([0], [1]), crossEntropy),
    /Cannot split a batch of 1 rows/,
  );
});

/** A model users would write: its intermediates are not freed by any library layer. */
class Wiggly extends Module {
  fc1 = new Linear(DIMS.inputs, DIMS.hidden, { seed: 11 });
  fc2 = new Linear(DIMS.hidden, DIMS.outputs, { seed: 12 });
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).tanh().mul(2).sigmoid());
  }
}

Deno.test(
  "a model users write keeps device memory flat on two devices (200 steps)",
  opts,
  async () => {
    const { engine } = await import("../../lib/engine/engine.ts");
    const dp = new DataParallel(new Wiggly(), [gpu0, gpu1]);
    const opt = new SGD(dp.parameters(), { lr: 0.1, momentum: 0.5 });
    const b = batch(8, 21);
    let at50 = -1;
    for (let step = 1; step <= 200; step++) {
      opt.zeroGrad();
      const r = dp.forwardBackward(b.x, b.y, crossEntropy);
      opt.step();
      for (const t of [...r.losses, ...r.outputs]) t.dispose();
      if (step === 50) {
        await synchronize();
        at50 = engine().liveBuffers().count;
      }
    }
    await synchronize();
    assert.equal(engine().liveBuffers().count, at50);
    opt.dispose();
    for (const p of dp.parameters()) p.dispose();
  },
);

Deno.test(
  "DataParallel updates the parameters that were used when a bucket holds an unused one",
  opts,
  async () => {
    class Partly extends Module {
      used = new Linear(DIMS.inputs, DIMS.outputs, { seed: 31 });
      unused = new Linear(DIMS.inputs, DIMS.outputs, { seed: 32 });
      forward(x: Tensor): Tensor {
        return this.used.forward(x);
      }
    }
    const dp = new DataParallel(new Partly(), [gpu0, gpu1], { bucketBytes: 1e9 });
    const opt = new SGD(dp.parameters(), { lr: 0.5 });
    const before = await dp.replicas[0].used.weight.data();
    const unusedBefore = await dp.replicas[0].unused.weight.data();
    const b = batch(8, 33);
    dp.forwardBackward(b.x, b.y, crossEntropy);
    opt.step();
    const after = await dp.replicas[0].used.weight.data();
    assert.ok(after.some((v, i) => v !== before[i]), "the used layer moved");
    assert.deepEqual(await dp.replicas[1].used.weight.data(), after);
    assert.deepEqual(await dp.replicas[0].unused.weight.data(), unusedBefore);
  },
);
