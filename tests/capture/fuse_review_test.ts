// A review of the capture fuser (issue 20): tests that pin down what a fused plan may bind
// and compute, beyond tests/capture/fuse_test.ts. Two found a bug, since fixed: the fuser
// counted 0 and -0 as one constant (a Set), while the fused code needs a uniform for each,
// so a group at the constants' limit with both failed to build. "a mean's epilogue that
// subtracts the stored mean gives 0, as unfused" guards the head of an epilogue against a
// compiler contracting the head's multiply with a member's add into one fma (lavapipe does
// not contract; the head now passes its own opaque choice, so a driver that does cannot).
import assert from "node:assert/strict";
import fc from "fast-check";
import { fuseKernels, MAX_FUSED_BINDINGS, type PlannedKernel } from "../../lib/capture/fuse.ts";
import { kernel } from "../../lib/kernels/registry.ts";
import { capture, fromArray, type Tensor, trace$, tryAllGpus } from "../../mod.ts";
import { bin, execute, N, plan, un } from "./fuse_helpers.ts";

/**
 * Asserts what WebGPU allows one dispatch to bind: no buffer both read-only and writable, no
 * buffer written through two bindings, at most {@link MAX_FUSED_BINDINGS} storage buffers,
 * and as many bindings as the kernel declares.
 */
function assertLegalBindings(k: PlannedKernel): void {
  const spec = kernel(k.kernel);
  const outputs = spec.outputTypes(k.params).length;
  const inputs = spec.inputTypes(k.params).length;
  assert.equal(k.bind.length, inputs + outputs, `${k.kernel}: bindings declared`);
  assert.ok(k.bind.length <= MAX_FUSED_BINDINGS, `${k.kernel}: ${k.bind.length} bindings`);
  const read = k.bind.slice(0, inputs);
  const written = k.bind.slice(inputs);
  assert.equal(new Set(written).size, written.length, `${k.kernel} writes a slot twice`);
  for (const s of written) {
    assert.ok(!read.includes(s), `${k.kernel} binds slot ${s} read-only and writable`);
  }
}

/** A chain x -> ... -> y of scalar additions, one a constant (x slot 0, y slot 1). */
function scalarChain(scalars: number[]): PlannedKernel[] {
  return plan(scalars.map((scalar, i) =>
    bin("add", "scalar", [
      i === 0 ? 0 : 100 + i - 1,
      i === scalars.length - 1 ? 1 : 100 + i,
    ], { scalar })
  ));
}

Deno.test("0 and -0 are two constants of a fused kernel, as the unfused kernels have them", () => {
  // -0 + -0 is -0, -0 + 0 is 0: one uniform for both would lose a sign.
  const ks = plan([
    bin("mul", "scalar", [0, 2], { scalar: 0 }),
    bin("add", "scalar", [2, 1], { scalar: -0 }),
    bin("add", "scalar", [2, 3], { scalar: 0 }),
  ]);
  const out = fuseKernels(ks, (s) => s < 2 || s === 3);
  assert.deepEqual(out.map((k) => k.kernel), ["fused"]);
  const uniforms = kernel("fused").uniforms(out[0].params);
  // n / 4, opaque, then 0 (the factor), -0, and nothing more but padding.
  assert.ok(Object.is(uniforms[2], 0) && Object.is(uniforms[3], -0), `${uniforms.slice(0, 5)}`);
  const memory = () => [
    Float32Array.from({ length: N }, (_, i) => i % 2 ? -1 - i : i),
    new Float32Array(N),
    new Float32Array(N),
    new Float32Array(N),
  ];
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual([b[1], b[3]], [a[1], a[3]]);
  assert.ok(Object.is(b[1][1], -0) && Object.is(b[3][1], 0));
});

Deno.test("0 and -0 at the constants' limit: a fused group still compiles", () => {
  // FAILS (bug): 61 constants and both zeros are 63 uniforms; the fuser counts 62.
  const ks = scalarChain([...Array.from({ length: 61 }, (_, i) => i + 1), 0, -0]);
  const out = fuseKernels(ks, (s) => s < 2);
  for (const k of out) {
    const spec = kernel(k.kernel);
    assert.doesNotThrow(() => spec.wgsl(k.params), `${k.kernel} of ${k.ops.length} ops`);
    assert.doesNotThrow(() => spec.uniforms(k.params));
  }
});

Deno.test("0 and -0 at the constants' limit: a sum's prologue still compiles", () => {
  // FAILS (bug): a sum's prologue may have 60 constants; 59 and both zeros are 61.
  const chain = scalarChain([...Array.from({ length: 59 }, (_, i) => i + 1), 0, -0]);
  const ks = plan([
    ...chain,
    { kernel: "sum_rows", params: { rows: 2, cols: 4 }, bind: [1, 2], ops: [] },
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s === 2);
  for (const k of out) {
    const spec = kernel(k.kernel);
    assert.doesNotThrow(() => spec.wgsl(k.params), `${k.kernel} of ${k.ops.length} ops`);
  }
});

Deno.test("a loss whose logits load nothing (a fill) reads its labels as in0", () => {
  // softmax_cross_entropy(full(0.5), labels): the prologue loads no binding, so the labels,
  // in1 of the loss, are the kernel's first binding.
  const ks = plan([
    { kernel: "fill", params: { n: N, value: 0.5 }, bind: [2] },
    {
      kernel: "softmax_cross_entropy",
      params: { rows: 2, cols: 4, scale: 0.5 },
      bind: [2, 0, 3, 4],
    },
  ]);
  const out = fuseKernels(ks, (s) => s !== 2);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind]), [
    ["softmax_cross_entropy_prologue", [0, 3, 4]],
  ]);
  const spec = kernel(out[0].kernel);
  assert.deepEqual(spec.inputTypes(out[0].params), ["f32"]);
  const wgsl = spec.wgsl(out[0].params);
  assert.match(wgsl, /let label = in0\[r\];/);
  assert.doesNotMatch(wgsl, /\bin1\b/);
  assertLegalBindings(out[0]);
  const memory = () => [
    Float32Array.of(3, 1),
    new Float32Array(N),
    new Float32Array(N),
    new Float32Array(2),
    new Float32Array(N),
  ];
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual([b[3], b[4]], [a[3], a[4]]);
});

Deno.test("a detached copy read by two packed updates binds its source twice, read-only", () => {
  // t = x.detach(); a.sub_(t); b.sub_(x): both updates read x, and are one dispatch.
  const ks = plan([
    un("copy", [0, 1]),
    { kernel: "sub_inplace", params: { n: N, alpha: 0.5 }, bind: [1, 2] },
    { kernel: "sub_inplace", params: { n: 4, alpha: 0.25 }, bind: [0, 3] },
  ]);
  const out = fuseKernels(ks, (s) => s !== 1);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind]), [["fused_multi", [0, 0, 2, 3]]]);
  assertLegalBindings(out[0]);
  // Updating x in place after the copy keeps the copy, and the updates read it, not x.
  const updated = plan([...ks, {
    kernel: "sub_inplace",
    params: { n: N, alpha: 1 },
    bind: [3, 0],
  }]);
  const fused = fuseKernels(updated, (s) => s !== 1);
  assert.ok(fused.some((k) => k.ops.includes(0)), "the copy is computed");
  for (const k of fused) assertLegalBindings(k);
  const memory = () =>
    [0, 1, 2, 3].map((s) => Float32Array.from({ length: N }, (_, i) => s + i / 8));
  const [a, b] = [memory(), memory()];
  execute(updated, a);
  execute(fused, b);
  for (const s of [0, 2, 3]) assert.deepEqual(b[s], a[s], `slot ${s}`);
});

Deno.test("a sum's prologue and epilogue may both load its input: two read-only bindings", () => {
  // y = sqrt(sum(x * x)) + x over rows of one element: x (slot 0) is loaded by the prologue
  // and by the epilogue, and written by neither.
  const ks = plan([
    bin("mul", "same", [0, 0, 1]),
    { kernel: "sum_rows", params: { rows: 8, cols: 1 }, bind: [1, 2] },
    un("sqrt", [2, 3]),
    bin("add", "same", [3, 0, 4]),
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s === 4);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind]), [["sum_rows_prologue_epilogue", [0, 0, 4]]]);
  assertLegalBindings(out[0]);
  // The reduction reads through the prologue; the epilogue's load follows the prologue's.
  const wgsl = kernel(out[0].kernel).wgsl(out[0].params);
  assert.match(wgsl, /acc = acc \+ prologue\(base \+ j\);/);
  assert.match(wgsl, /epilogue\(u\.scale \* partial\[0\], row\);/);
  assert.match(wgsl, /let l0 = in1\[idx\];/);
  const memory = () =>
    Array.from({ length: 5 }, (_, s) => Float32Array.from({ length: N }, (_, i) => s - i / 3));
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual(b[4], a[4]);
});

/**
 * A random segment as capture records one: every value a fresh slot (10 on), in-place
 * updates of the inputs (slots 0 and 1, 8 elements; 2 is a row of 4, 3 one element) or of
 * made values, copies, reductions that keep the length (rows of 1, softmaxes of [2, 4]) and
 * matmuls.
 */
const ssaArb = fc.array(
  fc.record({
    kind: fc.constantFrom("binary", "unary", "copy", "sub_", "copy_", "sum", "softmax", "matmul"),
    op: fc.constantFrom("add", "sub", "mul", "div"),
    fn: fc.constantFrom("relu", "neg", "exp", "tanh"),
    broadcast: fc.constantFrom("same", "row", "one", "scalar"),
    a: fc.nat(),
    b: fc.nat(),
    value: fc.constantFrom(0, -0, 0.5, -2, 3),
  }),
  { minLength: 1, maxLength: 20 },
);
type Ssa = typeof ssaArb extends fc.Arbitrary<infer T> ? T : never;

function ssaKernels(gen: Ssa): { kernels: PlannedKernel[]; slots: number } {
  const ks: Omit<PlannedKernel, "ops">[] = [];
  const values = [0, 1];
  let next = 10;
  const pick = (i: number) => values[i % values.length];
  const fresh = () => {
    const s = next++;
    values.push(s);
    return s;
  };
  for (const g of gen) {
    const a = pick(g.a);
    if (g.kind === "binary") {
      const b = g.broadcast === "row" ? 2 : g.broadcast === "one" ? 3 : pick(g.b);
      const bind = g.broadcast === "scalar" ? [a] : [a, b];
      ks.push(bin(g.op, g.broadcast, [...bind, fresh()], { cols: 4, scalar: g.value }));
    } else if (g.kind === "unary") ks.push(un(g.fn, [a, fresh()]));
    else if (g.kind === "copy") ks.push(un("copy", [a, fresh()]));
    else if (g.kind === "sub_" || g.kind === "copy_") {
      const target = pick(g.b);
      if (target === a) continue;
      const params = g.kind === "sub_" ? { n: N, alpha: g.value } : { n: N };
      ks.push({
        kernel: g.kind === "sub_" ? "sub_inplace" : "copy_inplace",
        params,
        bind: [a, target],
      });
    } else if (g.kind === "sum") {
      const params = { rows: 8, cols: 1, op: g.value > 0 ? "max" : "sum", scale: 0.5 };
      ks.push({ kernel: "sum_rows", params, bind: [a, fresh()] });
    } else if (g.kind === "softmax") {
      const name = g.b % 2 ? "softmax" : "log_softmax";
      ks.push({ kernel: name, params: { outer: 2, mid: 4, inner: 1 }, bind: [a, fresh()] });
    } else {
      const b = pick(g.b);
      ks.push({
        kernel: "matmul",
        params: { M: 2, N: 4, K: 2, transA: false, transB: false },
        bind: [a, b, fresh()],
      });
    }
  }
  return { kernels: plan(ks), slots: next };
}

Deno.test("fused plans of captured-like segments bind legally and compute the unfused values", () => {
  fc.assert(
    fc.property(ssaArb, fc.nat(), (gen, kept) => {
      const { kernels, slots } = ssaKernels(gen);
      // The inputs, the last value and one more are handed on.
      const handedOn = new Set([0, 1, 2, 3, slots - 1, 10 + (kept % Math.max(1, slots - 10))]);
      const out = fuseKernels(kernels, (s) => handedOn.has(s));
      for (const k of out) assertLegalBindings(k);
      for (const k of out) assert.doesNotThrow(() => kernel(k.kernel).wgsl(k.params), k.kernel);
      const memory = () =>
        Array.from({ length: slots }, (_, s) =>
          Float32Array.from(
            { length: s === 2 ? 4 : s === 3 ? 1 : N },
            (_, i) => Math.sin(s * 5 + i) * 2,
          ));
      const [a, b] = [memory(), memory()];
      execute(kernels, a);
      execute(out, b);
      for (const s of handedOn) if (s < slots) assert.deepEqual(b[s], a[s], `slot ${s}`);
    }),
    { numRuns: 400, seed: 0x2e71e },
  );
});

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a mean's epilogue that subtracts the stored mean gives 0, as unfused",
  opts,
  async () => {
    const [gpu] = await tryAllGpus({ count: 1 });
    // Means of rows of 10 (scale 0.1, inexact): the product's rounding is what an fma keeps.
    const xs = Array.from({ length: 640 }, (_, i) => Math.sin(i * 1.3) * 3 + 0.1);
    const x = fromArray(xs, [64, 10], { device: gpu });
    const mean = x.mean(1);
    await mean.data();
    const results: Float32Array[] = [];
    for (const fuse of [true, false]) {
      const step = capture((x: Tensor, m: Tensor) => [x.mean(1).sub(m)], { fuse });
      for (let i = 0; i < 2; i++) step.replay(x, mean);
      const names: string[] = [];
      const sub = trace$().subscribe((e) => names.push(...(e.kernels ?? [])));
      const [out] = step.replay(x, mean) as Tensor[];
      results.push(await out.data());
      sub.unsubscribe();
      step.dispose();
      assert.deepEqual(names, fuse ? ["fused(mean, sub)"] : ["mean", "sub"]);
    }
    const nonzero = (v: Float32Array) => [...v.keys()].filter((i) => !Object.is(v[i], 0));
    assert.deepEqual(nonzero(results[1]), [], "unfused");
    assert.deepEqual(nonzero(results[0]), [], "fused: the rounding of scale * sum is lost");
  },
);
