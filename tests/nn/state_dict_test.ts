import assert from "node:assert/strict";
import {
  cpu,
  type Device,
  Dropout,
  fromArray,
  Linear,
  loadSafetensors,
  noGrad,
  ReLU,
  saveSafetensors,
  Sequential,
  tryAllGpus,
} from "../../mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });
const devices: Device[] = gpu ? [cpu(), gpu] : [cpu()];

const mlp = (seed: number, device?: Device) =>
  new Sequential(
    new Linear(3, 4, { seed, device }),
    new ReLU(),
    new Dropout(0.5),
    new Linear(4, 2, { seed: seed + 10, device }),
  );

const values = (m: Sequential) => Promise.all(m.parameters().map((p) => p.data()));

Deno.test("stateDict() holds the parameters themselves under PyTorch's dotted names", () => {
  const m = mlp(1);
  const dict = m.stateDict();
  assert.ok(dict instanceof Map);
  assert.deepEqual([...dict.keys()], [
    "layers.0.weight",
    "layers.0.bias",
    "layers.3.weight",
    "layers.3.bias",
  ]);
  for (const [name, p] of m.namedParameters()) assert.equal(dict.get(name), p);
});

for (const device of devices) {
  Deno.test({
    name: `loadStateDict() on ${device.name} copies values in place: the parameters keep identity`,
    ...opts,
    fn: async () => {
      const source = mlp(1, device);
      const target = mlp(2, device);
      const before = target.parameters();
      assert.notDeepEqual(await values(target), await values(source));
      const result = target.loadStateDict(source.stateDict());
      assert.deepEqual(result, { missingKeys: [], unexpectedKeys: [] });
      assert.deepEqual(await values(target), await values(source));
      target.parameters().forEach((p, i) => {
        assert.equal(p, before[i]);
        assert.ok(p.requiresGrad);
        assert.equal(p.device, device);
      });
      // Still parameters: they train.
      target.forward(fromArray([1, 2, 3], [1, 3], { device })).sum().backward();
      assert.ok(target.parameters().every((p) => p.grad !== undefined));
      // The source's later updates do not reach the copies.
      noGrad(() => source.parameters()[1].copy_(fromArray([9, 9, 9, 9], [4], { device })));
      assert.notDeepEqual(await target.parameters()[1].data(), Float32Array.of(9, 9, 9, 9));
    },
  });
}

Deno.test({
  name: "loadStateDict() copies host values onto a GPU model, and the reverse",
  ignore: !gpu,
  ...opts,
  fn: async () => {
    const host = mlp(1);
    const onGpu = mlp(2, gpu);
    onGpu.loadStateDict(host.stateDict());
    assert.ok(onGpu.parameters().every((p) => p.device === gpu));
    assert.deepEqual(await values(onGpu), await values(host));
    const back = mlp(3);
    back.loadStateDict(onGpu.stateDict());
    assert.deepEqual(await values(back), await values(host));
  },
});

Deno.test("loadStateDict() names missing and unexpected keys, and changes nothing then", async () => {
  const m = mlp(1);
  const old = await values(m);
  const dict = new Map(mlp(2).stateDict());
  dict.delete("layers.0.bias");
  dict.set("layers.9.weight", fromArray([1], [1]));
  assert.throws(() => m.loadStateDict(dict), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /^Cannot load the state dict into Sequential: /);
    assert.match(e.message, /missing keys "layers\.0\.bias"; unexpected keys "layers\.9\.weight"/);
    return true;
  });
  assert.deepEqual(await values(m), old);
  const result = m.loadStateDict(dict, { strict: false });
  assert.deepEqual(result, { missingKeys: ["layers.0.bias"], unexpectedKeys: ["layers.9.weight"] });
  const loaded = await values(m);
  assert.deepEqual(loaded[1], old[1]); // the missing one kept its value
  assert.deepEqual(loaded[0], await dict.get("layers.0.weight")!.data());
});

Deno.test("loadStateDict() names shape mismatches even when not strict, before copying", async () => {
  const m = mlp(1);
  const old = await values(m);
  const dict = {
    ...Object.fromEntries(mlp(2).stateDict()),
    "layers.3.bias": fromArray([1, 2, 3], [3]),
  };
  for (const strict of [true, false]) {
    assert.throws(
      () => m.loadStateDict(dict, { strict }),
      (e: unknown) =>
        e instanceof RangeError &&
        /shapes differ, "layers\.3\.bias" is \[3\] where the parameter is \[2\]/.test(e.message),
    );
  }
  assert.deepEqual(await values(m), old);
  assert.throws(
    () => m.loadStateDict({ "layers.0.weight": 3 } as never, { strict: false }),
    TypeError,
  );
  assert.throws(() => m.loadStateDict(m.stateDict(), { strict: "yes" as never }), TypeError);
});

Deno.test({
  name: "a state dict saved as safetensors loads back into a fresh model",
  ...opts,
  fn: async () => {
    const trained = mlp(1, gpu);
    const path = await Deno.makeTempFile({ suffix: ".safetensors" });
    try {
      await saveSafetensors(path, trained.stateDict());
      const fresh = mlp(2);
      fresh.loadStateDict(await loadSafetensors(path));
      assert.deepEqual(await values(fresh), await values(trained));
    } finally {
      await Deno.remove(path);
    }
  },
});

for (const device of devices) {
  Deno.test({
    name: `copy_() on ${device.name} overwrites in place, broadcasting and across devices`,
    ...opts,
    fn: async () => {
      const t = fromArray([1, 2, 3, 4, 5, 6], [2, 3], { device });
      const before = t.mul(1);
      assert.equal(t.copy_(fromArray([7, 8, 9, 10, 11, 12], [2, 3], { device })), t);
      assert.deepEqual(await t.data(), Float32Array.of(7, 8, 9, 10, 11, 12));
      assert.deepEqual(await before.data(), Float32Array.of(1, 2, 3, 4, 5, 6));
      t.copy_(fromArray([-1, -2, -3], [3], { device }));
      assert.deepEqual(await t.data(), Float32Array.of(-1, -2, -3, -1, -2, -3));
      t.copy_(fromArray([0.5, 1.5], [2, 1])); // from the host
      assert.deepEqual(await t.data(), Float32Array.of(0.5, 0.5, 0.5, 1.5, 1.5, 1.5));
      assert.equal(t.copy_(t), t);
      assert.throws(() => t.copy_(fromArray([1, 2], [2], { device })), RangeError);
      const w = fromArray([1], [1], { device, requiresGrad: true });
      assert.throws(() => w.copy_(fromArray([2], [1], { device })), /inside noGrad/);
    },
  });
}
