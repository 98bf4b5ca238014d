/**
 * Habits a PyTorch user brings that used to train nothing, or drift, without a word: an
 * optimizer made before `model.to(device)`, a DataParallel trained through
 * `model.parameters()`, an optimizer given the model itself.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  Adam,
  cpu,
  DataParallel,
  type Device,
  fromArray,
  Linear,
  ReLU,
  Sequential,
  SGD,
  type Tensor,
  tryAllGpus,
} from "../../mod.ts";
import { assertClose } from "../assert_close.ts";

const gpus = await tryAllGpus({ count: 2 });
const devices: Device[] = [cpu(), ...gpus.slice(0, 1)];

const x = fromArray(Array.from({ length: 24 }, (_, i) => Math.sin(i)), [8, 3]);
const y = fromArray([0, 1, 1, 0, 1, 0, 0, 1], [8]);
const model = () =>
  new Sequential(new Linear(3, 4, { seed: 1 }), new ReLU(), new Linear(4, 2, { seed: 2 }));

async function values(ps: Tensor[]): Promise<Float32Array[]> {
  return await Promise.all(ps.map((p) => p.data()));
}

for (const device of devices) {
  Deno.test(`an optimizer made before model.to(${device.name}) trains the moved parameters`, async () => {
    const reference = model();
    const refOpt = new SGD(reference.parameters(), { lr: 0.5 });
    const moved = model();
    const before = moved.parameters();
    const opt = new SGD(moved.parameters(), { lr: 0.5 });
    moved.to(device);
    assert.deepEqual(moved.parameters(), before, "the parameters keep their identity");
    assert.ok(moved.parameters().every((p) => p.device === device && p.requiresGrad));
    const xd = x.to(device);
    const yd = y.to(device);
    for (let i = 0; i < 3; i++) {
      for (const [net, o, xs, ys] of [[reference, refOpt, x, y], [moved, opt, xd, yd]] as const) {
        o.zeroGrad();
        net.forward(xs).crossEntropy(ys).backward();
        o.step();
      }
    }
    const want = await values(reference.parameters());
    const got = await values(moved.parameters());
    got.forEach((g, i) => assertClose(g, want[i], 1e-5, `parameter ${i}`));
    assert.notDeepEqual(got[0], await values([model().parameters()[0]]).then((v) => v[0]));
  });
}

const dpDevices = gpus.length >= 2 ? [[cpu(), cpu()], gpus.slice(0, 2)] : [[cpu(), cpu()]];
for (const ds of dpDevices) {
  const names = ds.map((d) => d.name).join(", ");
  Deno.test(`DataParallel on ${names} trains the same through model.parameters() as through dp.parameters()`, async () => {
    const results: Float32Array[][] = [];
    for (const through of ["dp", "model"] as const) {
      const net = model();
      const dp = new DataParallel(net, ds);
      const opt = new SGD(through === "dp" ? dp.parameters() : net.parameters(), { lr: 0.5 });
      for (let i = 0; i < 4; i++) {
        opt.zeroGrad();
        dp.forwardBackward(x, y, (out, labels) => out.crossEntropy(labels));
        opt.step();
      }
      // One more forward pass brings the replicas in line; every replica then agrees.
      dp.forwardBackward(x, y, (out, labels) => out.crossEntropy(labels));
      const replicas = await Promise.all(dp.replicas.map((r) => values(r.parameters())));
      for (const r of replicas.slice(1)) {
        r.forEach((p, i) => assertClose(p, replicas[0][i], 1e-6, `replica parameter ${i}`));
      }
      results.push(replicas[0]);
    }
    results[1].forEach((p, i) => assertClose(p, results[0][i], 1e-5, `parameter ${i}`));
  });
}

Deno.test("a DataParallel replica updated apart from the model is an error naming it", () => {
  const net = model();
  const dp = new DataParallel(net, [cpu(), cpu()]);
  const opt = new SGD(dp.replicas[1].parameters(), { lr: 0.5 });
  dp.forwardBackward(x, y, (out, labels) => out.crossEntropy(labels));
  opt.step();
  assert.throws(
    () => dp.forwardBackward(x, y, (out, labels) => out.crossEntropy(labels)),
    /parameter 0 of replica 1 changed while the model's did not; .*dp\.parameters\(\)/,
  );
});

Deno.test("an optimizer takes a model for its parameters, and says what to pass otherwise", () => {
  const net = model();
  assert.deepEqual(new Adam(net).params, net.parameters());
  assert.equal(new SGD(new DataParallel(model(), [cpu(), cpu()]), { lr: 0.1 }).params.length, 8);
  assert.throws(
    () => new Adam(42 as unknown as Tensor[]),
    (e) => e instanceof TypeError && /pass the parameters \(model\.parameters\(\)/.test(e.message),
  );
  assert.throws(() => new SGD(net, undefined as unknown as { lr: number }), /give \{ lr \}/);
});
