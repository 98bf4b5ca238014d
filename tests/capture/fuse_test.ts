// The fuser's plans (lib/capture/fuse.ts), on the CPU: which kernels it groups, what it
// stores, and that a fused plan computes what the unfused one does (each member's own CPU
// twin, in order, so equal to the bit), for random elementwise graphs.
import assert from "node:assert/strict";
import fc from "fast-check";
import { fuseKernels, MAX_FUSED_BINDINGS, type PlannedKernel } from "../../lib/capture/fuse.ts";
import { kernel } from "../../lib/kernels/registry.ts";
import { minmaxParams } from "../../lib/kernels/minmax.ts";
import { decodeProgram, type FusedParams, programOf } from "../../lib/kernels/fused.ts";
import { bin, execute, N, plan, un } from "./fuse_helpers.ts";

Deno.test("a chain of elementwise kernels is one kernel that stores only its end", () => {
  // slot 0 input; 1, 2 temporaries; 3 the output.
  const ks = plan([
    bin("mul", "scalar", [0, 1], { scalar: 2 }),
    un("tanh", [1, 2]),
    bin("add", "same", [2, 0, 3]),
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s === 3);
  assert.equal(out.length, 1);
  assert.equal(out[0].kernel, "fused");
  assert.deepEqual(out[0].bind, [0, 3]);
  assert.deepEqual(out[0].ops, [0, 1, 2]);
  const program = programOf(out[0].params as FusedParams);
  assert.deepEqual(program.stores, [{ binding: 1, value: 2 }]);
  assert.equal(program.vec, true);
  const wgsl = kernel("fused").wgsl(out[0].params);
  assert.match(wgsl, /out0\[i\] = v2;/);
  assert.doesNotMatch(wgsl, /out1/);
});

Deno.test("a value read by a kernel outside the group is stored", () => {
  // relu(x) feeds a matmul and another elementwise kernel.
  const ks = plan([
    un("relu", [0, 1]),
    {
      kernel: "matmul",
      params: { m: 2, k: 4, n: 2, transA: false, transB: false },
      bind: [1, 1, 2],
    },
    un("neg", [1, 3]),
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s === 2 || s === 3);
  // relu and neg fuse (the matmul only reads relu's value), and relu's value is stored.
  assert.deepEqual(out.map((k) => k.kernel), ["fused", "matmul"]);
  assert.deepEqual(out[0].bind, [0, 1, 3]);
});

Deno.test("a kernel that needs the group through another kernel starts a group of its own", () => {
  const ks = plan([
    un("relu", [0, 1]),
    { kernel: "sum_rows", params: { rows: 2, cols: 4 }, bind: [1, 2] },
    bin("add", "one", [1, 2, 3]), // reads the sum of the group's value
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s === 3);
  assert.deepEqual(out.map((k) => k.kernel), ["unary", "sum_rows", "binary"]);
});

Deno.test("a copy the segment does not hand on is dropped: its readers read its source", () => {
  // x.detach() feeds a matmul; slot 1 is the copy, 3 the product.
  const ks = plan([
    un("copy", [0, 1]),
    {
      kernel: "matmul",
      params: { M: 2, N: 4, K: 2, transA: false, transB: false },
      bind: [1, 2, 3],
    },
  ]);
  const out = fuseKernels(ks, (s) => s !== 1);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind, k.ops]), [["matmul", [0, 2, 3], [1]]]);
});

Deno.test("a copy stays when it is handed on, updated in place, or its source changes after it", () => {
  const mm = (bind: number[]) => ({
    kernel: "matmul",
    params: { M: 2, N: 4, K: 2, transA: false, transB: false },
    bind,
  });
  const sub_ = (bind: number[]) => ({ kernel: "sub_inplace", params: { n: N, alpha: 1 }, bind });
  // Whether op 0, the copy, is still computed by some kernel.
  const copied = (ks: PlannedKernel[], keep: (s: number) => boolean) =>
    fuseKernels(ks, keep).some((k) => k.ops.includes(0));
  // Handed on: slot 1 leaves the segment.
  assert.ok(copied(plan([un("copy", [0, 1]), mm([1, 2, 3])]), () => true));
  // Updated in place after the copy (slot 1 is written twice).
  assert.ok(copied(plan([un("copy", [0, 1]), sub_([2, 1]), mm([1, 2, 3])]), (s) => s !== 1));
  // The source is updated in place after the copy: the product must read the old values.
  assert.ok(copied(plan([un("copy", [0, 1]), sub_([2, 0]), mm([1, 2, 3])]), (s) => s !== 1));
  // None of these: the copy goes.
  assert.ok(!copied(plan([un("copy", [0, 1]), sub_([2, 3]), mm([1, 2, 4])]), (s) => s !== 1));
});

Deno.test("a matmul's bias and activation become its epilogue, and its product is not stored", () => {
  // h = relu(x [2, 4] @ w [4, 4] + b [4]): slots x 0, w 1, b 2, product 3, sum 4, h 5.
  const ks = plan([
    {
      kernel: "matmul",
      params: { M: 2, N: 4, K: 4, transA: false, transB: false },
      bind: [0, 1, 3],
    },
    bin("add", "row", [3, 2, 4], { cols: 4 }),
    un("relu", [4, 5]),
  ]);
  const out = fuseKernels(ks, (s) => s < 3 || s === 5);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind, k.ops]), [
    ["matmul_epilogue", [0, 1, 2, 5], [0, 1, 2]],
  ]);
  const memory = () =>
    Array.from(
      { length: 6 },
      (_, s) => Float32Array.from({ length: 16 }, (_, i) => Math.sin(s + i)),
    );
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual(b[5].subarray(0, N), a[5].subarray(0, N));
  // Read by another kernel too, the product is stored by the epilogue.
  const also = fuseKernels(
    plan([...ks, { kernel: "sum_rows", params: { rows: 2, cols: 4 }, bind: [3, 6] }]),
    (s) => s < 3 || s === 5 || s === 6,
  );
  assert.equal(also[0].kernel, "matmul_epilogue");
  assert.deepEqual(also[0].bind, [0, 1, 2, 5, 3]);
});

Deno.test("a sum takes the elementwise ops that make its input as a prologue, storing nothing", () => {
  // s = sum_rows(exp(x * 2) + y): slots x 0, y 1, temporaries 2 and 3, s 4.
  const ks = plan([
    bin("mul", "scalar", [0, 2], { scalar: 2 }),
    un("exp", [2, 3]),
    bin("add", "same", [3, 1, 5]),
    { kernel: "sum_rows", params: { rows: 2, cols: 4 }, bind: [5, 4] },
  ]);
  const out = fuseKernels(ks, (s) => s < 2 || s === 4);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind, k.ops]), [
    ["sum_rows_prologue", [0, 1, 4], [0, 1, 2, 3]],
  ]);
  const memory = () =>
    Array.from(
      { length: 6 },
      (_, s) => Float32Array.from({ length: N }, (_, i) => Math.sin(s + i)),
    );
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual(b[4], a[4]);
  // When something else reads the group's value, the group stores it and the sum reads it.
  const shared = fuseKernels(ks, (s) => s < 2 || s === 4 || s === 5);
  assert.deepEqual(shared.map((k) => k.kernel), ["fused", "sum_rows"]);
  // A maximum with the same prologue is another kernel (its code is cached by its variant).
  const maxKs = ks.map((k, i) => i === 3 ? { ...k, params: { ...k.params, op: "max" } } : k);
  const [max] = fuseKernels(maxKs, (s) => s < 2 || s === 4);
  const wgsl = (k: PlannedKernel) => kernel(k.kernel).wgsl(k.params);
  assert.match(wgsl(max), /max_nan/);
  assert.doesNotMatch(wgsl(out[0]), /max_nan/);
});

Deno.test("a softmax takes a prologue: scaled scores plus a mask are never stored", () => {
  // p = softmax(x * 0.125 + mask) along rows of 4: x 0, mask 1 (a row), temporary 2, p 3.
  const ks = plan([
    bin("mul", "scalar", [0, 2], { scalar: 0.125 }),
    bin("add", "row", [2, 1, 4], { cols: 4 }),
    { kernel: "softmax", params: { outer: 2, mid: 4, inner: 1 }, bind: [4, 3] },
  ]);
  const out = fuseKernels(ks, (s) => s < 2 || s === 3);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind, k.ops]), [
    ["softmax_prologue", [0, 1, 3], [0, 1, 2]],
  ]);
  const memory = () =>
    Array.from(
      { length: 5 },
      (_, s) => Float32Array.from({ length: s === 1 ? 4 : N }, (_, i) => Math.sin(s + i) * 9),
    );
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual(b[3], a[3]);
});

Deno.test("a reduction takes a prologue and an epilogue at once: an RMS is one kernel", () => {
  // sqrt(mean(x * x) + 1e-5) of each row: x 0 ([2, 4]), temporaries 1, 2 and 3, result 4.
  const ks = plan([
    bin("mul", "same", [0, 0, 1]),
    { kernel: "sum_rows", params: { rows: 2, cols: 4, scale: 0.25 }, bind: [1, 2] },
    bin("add", "scalar", [2, 3], { n: 2, scalar: 1e-5 }),
    un("sqrt", [3, 4], 2),
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s === 4);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind, k.ops]), [
    ["sum_rows_prologue_epilogue", [0, 4], [0, 1, 2, 3]],
  ]);
  const memory = () =>
    Array.from({ length: 5 }, (_, s) => Float32Array.from({ length: N }, (_, i) => s - i * 0.7));
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual(b[4].subarray(0, 2), a[4].subarray(0, 2));
});

Deno.test("the loss takes a prologue: logits scaled by a temperature are never stored", () => {
  // softmax_cross_entropy(x / 2, labels): x 0 ([2, 4]), labels 1, temporary 2, loss 3, grad 4.
  const ce = (bind: number[]) => ({
    kernel: "softmax_cross_entropy",
    params: { rows: 2, cols: 4, scale: 0.5 },
    bind,
  });
  const ks = plan([bin("div", "scalar", [0, 2], { scalar: 2 }), ce([2, 1, 3, 4])]);
  const out = fuseKernels(ks, (s) => s !== 2);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind, k.ops]), [
    ["softmax_cross_entropy_prologue", [0, 1, 3, 4], [0, 1]],
  ]);
  // The labels binding follows the prologue's loads.
  assert.match(kernel(out[0].kernel).wgsl(out[0].params), /let label = in1\[r\];/);
  const memory = () => [
    Float32Array.from({ length: 8 }, (_, i) => Math.sin(i) * 3),
    Float32Array.of(3, 0),
    new Float32Array(8),
    new Float32Array(2),
    new Float32Array(8),
  ];
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual([b[3], b[4]], [a[3], a[4]]);
  // Labels made in the segment, by a kernel of the logits' length, are stored apart: the
  // loss reads them from memory.
  const labels = plan([
    bin("div", "scalar", [0, 2], { scalar: 2 }),
    bin("mul", "scalar", [0, 5], { scalar: 0 }),
    ce([2, 5, 3, 4]),
  ]);
  const apart = fuseKernels(labels, (s) => s !== 2 && s !== 5);
  assert.deepEqual(apart.map((k) => [k.kernel, k.bind]), [
    ["binary", [0, 5]],
    ["softmax_cross_entropy_prologue", [0, 5, 3, 4]],
  ]);
});

Deno.test("two chains of one length, each read only by its own reduction, are two prologues", () => {
  // softmax(x * x) and sum(exp(x)): x 0, temporaries 1 and 2, results 3 and 4.
  const ks = plan([
    bin("mul", "same", [0, 0, 1]),
    un("exp", [0, 2]),
    { kernel: "softmax", params: { outer: 2, mid: 4, inner: 1 }, bind: [1, 3] },
    { kernel: "sum_rows", params: { rows: 2, cols: 4 }, bind: [2, 4] },
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s >= 3);
  assert.deepEqual(out.map((k) => [k.kernel, k.ops]), [
    ["softmax_prologue", [0, 2]],
    ["sum_rows_prologue", [1, 3]],
  ]);
  // When the product is read elsewhere too, it is stored, and only exp is a prologue.
  const shared = fuseKernels(ks, (s) => s <= 1 || s >= 3);
  assert.deepEqual(shared.map((k) => k.kernel), ["binary", "sum_rows_prologue", "softmax"]);
});

Deno.test("independent updates of parameters of several lengths are one multi-program kernel", () => {
  // SGD's p.sub_(g, lr) for five parameters: p in slots 0..4, g in 5..9, of lengths 8, 4, 3, 8, 1.
  const lengths = [8, 4, 3, 8, 1];
  const ks = plan(lengths.map((n, i) => ({
    kernel: "sub_inplace",
    params: { n, alpha: 0.5 },
    bind: [5 + i, i],
  })));
  const out = fuseKernels(ks, () => true);
  // Two bindings a parameter, eight a kernel: four updates (the two of length 8 are one
  // program), then the fifth on its own.
  assert.deepEqual(out.map((k) => [k.kernel, k.bind, k.ops]), [
    ["fused_multi", [5, 8, 6, 7, 0, 3, 1, 2], [0, 3, 1, 2]],
    ["sub_inplace", [9, 4], [4]],
  ]);
  assert.match(kernel("fused_multi").wgsl(out[0].params), /if \(i < 8u\) \{ part0\(i - 0u\); \}/);
  const memory = () =>
    Array.from(
      { length: 10 },
      (_, s) => Float32Array.from({ length: lengths[s % 5] }, (_, i) => Math.cos(s * 3 + i)),
    );
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  for (let s = 0; s < 5; s++) assert.deepEqual(b[s], a[s], `parameter ${s}`);
  // An update that reads what another writes waits for it: two kernels.
  const chained = plan([
    { kernel: "sub_inplace", params: { n: 4, alpha: 1 }, bind: [1, 0] },
    { kernel: "sub_inplace", params: { n: 3, alpha: 1 }, bind: [0, 2] },
  ]);
  assert.deepEqual(fuseKernels(chained, () => true).map((k) => k.kernel), [
    "sub_inplace",
    "sub_inplace",
  ]);
});

Deno.test("a reduction's result goes through the group that reads it before it is stored", () => {
  // sqrt(mean of each row + 1e-5): x 0 ([2, 4]), the mean 1, temporary 2, result 3.
  const ks = plan([
    { kernel: "sum_rows", params: { rows: 2, cols: 4, scale: 0.25 }, bind: [0, 1] },
    bin("add", "scalar", [1, 2], { n: 2, scalar: 1e-5 }),
    un("sqrt", [2, 3], 2),
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s === 3);
  assert.deepEqual(out.map((k) => [k.kernel, k.bind, k.ops]), [
    ["sum_rows_epilogue", [0, 3], [0, 1, 2]],
  ]);
  assert.match(
    kernel(out[0].kernel).wgsl(out[0].params),
    /epilogue\(u\.scale \* partial\[0\], row\);/,
  );
  const memory = () =>
    Array.from({ length: 4 }, (_, s) => Float32Array.from({ length: N }, (_, i) => s + i * i));
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual(b[3].subarray(0, 2), a[3].subarray(0, 2));
  // The mean itself is stored too when the segment hands it on.
  const kept = fuseKernels(ks, (s) => s !== 2);
  assert.deepEqual(kept.map((k) => [k.kernel, k.bind]), [["sum_rows_epilogue", [0, 3, 1]]]);
  // A group that reads the softmax at other elements (a row broadcast) is no epilogue.
  const broadcast = plan([
    { kernel: "softmax", params: { outer: 2, mid: 4, inner: 1 }, bind: [0, 1] },
    bin("mul", "row", [0, 1, 2], { cols: 4 }),
  ]);
  assert.deepEqual(fuseKernels(broadcast, (s) => s !== 1).map((k) => k.kernel), [
    "softmax",
    "binary",
  ]);
});

Deno.test("maximum and minimum state the broadcasts a fused program reads, no others", () => {
  const reads = (a: number[], b: number[], out: number[]) =>
    kernel("minmax").elementwise!.reads(minmaxParams("maximum", a, b, out));
  assert.deepEqual(reads([3, 4], [3, 4], [3, 4]), ["same", "same"]);
  assert.deepEqual(reads([3, 4], [4], [3, 4]), ["same", { row: 4 }]);
  assert.deepEqual(reads([2, 3, 4], [1, 3, 4], [2, 3, 4]), ["same", { row: 12 }]);
  assert.deepEqual(reads([1], [3, 4], [3, 4]), ["one", "same"]);
  // A column (each row's one element) is read at another element than i % row: not fused.
  assert.equal(reads([3, 4], [3, 1], [3, 4]), undefined);
});

Deno.test("a broadcast read of what the group writes is not fused", () => {
  // t = x + 1 (8 elements); y = x + t[i % 4]: another invocation's t.
  const ks = plan([
    bin("add", "scalar", [0, 1], { scalar: 1 }),
    bin("add", "row", [0, 1, 2], { cols: 4 }),
  ]);
  const out = fuseKernels(ks, (s) => s !== 1);
  assert.deepEqual(out.map((k) => k.kernel), ["binary", "binary"]);
});

Deno.test("kernels move past independent ones to join their group", () => {
  // Interleaved lengths 8 and 1, as an optimizer's update and its bias corrections are.
  const ks = plan([
    bin("mul", "scalar", [0, 1], { scalar: 2 }),
    un("neg", [4, 5], 1),
    un("exp", [1, 2]),
    un("sqrt", [5, 6], 1),
    bin("div", "one", [2, 6, 3]),
  ]);
  const out = fuseKernels(ks, (s) => s === 0 || s === 4 || s === 3);
  // The length-1 group goes first: the division (length 8) reads its one element.
  assert.deepEqual(out.map((k) => [k.kernel, k.ops]), [["fused", [1, 3]], ["fused", [0, 2, 4]]]);
  const memory = () =>
    [0, 1, 2, 3, 4, 5, 6].map((s) => new Float32Array(s >= 4 ? 1 : N).fill(s + 0.5));
  const [a, b] = [memory(), memory()];
  execute(ks, a);
  execute(out, b);
  assert.deepEqual(b[3], a[3]);
});

Deno.test("a group that would bind too many buffers is cut into pieces", () => {
  // The sum of 12 inputs: 12 loads and one store cannot be bound by one kernel.
  const ks: Omit<PlannedKernel, "ops">[] = [bin("add", "same", [0, 1, 100])];
  for (let i = 2; i < 12; i++) ks.push(bin("add", "same", [100 + i - 2, i, 100 + i - 1]));
  const planned = plan(ks);
  const out = fuseKernels(planned, (s) => s < 12 || s === 109);
  assert.ok(out.length >= 2, `${out.length} kernels`);
  for (const k of out) assert.ok(k.bind.length <= MAX_FUSED_BINDINGS, `${k.bind.length} bindings`);
  const memory = () => Array.from({ length: 110 }, (_, s) => new Float32Array(N).fill(s * 0.25));
  const [a, b] = [memory(), memory()];
  execute(planned, a);
  execute(out, b);
  assert.deepEqual(b[109], a[109]);
});

/** Asserts that no program of a multi-program kernel stores a slot another one binds. */
function assertApart(k: PlannedKernel): void {
  const programs = (JSON.parse(String(k.params.programs)) as string[]).map(decodeProgram);
  const loaded = programs.reduce((t, p) => t + p.inputs, 0);
  let [inputAt, storedAt] = [0, loaded];
  const parts = programs.map((p) => {
    const stored = p.types.length - p.inputs;
    const part = {
      binds: [
        ...k.bind.slice(inputAt, inputAt + p.inputs),
        ...k.bind.slice(storedAt, storedAt + stored),
      ],
      stores: k.bind.slice(storedAt, storedAt + stored),
    };
    inputAt += p.inputs;
    storedAt += stored;
    return part;
  });
  for (const [i, a] of parts.entries()) {
    for (const [j, b] of parts.entries()) {
      if (i !== j) assert.ok(a.stores.every((s) => !b.binds.includes(s)), `parts ${i}, ${j}`);
    }
  }
}

/** A random segment over slots 0..11 (0..2 inputs; see {@link sizeOf}), with in-place updates. */
const segmentArb = fc.array(
  fc.record({
    kind: fc.constantFrom(
      "matmul",
      "sum",
      "softmax",
      "binary",
      "unary",
      "fill",
      "copy_inplace",
      "sub_inplace",
      "relu_backward",
      "short",
    ),
    op: fc.constantFrom("add", "sub", "mul", "div"),
    fn: fc.constantFrom("relu", "neg", "exp", "tanh", "sigmoid", "copy"),
    broadcast: fc.constantFrom("same", "row", "one", "scalar"),
    a: fc.nat(9),
    b: fc.nat(9),
    out: fc.nat(9),
    value: fc.float({ noNaN: true, min: -4, max: 4 }),
  }),
  { minLength: 1, maxLength: 24 },
);

/** Slot sizes: 8 elements, but slot 8 is a row of 4, slot 9 one element, 10 and 11 four. */
const sizeOf = (s: number) => s === 8 || s >= 10 ? 4 : s === 9 ? 1 : N;

type Gen = typeof segmentArb extends fc.Arbitrary<infer T> ? T : never;

function toKernels(gen: Gen): PlannedKernel[] {
  const ks: Omit<PlannedKernel, "ops">[] = [];
  for (const g of gen) {
    // Outputs are full-length slots other than the inputs' (a kernel never writes what it reads,
    // unless it is in place).
    const out = 3 + (g.out % 5);
    const a = g.a % 8;
    if (g.kind === "sum") {
      // Sums over rows of 1 and of columns of 1: outputs as long as the input.
      const op = g.value > 0 ? "max" : "sum";
      const params = g.b % 2 === 0 ? { rows: 8, cols: 1, op } : { rows: 1, cols: 8, outer: 1, op };
      if (a !== out) {
        ks.push({ kernel: g.b % 2 === 0 ? "sum_rows" : "sum_cols", params, bind: [a, out] });
      }
    } else if (g.kind === "softmax") {
      // Along rows of 4, or columns of 2 ([2, 4] or [4, 2]); the log-softmax or the
      // log-sum-exp for some.
      const params = g.b % 2 === 0
        ? { outer: 2, mid: 4, inner: 1 }
        : { outer: 1, mid: 4, inner: 2 };
      const name = ["softmax", "log_softmax", "log_sum_exp"][g.out % 3];
      if (name !== "log_sum_exp") {
        if (a !== out) ks.push({ kernel: name, params, bind: [a, out] });
      } else {
        // The log-sum-exp of lines of 2 ([4, 2] or [2, 2, 2]) into slot 10 or 11 (4 elements).
        const lse = g.b % 2 === 0 ? { outer: 4, mid: 2, inner: 1 } : { outer: 2, mid: 2, inner: 2 };
        ks.push({ kernel: name, params: lse, bind: [a, 10 + (g.a % 2)] });
      }
    } else if (g.kind === "matmul") {
      // [2, 2] x [2, 4]: reads the first 4 elements of one slot and all 8 of another.
      const b = g.b % 8;
      if (a === out || b === out) continue;
      ks.push({
        kernel: "matmul",
        params: { M: 2, N: 4, K: 2, transA: false, transB: false },
        bind: [a, b, out],
      });
    } else if (g.kind === "binary") {
      // A row is slot 8 (4 elements) or the first 4 elements of a slot the segment writes.
      const row = g.b % 2 === 0 ? 8 : 3 + (g.b % 5);
      const b = g.broadcast === "row" ? row : g.broadcast === "one" ? 9 : g.b % 8;
      const bind = g.broadcast === "scalar" ? [a, out] : [a, b, out];
      if (bind.slice(0, -1).includes(out)) continue;
      ks.push(bin(g.op, g.broadcast, bind, { cols: 4, scalar: g.value }));
    } else if (g.kind === "unary") {
      if (a !== out) ks.push(un(g.fn, [a, out]));
    } else if (g.kind === "fill") {
      ks.push({ kernel: "fill", params: { n: N, value: g.value }, bind: [out] });
    } else if (g.kind === "short") {
      // Four elements: from the row or slots 10 and 11, into 10 or 11.
      const from = [8, 10, 11][g.a % 3];
      const to = 10 + (g.out % 2);
      if (from !== to) ks.push(un(g.fn, [from, to], 4));
    } else if (g.kind === "relu_backward") {
      const b = g.b % 8;
      if (a !== out && b !== out) {
        ks.push({ kernel: "relu_backward", params: { n: N }, bind: [a, b, out] });
      }
    } else {
      // In place on any full-length slot, inputs included.
      const target = g.out % 8;
      if (a === target) continue;
      const params = g.kind === "sub_inplace" ? { n: N, alpha: g.value } : { n: N };
      ks.push({ kernel: g.kind, params, bind: [a, target] });
    }
  }
  return plan(ks);
}

/**
 * Checks fused plans of random segments against the unfused ones, counting the kernels of
 * each kind the plans hold in `made`.
 */
function checkRandomPlans(made: Map<string, number>, options: fc.Parameters<[Gen, number]>) {
  fc.assert(
    fc.property(segmentArb, fc.nat(7), (gen, kept) => {
      const ks = toKernels(gen);
      const keep = (s: number) => s < 3 || s >= 8 || s === 3 + (kept % 5);
      const out = fuseKernels(ks, keep, 5);
      for (const k of out) made.set(k.kernel, (made.get(k.kernel) ?? 0) + 1);
      // The programs of one dispatch run at once: none stores what another binds.
      for (const k of out.filter((k) => k.kernel === "fused_multi")) assertApart(k);
      assert.ok(out.length <= ks.length);
      for (const k of out) assert.ok(k.bind.length <= 5);
      // Every op is in a kernel, or a copy whose readers read its source instead.
      const ops = out.flatMap((k) => k.ops).sort((x, y) => x - y);
      assert.deepEqual(ops, [...new Set(ops)]);
      for (const [i, k] of ks.entries()) {
        if (!ops.includes(i)) assert.deepEqual([k.kernel, k.params.op], ["unary", "copy"]);
      }
      const memory = () =>
        Array.from(
          { length: 12 },
          (_, s) => Float32Array.from({ length: sizeOf(s) }, (_, i) => Math.sin(s * 7 + i) * 2),
        );
      const [a, b] = [memory(), memory()];
      execute(ks, a);
      execute(out, b);
      for (let s = 0; s < 12; s++) if (keep(s)) assert.deepEqual(b[s], a[s], `slot ${s}`);
    }),
    options,
  );
}

Deno.test("fused plans of random elementwise segments compute the unfused values exactly", () => {
  checkRandomPlans(new Map(), { numRuns: 1000 });
});

Deno.test("fused plans of random segments hold every kind of fused kernel", () => {
  // Seeded, so that the count is the same every run; the test above draws anew each time.
  const made = new Map<string, number>();
  checkRandomPlans(made, { numRuns: 1000, seed: 0x5eed });
  const kinds = ["fused", "fused_multi", "matmul_epilogue"];
  for (const r of ["sum_rows", "sum_cols", "softmax", "log_softmax", "log_sum_exp"]) {
    kinds.push(`${r}_prologue`, `${r}_epilogue`);
  }
  // Both at once are rare in these segments: the softmaxes' (the sums' have unit tests).
  kinds.push("softmax_prologue_epilogue", "log_softmax_prologue_epilogue");
  for (const k of kinds) {
    assert.ok((made.get(k) ?? 0) > 0, `no ${k} among ${[...made.keys()]}`);
  }
});
