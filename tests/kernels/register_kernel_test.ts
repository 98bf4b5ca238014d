// Kernels registered at run time: the host runs their CPU twin, a device Worker (a registry of
// its own) gets their definition before the first batch that uses them, captured segments too.
import assert from "node:assert/strict";
import { capture, cpu, type Device, fromArray, synchronize, tryAllGpus } from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { recordOf, wrap } from "../../lib/tensor/tensor.ts";
import type { Tensor } from "../../mod.ts";
import { kernel, kernelDefinition, registerKernel } from "../../lib/kernels/registry.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0] = await tryAllGpus({ count: 1 });

registerKernel({
  name: "test_affine",
  inputTypes: ["f32"],
  outputTypes: ["f32"],
  uniformFields: [["n", "u32"], ["scale", "f32"]],
  wgsl: `@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < u.n) { out0[g.x] = u.scale * in0[g.x] + 1.0; }
}`,
  workgroups: [2, 1, 1],
  cpu: ([x], p) => [x.map((v) => Number(p.scale) * v + 1)],
});
registerKernel({
  name: "test_no_twin",
  inputTypes: [],
  outputTypes: ["f32"],
  wgsl: "@compute @workgroup_size(1) fn main() { out0[0] = 7.0; }",
});

/** `scale * x + 1` by the registered kernel, on x's device. */
function affine(x: Tensor, scale: number): Tensor {
  const [out] = engine().submit({
    name: "affine",
    kind: "run",
    device: x.device as Device,
    kernel: "test_affine",
    params: { n: x.size, scale },
    inputs: [recordOf(x)],
    outputShapes: [x.shape],
  });
  return wrap(out);
}

const values = Array.from({ length: 100 }, (_, i) => i / 10 - 5);

Deno.test("registerKernel refuses a taken name and bad workgroup counts", () => {
  assert.throws(
    () => registerKernel({ ...kernelDefinition("test_affine")!, name: "unary" }),
    { name: "TypeError", message: 'Cannot register kernel "unary": a kernel of that name exists' },
  );
  assert.throws(
    () => registerKernel({ ...kernelDefinition("test_affine")!, name: "x", workgroups: [0, 1, 1] }),
    RangeError,
  );
  assert.throws(() => kernel("x"), TypeError); // nothing was registered
  assert.equal(kernelDefinition("unary"), undefined); // built-in kernels need no definition
});

Deno.test("the host runs a registered kernel's CPU twin", async () => {
  const out = affine(fromArray(values, [100], { device: cpu() }), 3);
  assert.deepEqual([...await out.data()], values.map((v) => Math.fround(3 * Math.fround(v) + 1)));
});

Deno.test("a registered kernel without a twin fails its op on the host", async () => {
  const [out] = engine().submit({
    name: "no_twin",
    kind: "run",
    device: cpu(),
    kernel: "test_no_twin",
    params: {},
    inputs: [],
    outputShapes: [[1]],
  });
  await assert.rejects(wrap(out).data(), /registered without a CPU twin/);
  await synchronize(); // reported by data(), once
});

Deno.test("a registered kernel runs on a device as its CPU twin does", opts, async () => {
  const x = fromArray(values, [100], { device: gpu0 });
  const host = await affine(fromArray(values, [100], { device: cpu() }), 2).data();
  const [a, b] = await Promise.all([affine(x, 2).data(), affine(affine(x, 2), 2).data()]);
  assert.deepEqual(a, host);
  assert.ok(b.every((v, i) => Math.abs(v - (2 * host[i] + 1)) < 1e-5), `got ${b}`);
});

Deno.test("a captured step replays a registered kernel inside a device segment", opts, async () => {
  const step = capture((x: Tensor) => affine(x.mul(2), 3).add(1));
  const x = fromArray(values, [100], { device: gpu0 });
  const expected = values.map((v) => 6 * v + 2);
  for (let i = 0; i < 3; i++) {
    const got = await step.replay(x).data();
    assert.ok(got.every((v, k) => Math.abs(v - expected[k]) < 1e-4), `replay ${i}: ${got}`);
  }
  assert.equal(step.segments, 1);
  step.dispose();
});
