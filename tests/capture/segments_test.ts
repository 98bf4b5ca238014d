// Device segments of a captured step: a replay sends each run of kernels on a device as one
// op, which the Worker encodes in one go from what it made once.
import assert from "node:assert/strict";
import { capture, fromArray, synchronize, type Tensor, tryAllGpus } from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { recordOf, wrap } from "../../lib/tensor/tensor.ts";
import { mlp, Trainer } from "../../lib/train/trainer.ts";
import { data, DIMS } from "./data.ts";
import type { WebGpuDevice } from "../../lib/devices/webgpu_device.ts";
import { BatchRunner } from "../../lib/devices/batch_runner.ts";
import { EagerWaits } from "../../lib/devices/eager_waits.ts";
import type { Command, FromWorker } from "../../lib/devices/protocol.ts";
import { getTestDevice } from "../kernels/harness.ts";
import { BROKEN_KERNEL } from "../engine/broken_kernel.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });

Deno.test("a replayed one-device training step is one batch for its device", opts, async () => {
  const plain = new Trainer(mlp({ ...DIMS, seed: 7 }), [gpu0], { lr: 0.3 });
  const captured = new Trainer(mlp({ ...DIMS, seed: 7 }), [gpu0], { lr: 0.3, capture: true });
  const device = gpu0 as WebGpuDevice;
  for (let step = 0; step < 6; step++) {
    const { images, labels } = data(8, 20 + step);
    const a = plain.step(images, labels, 8);
    await synchronize();
    const before = device.batches;
    const b = captured.step(images, labels, 8);
    await synchronize();
    // From the third step on, the step is replayed: uploads and segments in one batch.
    if (step >= 2) assert.equal(device.batches - before, 1, `batches of step ${step}`);
    assert.deepEqual(await b.losses[0].data(), await a.losses[0].data(), `loss of step ${step}`);
  }
  const [p, c] = [plain, captured].map((t) => t.dp.parameters().map((x) => x.data()));
  for (let i = 0; i < p.length; i++) assert.deepEqual(await c[i], await p[i], `parameter ${i}`);
  plain.dispose();
  captured.dispose();
});

Deno.test("a two-device training step is cut where the host's averages come back", opts, () => {
  const t = new Trainer(mlp({ ...DIMS, seed: 8 }), [gpu0, gpu1], { lr: 0.3, capture: true });
  const { images, labels } = data(8, 3);
  // The trainer's capture is internal: count what its recording planned through a twin.
  const step = capture((x: Tensor, y: Tensor) => {
    const out = t.dp.forwardBackward(x, y, (o, l) => o.crossEntropy(l));
    t.opt.step();
    t.opt.zeroGrad();
    return out.losses;
  });
  const x = fromArray(images, [8, DIMS.inputs]);
  const y = fromArray(labels, [8]);
  step.replay(x, y);
  step.replay(x, y);
  const segments = step.segments;
  // Per device: forward, backward, then the optimizer once the averaged gradients are back.
  assert.equal(segments, 6);
  step.dispose();
  t.dispose();
});

Deno.test("a replay whose argument failed fails with the root error", opts, async () => {
  const w = fromArray([1, 2, 3, 4], [4], { device: gpu0 });
  const step = capture((x) => x.mul(w).sum());
  const x = fromArray([1, 1, 1, 1], [4], { device: gpu0 });
  step.replay(x);
  step.replay(x);
  assert.equal(step.segments, 1);
  assert.deepEqual(await step.replay(x).data(), new Float32Array([10]));
  const [bad] = engine().submit({
    name: "broken_kernel",
    kind: "run",
    device: gpu0,
    kernel: BROKEN_KERNEL,
    params: {},
    inputs: [],
    outputShapes: [[4]],
  });
  await assert.rejects(step.replay(wrap(bad)).data(), /broken_kernel/);
  await assert.rejects(synchronize(), /broken_kernel/);
  // The recording still works for good arguments.
  assert.deepEqual(await step.replay(x).data(), new Float32Array([10]));
  step.dispose();
});

/** A runner on a device of its own, and a way to wait for an op's report. */
async function runner() {
  const device = await getTestDevice();
  const waiting = new Map<number, (msg: FromWorker) => void>();
  const route = (msg: FromWorker) => {
    if (msg.type === "read" || msg.type === "read-failed") waiting.get(msg.op)?.(msg);
    else if (msg.type === "done") {
      for (const op of [...msg.ops, ...msg.failures.map((f) => f.op)]) waiting.get(op)?.(msg);
    }
  };
  const r = new BatchRunner(device, new EagerWaits(device.queue), route);
  const report = (op: number) => new Promise<FromWorker>((resolve) => waiting.set(op, resolve));
  return { device, r, report };
}

const add = { op: "add", broadcast: "same", n: 8, cols: 8, scalar: 0 };
const mul = { ...add, op: "mul" };
const write = (op: number, buf: number, values: number[]): Command => ({
  t: "write",
  op,
  buf,
  data: new Float32Array(values).buffer as ArrayBuffer,
});

Deno.test("a segment's bind groups are built once for the buffers it is given", async () => {
  const { device, r, report } = await runner();
  const a = [1, 2, 3, 4, 5, 6, 7, 8];
  const b = [8, 7, 6, 5, 4, 3, 2, 1];
  // inputs a (slot 0), b (slot 1); s = a + b (slot 2), out = s * a (slot 3).
  await r.run([
    {
      t: "define",
      program: 1,
      segment: 0,
      inputs: [32, 32],
      slots: [{ bytes: 32 }, { bytes: 32 }],
      kernels: [
        { kernel: "binary", params: add, bind: [0, 1, 2] },
        { kernel: "binary", params: mul, bind: [2, 0, 3] },
      ],
      outputs: [{ slot: 3, as: "copy" }, { slot: 2, as: "alias" }],
    },
    write(1, 101, a),
    write(2, 102, b),
    write(3, 103, b.map((v) => 2 * v)),
  ], false);
  let op = 10;
  let id = 200;
  const exec = async (inputs: number[]) => {
    const [e, read] = [op++, op++];
    const [out, sum] = [id++, id++];
    const done = report(e);
    const got = report(read);
    await r.run([
      { t: "exec", op: e, program: 1, segment: 0, inputs, outputs: [out, sum] },
      { t: "read", op: read, buf: out, bytes: 32 },
      { t: "free", buf: out },
      { t: "free", buf: sum },
    ], false);
    const d = await done;
    assert.ok(d.type === "done" && d.failures.length === 0, JSON.stringify(d));
    const msg = await got;
    assert.ok(msg.type === "read");
    return [...new Float32Array(msg.data)];
  };
  const want = (bs: number[]) => a.map((v, i) => (v + bs[i]) * v);
  for (let i = 0; i < 3; i++) assert.deepEqual(await exec([101, 102]), want(b));
  assert.equal(r.reuse.segmentGroups, 2);
  // Another buffer for b: only the kernel that binds it gets a new bind group.
  assert.deepEqual(await exec([101, 103]), want(b.map((v) => 2 * v)));
  assert.deepEqual(await exec([101, 102]), want(b));
  assert.equal(r.reuse.segmentGroups, 3);
  await r.destroyAll();
  device.destroy();
});

Deno.test("a segment whose kernel cannot be made fails naming that kernel", async () => {
  const { device, r, report } = await runner();
  const done = report(2);
  await r.run([
    {
      t: "define",
      program: 2,
      segment: 0,
      inputs: [32],
      slots: [{ bytes: 32 }, { bytes: 32 }],
      kernels: [
        { kernel: "binary", params: add, bind: [0, 0, 1] },
        { kernel: "no_such_kernel", params: {}, bind: [1, 2] },
      ],
      outputs: [{ slot: 2, as: "copy" }],
    },
    write(1, 101, [1, 2, 3, 4, 5, 6, 7, 8]),
    { t: "exec", op: 2, program: 2, segment: 0, inputs: [101], outputs: [300] },
  ], false);
  const msg = await done;
  assert.ok(msg.type === "done");
  assert.equal(msg.failures.length, 1);
  assert.equal(msg.failures[0].inner, 1);
  assert.match(msg.failures[0].message, /no_such_kernel/);
  await r.destroyAll();
  device.destroy();
});

Deno.test("a captured step cannot be replayed inside another capture", opts, () => {
  const w = fromArray([1, 2, 3, 4], [4], { device: gpu0 });
  const inner = capture((x) => x.mul(w).sum());
  const x = fromArray([1, 1, 1, 1], [4], { device: gpu0 });
  inner.replay(x);
  inner.replay(x);
  const outer = capture((x) => inner.replay(x).mul(2));
  outer.replay(x); // runs: the inner step replays, nothing records it
  assert.throws(() => outer.replay(x), /inside another capture/);
  inner.dispose();
});

Deno.test(
  "a finished op lets go of its inputs, so a parameter does not hold its history",
  opts,
  async () => {
    const t = new Trainer(mlp({ ...DIMS, seed: 9 }), [gpu0], { lr: 0.3, capture: true });
    const { images, labels } = data(8, 4);
    for (let step = 0; step < 5; step++) t.step(images, labels, 8);
    await synchronize();
    for (const p of t.dp.parameters()) {
      const producer = recordOf(p).producer;
      assert.ok(producer, "a parameter updated by a replay has a producer");
      assert.equal(producer.inputs.length, 0);
      assert.equal(producer.prev, undefined);
    }
    t.dispose();
  },
);
