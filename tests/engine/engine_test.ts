import assert from "node:assert/strict";
import {
  configureEngine,
  cpu,
  fromArray,
  ones,
  OpError,
  rand,
  synchronize,
  type Tensor,
  trace$,
  type TraceEvent,
  tryAllGpus,
  waitAll,
} from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { wrap } from "../../lib/tensor/tensor.ts";
import { BROKEN_KERNEL } from "./broken_kernel.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });

async function traced<T>(work: () => Promise<T>): Promise<{ result: T; events: TraceEvent[] }> {
  const events: TraceEvent[] = [];
  const sub = trace$().subscribe((e) => events.push(e));
  try {
    return { result: await work(), events };
  } finally {
    sub.unsubscribe();
  }
}

Deno.test("a chain of 200 dependent ops gives the right answer", opts, async () => {
  let x: Tensor = ones([64], { device: gpu0 });
  for (let i = 0; i < 200; i++) x = i % 2 === 0 ? x.add(2) : x.mul(0.5);
  // each pair maps v to (v + 2) / 2: the fixed point is 2, reached from 1 as 2 - 2^-100
  const v = await x.data();
  assert.ok(v.every((e) => Math.abs(e - 2) < 1e-6), `got ${v[0]}`);
});

Deno.test(
  "a chain that crosses both devices and the host gives the right answer",
  opts,
  async () => {
    const places = [gpu0, gpu1, cpu()];
    let x: Tensor = fromArray([1, 2, 3], [3], { device: gpu0 });
    for (let i = 0; i < 30; i++) x = x.to(places[i % 3]).add(1);
    assert.deepEqual(await x.data(), new Float32Array([31, 32, 33]));
    assert.equal(x.device, cpu());
  },
);

Deno.test("independent ops on two devices run at the same time", opts, async () => {
  const x0 = rand([256, 256], { device: gpu0, seed: 1 });
  const x1 = rand([256, 256], { device: gpu1, seed: 2 });
  x0.mm(x0).dispose(); // compile the kernel on both devices first: a first use compiles it
  x1.mm(x1).dispose(); // inside the batch, and one device could finish before the other began
  await synchronize();
  const { events } = await traced(async () => {
    for (let i = 0; i < 8; i++) {
      x0.mm(x0).dispose();
      x1.mm(x1).dispose();
    }
    await synchronize();
  });
  const span = (d: string) => {
    const mine = events.filter((e) => e.device === d && e.op === "mm");
    assert.equal(mine.length, 8, `8 products on ${d}`);
    return {
      start: Math.min(...mine.map((e) => e.start)),
      end: Math.max(...mine.map((e) => e.end)),
    };
  };
  const a = span(gpu0.name);
  const b = span(gpu1.name);
  assert.ok(
    a.start < b.end && b.start < a.end,
    `both devices started before either ended: ${JSON.stringify({ a, b })}`,
  );
});

Deno.test("serial mode runs each op to completion before the next", opts, async () => {
  configureEngine({ mode: "serial" });
  try {
    const x0 = rand([128, 128], { device: gpu0, seed: 1 });
    const x1 = rand([128, 128], { device: gpu1, seed: 2 });
    await synchronize();
    const { events, result } = await traced(async () => {
      const ys = [x0.mm(x0), x1.mm(x1), x0.add(1), x1.mul(2), x0.to(cpu()).relu()];
      await synchronize();
      return ys;
    });
    assert.equal(result.length, 5);
    const ops = events.filter((e) => e.op !== "benchmark").sort((p, q) => p.start - q.start);
    assert.equal(ops.length, 6); // 4 ops, the copy and the host relu
    for (let i = 1; i < ops.length; i++) {
      assert.ok(
        ops[i].start >= ops[i - 1].end,
        `${ops[i].op} started before ${ops[i - 1].op} ended`,
      );
    }
  } finally {
    configureEngine({ mode: "parallel" });
  }
});

Deno.test("bad input throws at the call, before anything is queued", opts, async () => {
  const a = rand([4, 3], { device: gpu0 });
  const b = rand([4, 3], { device: gpu1 });
  await synchronize();
  const before = JSON.stringify(engine().load());
  assert.throws(() => a.mm(a), {
    name: "RangeError",
    message: "Cannot multiply as shapes [4, 3] and [4, 3] do not align: inner sizes are 3 and 4",
  });
  assert.throws(() => a.add(b), {
    name: "TypeError",
    message:
      "Cannot add tensors on different devices, gpu:0 and gpu:1: move one with .to(device) first",
  });
  assert.throws(() => a.add(rand([5], { device: gpu0 })), RangeError);
  assert.throws(() => a.mul(NaN), RangeError);
  assert.throws(() => rand([2, 0]), RangeError);
  assert.throws(() => rand([2, 2], { seed: -1 }), RangeError);
  assert.throws(() => fromArray([1, 2, 3], [2, 2]), RangeError);
  assert.throws(() => ones([2], { device: {} as never }), TypeError);
  assert.throws(() => a.sum(2), RangeError);
  assert.throws(
    () => rand([1 << 16, 1 << 16], { device: gpu0 }),
    (e: Error) => e instanceof RangeError && /exceed the device's largest binding/.test(e.message),
  );
  const c = rand([3, 3], { device: gpu0 });
  c.dispose();
  assert.throws(() => c.relu(), {
    name: "TypeError",
    message: "Cannot relu Tensor[3, 3] on gpu:0: it was disposed",
  });
  await assert.rejects(() => c.data(), TypeError);
  await synchronize();
  assert.equal(JSON.stringify(engine().load()), before);
});

function brokenKernel(): Tensor {
  const [out] = engine().submit({
    name: "broken_kernel",
    kind: "run",
    device: gpu0,
    kernel: BROKEN_KERNEL,
    params: {},
    inputs: [],
    outputShapes: [[4]],
  });
  return wrap(out);
}

Deno.test(
  "a failing kernel surfaces at synchronize as an AggregateError naming the op",
  opts,
  async () => {
    const bad = brokenKernel();
    const dependent = bad.add(1).mul(2); // fails too, with the same root error
    const fine = ones([4], { device: gpu0 }).add(1);
    const err = await synchronize(gpu0).then(() => undefined, (e) => e);
    assert.ok(err instanceof AggregateError, `got ${err}`);
    assert.equal(err.errors.length, 1);
    const [opError] = err.errors;
    assert.ok(opError instanceof OpError);
    assert.equal(opError.op, "broken_kernel");
    assert.equal(opError.device, "gpu:0");
    assert.match(opError.createdAt, /engine_test\.ts/);
    assert.match(err.message, /broken_kernel \(op #\d+\) on gpu:0 failed/);
    await assert.rejects(() => dependent.data(), (e: AggregateError) => e.errors[0] === opError);
    assert.deepEqual(await fine.data(), new Float32Array([2, 2, 2, 2]));
    await synchronize(); // reported once, not again
  },
);

Deno.test("errors stay until the synchronisation point of their device", opts, async () => {
  brokenKernel();
  await synchronize(gpu1); // another device: nothing to report there
  await assert.rejects(() => waitAll(), AggregateError);
  await waitAll();
});

Deno.test("dispose() frees a buffer only after the work that reads it is done", opts, async () => {
  await synchronize();
  const before = engine().liveBuffers().count;
  const x = rand([96, 96], { device: gpu0, seed: 4 });
  const slow = rand([192, 192], { device: gpu1, seed: 5 });
  const slow2 = slow.mm(slow);
  slow2.mm(slow).dispose(); // keeps gpu:1 busy
  const y = x.mm(x);
  const x1 = x.to(gpu1);
  const z = x1.add(1); // a cross-device reader
  const xv = await rand([96, 96], { seed: 4 }).data();
  x.dispose();
  const [yv, zv] = await Promise.all([y.data(), z.data()]);
  assert.ok(Math.abs(yv[0] - xv.slice(0, 96).reduce((s, v, k) => s + v * xv[k * 96], 0)) < 1e-3);
  assert.ok(zv.every((v, i) => Math.abs(v - (xv[i] + 1)) < 1e-6));
  for (const t of [y, z, x1, slow, slow2]) t.dispose();
  await synchronize();
  assert.equal(engine().liveBuffers().count, before);
});

Deno.test("the work in flight per device stays within the limit", opts, async () => {
  configureEngine({ maxOpsInFlight: 3 });
  try {
    let most = 0;
    const x = rand([32, 32], { device: gpu0 });
    await synchronize();
    const { events } = await traced(async () => {
      const sub = trace$().subscribe(
        () => (most = Math.max(most, engine().load()[gpu0.name].inflight)),
      );
      for (let i = 0; i < 40; i++) x.mul(1.5).dispose();
      assert.ok(engine().load()[gpu0.name].waiting > 3, "ops wait on the main thread");
      await synchronize();
      sub.unsubscribe();
    });
    assert.equal(events.length, 40);
    assert.ok(most <= 3, `${most} ops were in flight`);
  } finally {
    configureEngine({ maxOpsInFlight: 256 });
  }
});

Deno.test("a blocking copy holds later work back until it has landed", opts, async () => {
  const x = rand([192, 192], { device: gpu0, seed: 1 });
  const w = rand([64, 64], { device: gpu1, seed: 2 });
  await synchronize();
  const { events } = await traced(async () => {
    const y = x.mm(x).to(cpu()); // blocking, as in PyTorch
    const later = w.add(1); // on another device, submitted after the copy
    await Promise.all([y.data(), later.data()]);
    await synchronize();
  });
  const copy = events.find((e) => e.op === "copy")!;
  const add = events.find((e) => e.op === "add")!;
  assert.ok(add.start >= copy.end, `add started at ${add.start}, the copy ended at ${copy.end}`);
});
