import assert from "node:assert/strict";
import {
  Adam,
  capture,
  cpu,
  fromArray,
  Linear,
  SGD,
  synchronize,
  type Tensor,
  trace$,
  type TraceEvent,
  tryAllGpus,
  zeros,
} from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { mlp, Trainer } from "../../lib/train/trainer.ts";
import { data, DIMS } from "./data.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });

async function parameters(t: Trainer): Promise<Float32Array[]> {
  return await Promise.all(t.dp.parameters().map((p) => p.data()));
}

Deno.test(
  "a captured training step replayed on two devices gives the parameters of the step run anew",
  opts,
  async () => {
    const plain = new Trainer(mlp({ ...DIMS, seed: 3 }), [gpu0, gpu1], { lr: 0.3 });
    const captured = new Trainer(mlp({ ...DIMS, seed: 3 }), [gpu0, gpu1], {
      lr: 0.3,
      capture: true,
    });
    for (let step = 0; step < 5; step++) {
      const { images, labels } = data(8, 10 + step);
      const a = plain.step(images, labels, 8);
      const b = captured.step(images, labels, 8);
      assert.deepEqual(await b.losses[0].data(), await a.losses[0].data(), `loss of step ${step}`);
    }
    const [p, c] = [await parameters(plain), await parameters(captured)];
    p.forEach((v, i) => assert.deepEqual(c[i], v, `parameter ${i}`));
    plain.dispose();
    captured.dispose();
  },
);

Deno.test("replay throws before queuing anything for an argument of another shape", opts, () => {
  const w = fromArray([1, 2, 3], [3], { device: gpu0 });
  const step = capture((x) => x.mul(w).sum());
  const x = fromArray([1, 1, 1], [3], { device: gpu0 });
  step.replay(x);
  step.replay(x);
  const short = fromArray([1, 1], [2], { device: gpu0 });
  const onHost = fromArray([1, 1, 1], [3]);
  const before = engine().load()[gpu0.name]?.waiting ?? 0;
  assert.throws(
    () => step.replay(short),
    (e: Error) => e instanceof RangeError && e.message.includes("[2]") && e.message.includes("[3]"),
  );
  assert.throws(() => step.replay(onHost), RangeError); // another device
  assert.equal(engine().load()[gpu0.name]?.waiting ?? 0, before);
});

Deno.test("replay refuses state the step replaces instead of updating in place", () => {
  const fc = new Linear(2, 2, { seed: 1 });
  const x = fromArray([1, 2, 3, 4], [2, 2]);
  let carried = zeros([2, 2]);
  const step = capture((x) => {
    const out = fc.forward(x).add(carried);
    carried.dispose();
    carried = out.detach(); // replaced, not updated in place
    return out;
  });
  step.replay(x); // runs
  step.replay(x); // records a step that reads `carried` and replaces it
  assert.throws(() => step.replay(x), /replaces \(gradients pending with staleness/);
});

for (
  const [name, make] of [
    ["SGD with momentum", (ps: Tensor[]) => new SGD(ps, { lr: 0.1, momentum: 0.9 })],
    ["Adam", (ps: Tensor[]) => new Adam(ps, { lr: 0.05 })],
  ] as const
) {
  Deno.test(`a captured step with ${name} replays its state updates: step for step as run anew`, async () => {
    const x = fromArray([1, 2, 3, 4, 0, 1], [3, 2]);
    const y = fromArray([0, 1, 1], [3]);
    const trained: Float32Array[][] = [];
    for (const captured of [false, true]) {
      const fc = new Linear(2, 2, { seed: 1 });
      const opt = make(fc.parameters());
      const run = (x: Tensor, y: Tensor) => {
        opt.zeroGrad();
        const loss = fc.forward(x).crossEntropy(y);
        loss.backward();
        opt.step();
        return loss;
      };
      const step = captured ? capture(run) : undefined;
      for (let i = 0; i < 6; i++) (step ? step.replay(x, y) : run(x, y)).dispose();
      if (step) assert.equal(step.replays, 4, "steps 3 to 6 were replayed");
      trained.push(await Promise.all(fc.parameters().map((p) => p.data())));
      step?.dispose();
    }
    trained[1].forEach((p, i) => assert.deepEqual([...p], [...trained[0][i]], `parameter ${i}`));
  });
}

Deno.test("replay checks the labels it is given", opts, () => {
  const fc = new Linear(2, 3, { seed: 1, device: gpu0 });
  const step = capture((x, y) => fc.forward(x.to(gpu0)).crossEntropy(y.to(gpu0)));
  step.replay(fromArray([1, 2, 3, 4], [2, 2]), fromArray([0, 2], [2]));
  step.replay(fromArray([1, 2, 3, 4], [2, 2]), fromArray([0, 2], [2]));
  assert.throws(
    () => step.replay(fromArray([1, 2, 3, 4], [2, 2]), fromArray([0, 5], [2])),
    (e: Error) => e instanceof RangeError && e.message.includes("label 5 at row 1"),
  );
});

Deno.test(
  "replayed steps keep device memory flat, and the trace has their segments with their labels",
  opts,
  async () => {
    const t = new Trainer(mlp({ ...DIMS, seed: 4 }), [gpu0, gpu1], { lr: 0.1, capture: true });
    const { images, labels } = data(8, 5);
    const drop = (o: ReturnType<Trainer["step"]>) =>
      [...o.losses, ...o.logits].forEach((x) => x.dispose());
    drop(t.step(images, labels, 8)); // runs
    drop(t.step(images, labels, 8)); // records
    drop(t.step(images, labels, 8));
    await synchronize();
    const live = engine().liveBuffers().count;
    const events: TraceEvent[] = [];
    const sub = trace$().subscribe((e) => events.push(e));
    for (let i = 0; i < 50; i++) drop(t.step(images, labels, 8));
    await synchronize();
    sub.unsubscribe();
    // No growth (other tests' garbage may be collected meanwhile: not more, perhaps fewer).
    assert.ok(engine().liveBuffers().count <= live, `${engine().liveBuffers().count} > ${live}`);
    const ops = events.filter((e) => e.op !== "benchmark" && e.op !== "fromArray");
    assert.ok(ops.length > 0);
    // A segment is one event: the forward, backward and optimizer kernels of each device.
    const segments = ops.filter((e) => e.op === "replay");
    assert.equal(segments.length, 50 * 6);
    assert.ok(segments.some((e) => e.label === "backward"), "backward segments keep their label");
    assert.ok(segments.every((e) => e.lane === "compute" && e.deps.length > 0));
    t.dispose();
  },
);

Deno.test("capture works on the host too", async () => {
  const w = fromArray([1, 1], [2], { device: cpu() });
  const step = capture((x) => {
    const g = x.mul(w);
    w.sub_(g, { alpha: 0.5 });
    return g.sum();
  });
  const x = fromArray([1, 2], [2]);
  assert.deepEqual(await step.replay(x).data(), new Float32Array([3]));
  assert.deepEqual(await step.replay(x).data(), new Float32Array([0.5]));
  assert.deepEqual(await step.replay(x).data(), new Float32Array([0.25]));
  assert.deepEqual(await w.data(), new Float32Array([0.125, 0]));
  assert.equal(step.replays, 1);
});
