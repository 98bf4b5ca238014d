/**
 * The device conformance suite: what every backend is held to, and what a new or remote one
 * will be. It runs against the host, Deno's WebGPU, Dawn and the fake recording device of
 * fake_device.ts: create, write and read; every kernel of the registry on small inputs
 * against its CPU twin; in-order execution; in-place versions; frees; failures that name
 * the op; copies to and from the host and another backend; and what closing does (later work
 * fails at once). The WebGPU backends run one after the other in this process
 * (`closeDevices()` between), so a copy between Deno's and Dawn's devices is not among the
 * pairs: they never run at once.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  closeDevices,
  cpu,
  type Device,
  Dropout,
  fromArray,
  ones,
  OpError,
  rand,
  randn,
  stack,
  synchronize,
  tryAllGpus,
  zeros,
} from "../../mod.ts";
import { cat } from "../../lib/tensor/join.ts";
import { engine } from "../../lib/engine/engine.ts";
import { recordOf, wrap } from "../../lib/tensor/tensor.ts";
import { capabilitiesOf, isHostVisible } from "../../lib/devices/capabilities.ts";
import type { RunCommand } from "../../lib/devices/protocol.ts";
import { codeFor, kernelCode, KERNELS } from "../../lib/kernels/registry.ts";
import { fuseKernels } from "../../lib/capture/fuse.ts";
import { assertClose } from "../assert_close.ts";
import { FakeDevice } from "./fake_device.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** One kernel run to repeat on every backend: its command and its inputs' values. */
interface KernelCase {
  cmd: RunCommand;
  inputs: Float32Array[];
}

/** Small values, the same every run. */
function values(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3) * 2);
}

/**
 * Runs a small training-like workload on a fake device, which records every kernel it runs
 * with its parameters and inputs: the cases are real calls, as Tensor and autograd make them.
 */
async function recordCases(): Promise<KernelCase[]> {
  const f = FakeDevice.open({ delayMs: 0 });
  const on = { device: f };
  const a = fromArray(values(12, 1), [3, 4], { ...on, requiresGrad: true });
  const b = fromArray(values(8, 2), [4, 2], { ...on, requiresGrad: true });
  const bias = fromArray(values(2, 3), [2], { ...on, requiresGrad: true });
  const h = a.mm(b).add(bias).relu();
  const t3 = fromArray(values(24, 4), [2, 3, 4], { ...on, requiresGrad: true });
  const labels = fromArray([0, 1, 1], [3], on).add(0); // computed: checked on the device
  const index = fromArray([2, 0], [2], on).add(0);
  const gidx = fromArray([0, 2, 1, 0, 1, 2, 2, 0, 1, 0, 0, 2], [3, 4], on).add(0);
  const parts = [
    h.crossEntropy(labels),
    h.logSoftmax(1).sum(),
    h.softmax(0).mul(h.sigmoid()).sum(),
    h.logSumExp(1).sum().add(a.logSumExp(0, { keepdim: true }).sum()),
    a.tanh().neg().exp().sum(0).sum(),
    a.mul(a).add(1).log().sqrt().div(2).sub(a).mean(1).sum(),
    a.max(1).sum(),
    a.max().add(a.transpose().mul(3).sum()),
    a.min(0).sum(),
    a.maximum(a.mul(0.5)).sum().add(a.minimum(fromArray([0.5], [1], on)).sum()),
    a.clamp(-0.5, 0.5).sum(),
    t3.permute(2, 0, 1).mul(fromArray(values(2, 5), [2, 1], on)).sum(),
    t3.add(fromArray(values(4, 6), [1, 1, 4], on)).sum(1).sum(),
    t3.sum(2).sum(),
    t3.narrow(1, 1, 2).sum(),
    t3.slice(2, 0, 4, 2).sum(),
    a.indexSelect(0, index).sum(),
    a.gather(1, gidx).sum(),
    zeros([3, 4], on).scatterAdd(1, gidx, a).sum(),
    zeros([3, 4], on).indexAdd(0, index, a.narrow(0, 0, 2)).sum(),
    cat([a, a.mul(2)], 0).sum(),
    stack([a, a], 1).sum(),
    bias.expandTo([3, 2]).sum(),
    a.matmul(b).sum(),
  ];
  let loss = parts[0];
  for (const p of parts.slice(1)) loss = loss.add(p);
  loss.backward();
  const w = fromArray(values(4, 7), [4], on);
  w.sub_(fromArray(values(4, 8), [4], on), { alpha: 0.5 });
  w.copy_(fromArray(values(4, 9), [4], on));
  const extras = [
    w,
    a.argmax(1),
    a.argmin(0),
    rand([5], { ...on, seed: 3 }),
    randn([6], { ...on, seed: 4 }),
    ones([3], on),
    new Dropout(0.5, { seed: 5 }).forward(ones([8], on)),
    a.grad!,
    b.grad!,
    t3.grad!,
  ];
  await Promise.all(extras.map((t) => t.data()));
  await synchronize(f);
  return f.runs;
}

const CASES = await recordCases();

/** Kernels that only the host runs (they raise the errors of checks): their inputs are made here. */
const HOST_ONLY_CASES: KernelCase[] = [
  {
    cmd: caseCommand("assert_labels", { cols: 2, op: "the cross-entropy" }, 1),
    inputs: [new Float32Array([-1, 1])],
  },
  {
    cmd: caseCommand("assert_indices", { bound: 3, what: "select" }, 1),
    inputs: [new Float32Array([-1, 2])],
  },
];

/**
 * A fused kernel, as a captured step's segments have them (lib/capture/fuse.ts): a chain of
 * elementwise ops with a row broadcast and a one-element operand, run here as an op.
 */
function fusedCase(): KernelCase {
  const n = 8;
  const bin = (op: string, broadcast: string, bind: number[], extra = {}) => ({
    kernel: "binary",
    params: { op, broadcast, n, cols: 4, scalar: 0.5, ...extra },
    bind,
    ops: [0],
  });
  const [k] = fuseKernels([
    bin("mul", "row", [0, 1, 3]),
    { kernel: "unary", params: { op: "tanh", n }, bind: [3, 4], ops: [1] },
    bin("add", "one", [4, 2, 5]),
    bin("sub", "scalar", [5, 6]),
  ], (s) => s < 3 || s === 6);
  assert.equal(k.kernel, "fused");
  return {
    cmd: {
      ...caseCommand("fused", k.params, 1),
      inputs: [0, 1, 2],
      outputs: [{ id: 3, bytes: 4 * n }],
    },
    inputs: [
      new Float32Array(values(n, 10)),
      new Float32Array(values(4, 11)),
      new Float32Array([3]),
    ],
  };
}

/** A matmul with an epilogue (a bias and relu), as the fuser makes it, run here as an op. */
function epilogueCase(): KernelCase {
  const [k] = fuseKernels([
    {
      kernel: "matmul",
      params: { M: 3, N: 4, K: 2, transA: false, transB: false },
      bind: [0, 1, 3],
      ops: [0],
    },
    {
      kernel: "binary",
      params: { op: "add", broadcast: "row", n: 12, cols: 4, scalar: 0 },
      bind: [3, 2, 4],
      ops: [1],
    },
    { kernel: "unary", params: { op: "relu", n: 12 }, bind: [4, 5], ops: [2] },
  ], (s) => s < 3 || s === 5);
  assert.equal(k.kernel, "matmul_epilogue");
  return {
    cmd: {
      ...caseCommand(k.kernel, k.params, 1),
      inputs: [0, 1, 2],
      outputs: [{ id: 3, bytes: 48 }],
    },
    inputs: [
      new Float32Array(values(6, 12)),
      new Float32Array(values(8, 13)),
      new Float32Array(values(4, 14)),
    ],
  };
}

/** Two independent programs of lengths 8 and 3 in one dispatch: tanh(a) and b * 0.5. */
function multiCase(): KernelCase {
  const [k] = fuseKernels([
    { kernel: "unary", params: { op: "tanh", n: 8 }, bind: [0, 2], ops: [0] },
    {
      kernel: "binary",
      params: { op: "mul", broadcast: "scalar", n: 3, cols: 0, scalar: 0.5 },
      bind: [1, 3],
      ops: [1],
    },
  ], () => true);
  assert.equal(k.kernel, "fused_multi");
  return {
    cmd: {
      ...caseCommand("fused_multi", k.params, 1),
      inputs: [0, 1],
      outputs: [{ id: 2, bytes: 4 * 8 }, { id: 3, bytes: 4 * 3 }],
    },
    inputs: [new Float32Array(values(8, 17)), new Float32Array(values(3, 18))],
  };
}

/** The reductions with fused forms, on 8 inputs: each one's parameters and outputs' length. */
const LINES = { outer: 2, mid: 4, inner: 1 };
const REDUCTIONS = [
  ["sum_rows", { rows: 2, cols: 4 }, 2],
  ["sum_cols", { rows: 2, cols: 4, outer: 1 }, 4],
  ["softmax", LINES, 8],
  ["log_softmax", LINES, 8],
  ["log_sum_exp", LINES, 2],
] as const;

/**
 * Reductions with a prologue (exp(x) + y, reduced by each of {@link REDUCTIONS}), run here as
 * ops.
 */
function prologueCases(): KernelCase[] {
  return REDUCTIONS
    .map(([name, params, floats]) => {
      const [k] = fuseKernels([
        { kernel: "unary", params: { op: "exp", n: 8 }, bind: [0, 2], ops: [0] },
        {
          kernel: "binary",
          params: { op: "add", broadcast: "same", n: 8, cols: 0, scalar: 0 },
          bind: [2, 1, 3],
          ops: [1],
        },
        { kernel: name, params, bind: [3, 4], ops: [2] },
      ], (s) => s < 2 || s === 4);
      assert.equal(k.kernel, `${name}_prologue`);
      return {
        cmd: {
          ...caseCommand(k.kernel, k.params, 1),
          inputs: [0, 1],
          outputs: [{ id: 2, bytes: 4 * floats }],
        },
        inputs: [new Float32Array(values(8, 15)), new Float32Array(values(8, 16))],
      };
    });
}

/** The loss with a prologue (its logits halved), its labels read as they are, run here as an op. */
function lossPrologueCase(): KernelCase {
  const [k] = fuseKernels([
    {
      kernel: "binary",
      params: { op: "mul", broadcast: "scalar", n: 8, cols: 0, scalar: 0.5 },
      bind: [0, 2],
      ops: [0],
    },
    {
      kernel: "softmax_cross_entropy",
      params: { rows: 2, cols: 4, scale: 0.5 },
      bind: [2, 1, 3, 4],
      ops: [1],
    },
  ], (s) => s !== 2);
  assert.equal(k.kernel, "softmax_cross_entropy_prologue");
  return {
    cmd: {
      ...caseCommand(k.kernel, k.params, 1),
      inputs: [0, 1],
      outputs: [{ id: 2, bytes: 4 * 2 }, { id: 3, bytes: 4 * 8 }],
    },
    inputs: [new Float32Array(values(8, 20)), new Float32Array([3, 1])],
  };
}

/**
 * Reductions with an epilogue (tanh of twice the result), and with the prologue exp(x) too
 * (`prologue`), run here as ops.
 */
function reductionEpilogueCases(prologue: boolean): KernelCase[] {
  return REDUCTIONS
    .map(([name, params, n]) => {
      const first = prologue
        ? [{ kernel: "unary", params: { op: "exp", n: 8 }, bind: [0, 4], ops: [3] }]
        : [];
      const [k] = fuseKernels([
        ...first,
        { kernel: name, params, bind: [prologue ? 4 : 0, 1], ops: [0] },
        {
          kernel: "binary",
          params: { op: "mul", broadcast: "scalar", n, cols: 0, scalar: 2 },
          bind: [1, 2],
          ops: [1],
        },
        { kernel: "unary", params: { op: "tanh", n }, bind: [2, 3], ops: [2] },
      ], (s) => s === 0 || s === 3);
      assert.equal(k.kernel, `${name}${prologue ? "_prologue" : ""}_epilogue`);
      return {
        cmd: { ...caseCommand(k.kernel, k.params, 1), outputs: [{ id: 1, bytes: 4 * n }] },
        inputs: [new Float32Array(values(8, 19))],
      };
    });
}

function caseCommand(kernel: string, params: RunCommand["params"], outputs: number): RunCommand {
  return {
    t: "run",
    op: 0,
    kernel,
    params,
    inputs: [0],
    outputs: Array.from({ length: outputs }, (_, i) => ({ id: i + 1, bytes: 8 })),
  };
}

/**
 * One case per kernel (the first recorded), plus the host-only ones; for a device whose
 * kernels are not the CPU twins, without those (the engine never sends them there).
 */
function casesByKernel(device?: Device): Map<string, KernelCase> {
  const out = new Map<string, KernelCase>();
  const twins = device === undefined || capabilitiesOf(device).target === "cpu";
  const fusedCases = [
    fusedCase(),
    epilogueCase(),
    multiCase(),
    ...prologueCases(),
    ...reductionEpilogueCases(false),
    ...reductionEpilogueCases(true),
    lossPrologueCase(),
  ];
  for (const c of [...CASES, ...fusedCases, ...(twins ? HOST_ONLY_CASES : [])]) {
    if (!out.has(c.cmd.kernel)) out.set(c.cmd.kernel, c);
  }
  return out;
}

Deno.test("the recorded cases cover every kernel of the registry", () => {
  const covered = casesByKernel();
  const missing = [...KERNELS.keys()].filter((k) => !covered.has(k));
  assert.deepEqual(missing, [], `kernels without a conformance case: ${missing.join(", ")}`);
});

Deno.test("a kernel gives code for targets beyond WGSL and its CPU twin", () => {
  const spec = {
    ...KERNELS.get("unary")!,
    targets: { js: { kind: "function" as const, run: () => [new Float32Array([42])] } },
  };
  const code = codeFor(spec, "js");
  assert.equal(code.kind, "function");
  if (code.kind === "function") assert.deepEqual(code.run([], {}), [new Float32Array([42])]);
  assert.equal(kernelCode("unary", "wgsl").kind, "source");
  assert.throws(() => kernelCode("unary", "js"), /for target "js": it gives code for wgsl, cpu/);
});

/** Runs `c` on `device` through the engine; resolves with its outputs' values. */
async function runCase(device: Device, c: KernelCase): Promise<Float32Array[]> {
  const e = engine();
  const records = c.inputs.map((v) => recordOf(fromArray(v, [v.length], { device })));
  const inPlace = c.cmd.inPlace !== undefined ? records.pop() : undefined;
  const outputs = e.submit({
    name: `conformance_${c.cmd.kernel}`,
    kind: "run",
    device,
    kernel: c.cmd.kernel,
    params: c.cmd.params,
    inputs: records,
    inPlace,
    outputShapes: c.cmd.outputs.map((o) => [o.bytes / 4]),
  });
  const result = await Promise.all(outputs.map((o) => wrap(o).data()));
  for (const r of [...records, ...outputs]) e.dispose(r);
  return result;
}

/** How much of what a backend holds is still allocated: device buffers, or host values. */
function held(device: Device): number {
  return isHostVisible(device) ? engine().hostStore.size : engine().liveBuffers().count;
}

/** The checks every backend passes; `other` is a second backend to copy to and from. */
async function conformance(t: Deno.TestContext, device: Device, other: Device): Promise<void> {
  await t.step("a tensor written to it reads back the same", async () => {
    const v = values(37, 11);
    assert.deepEqual(await fromArray(v, [37], { device }).data(), new Float32Array(v));
    assert.deepEqual(await zeros([2, 3], { device }).data(), new Float32Array(6));
    assert.deepEqual(await ones([3], { device }).data(), new Float32Array([1, 1, 1]));
  });

  await t.step("every kernel of the registry matches its CPU twin", async () => {
    let checked = 0;
    const cases = casesByKernel(device);
    for (const [name, c] of cases) {
      checked++;
      let expected: Float32Array[] | Error;
      try {
        expected = KERNELS.get(name)!.cpu(c.inputs.map((v) => v.slice()), c.cmd.params);
      } catch (e) {
        expected = e as Error;
      }
      const got = await runCase(device, c).catch((e: Error) => e);
      if (expected instanceof Error) {
        // A check that fails on these inputs (by design) must fail the same way here.
        assert.ok(got instanceof Error, `${name} fails on ${device.name} as on the host`);
        assert.ok(got.message.includes(expected.message), `${name}: ${got.message}`);
        continue;
      }
      if (got instanceof Error) {
        throw new Error(`${name} failed on ${device.name}: ${got.message}`, { cause: got });
      }
      assert.equal(got.length, expected.length, `${name}: outputs`);
      got.forEach((g, i) => assertClose(g, expected[i], 1e-4, `${name} output ${i}`, 4));
    }
    assert.equal(checked, cases.size);
    assert.ok(checked >= KERNELS.size - HOST_ONLY_CASES.length, `${checked} kernels checked`);
    await synchronize(device).catch(() => {}); // the host-only checks' failures, reported
  });

  await t.step("ops run in the order they were sent", async () => {
    // Same-device inputs are sent before they are computed: only an in-order device gets this.
    let x = fromArray([1, 2, 3, 4], [4], { device });
    for (let i = 0; i < 60; i++) x = i % 2 === 0 ? x.add(2) : x.mul(0.5);
    const v = await x.data();
    // v -> (v + 2) / 2 thirty times: 2 - (2 - v) / 2^30.
    assertClose(v, [1, 2, 3, 4].map((s) => 2 - (2 - s) / 2 ** 30), 1e-6, "chain");
  });

  await t.step("an in-place update makes a new version; earlier readers see the old", async () => {
    const x = fromArray([1, 2, 3], [3], { device });
    const before = x.add(0);
    x.copy_(fromArray([7, 8, 9], [3], { device }));
    const middle = x.mul(1);
    x.sub_(ones([3], { device }));
    assert.deepEqual(await before.data(), new Float32Array([1, 2, 3]));
    assert.deepEqual(await middle.data(), new Float32Array([7, 8, 9]));
    assert.deepEqual(await x.data(), new Float32Array([6, 7, 8]));
  });

  await t.step("disposed tensors are freed once the work that reads them is done", async () => {
    await synchronize(device);
    const start = held(device);
    const xs = Array.from({ length: 5 }, (_, i) => fromArray([i, i], [2], { device }));
    const ys = xs.map((x) => x.mul(3));
    const last = ys[4].data();
    for (const x of xs) x.dispose(); // read by work still queued: freed after it
    assert.deepEqual(await last, new Float32Array([12, 12]));
    await synchronize(device);
    assert.ok(held(device) >= start + 5, `the results are held (${held(device)} from ${start})`);
    for (const y of ys) y.dispose();
    await synchronize(device);
    // Frees are commands too, run in order after the work before them: wait for them to run.
    for (let i = 0; i < 200 && held(device) !== start; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(held(device), start, "everything made here was freed");
  });

  await t.step("a failing kernel fails at synchronize, naming the op, and only it", async () => {
    const x = fromArray([1, 2], [2], { device });
    const [out] = engine().submit({
      name: "conformance_failure",
      kind: "run",
      device,
      kernel: "no_such_kernel",
      params: {},
      inputs: [recordOf(x)],
      outputShapes: [[2]],
    });
    const dependent = wrap(out).add(1);
    const fine = x.add(1);
    const err = await synchronize(device).then(() => undefined, (e) => e);
    assert.ok(err instanceof AggregateError, `got ${err}`);
    assert.equal(err.errors.length, 1);
    const [opError] = err.errors;
    assert.ok(opError instanceof OpError);
    assert.equal(opError.op, "conformance_failure");
    assert.equal(opError.device, device.name);
    assert.match(opError.message, /no_such_kernel/);
    await assert.rejects(() => dependent.data(), (e: AggregateError) => e.errors[0] === opError);
    assert.deepEqual(await fine.data(), new Float32Array([2, 3]));
  });

  await t.step(`copies go to and from the host and ${other.name}`, async () => {
    const v = values(9, 12);
    const x = fromArray(v, [3, 3], { device });
    const host = x.to(cpu());
    assert.equal(host.device, cpu());
    assert.deepEqual(await host.data(), new Float32Array(v));
    const there = x.mul(2).to(other);
    assert.equal(there.device, other);
    const back = there.add(1).to(device, { nonBlocking: true });
    assert.equal(back.device, device);
    assert.deepEqual(await back.data(), new Float32Array(v.map((e) => Math.fround(e * 2) + 1)));
    const fromHost = fromArray(v, [9]).to(device);
    assert.deepEqual(await fromHost.data(), new Float32Array(v));
    assert.equal(x.to(device), x, "a copy to its own device is the tensor itself");
  });
}

/**
 * After close: work in flight settles (it ran, or it fails naming the close: nothing hangs),
 * and new work on the device throws at once, saying why.
 */
async function closedRefusesWork(device: Device, close: () => Promise<void>): Promise<void> {
  const x = fromArray([1, 2], [2], { device });
  const y = x.add(1);
  const done = y.data().then((v) => v, (e: Error) => e);
  await new Promise((resolve) => setTimeout(resolve, 0)); // the engine has sent it
  await close();
  const result = await done;
  if (result instanceof Error) assert.match(result.message, /closed/);
  else assert.deepEqual(result, new Float32Array([2, 3]), "work sent before close ran");
  assert.throws(() => x.add(1), /closed/);
  assert.throws(() => fromArray([1], [1], { device }), /closed/);
  assert.throws(() => fromArray([1], [1]).to(device), /closed/);
  await assert.rejects(() => synchronize(device), /closed/);
}

Deno.test("the host passes the device conformance suite", opts, async (t) => {
  const fake = FakeDevice.open();
  await conformance(t, cpu(), fake);
  assert.equal(engine().deviceProblem(cpu()), undefined, "the host never goes away");
  await fake.close();
});

Deno.test("the fake recording device passes the device conformance suite", opts, async (t) => {
  const fake = FakeDevice.open({ delayMs: 1 });
  const second = FakeDevice.open({ delayMs: 0 });
  await conformance(t, fake, second);
  await t.step("it ran every command it was sent, in order, once", () => {
    const ops = fake.commands.flatMap((c) => "op" in c ? [c.op] : []);
    assert.ok(ops.length > 100, `${ops.length} commands recorded`);
    assert.equal(new Set(ops).size, ops.length, "each op once");
  });
  await t.step(
    "once closed, later work fails at once",
    () => closedRefusesWork(fake, () => fake.close()),
  );
  await second.close();
});

for (const backend of ["deno", "dawn"] as const) {
  Deno.test(`${backend}'s WebGPU passes the device conformance suite`, opts, async (t) => {
    const [gpu] = await tryAllGpus({ count: 1, backend });
    assert.ok(gpu, `a ${backend} device started`);
    assert.equal(gpu.info.backend, backend);
    const fake = FakeDevice.open({ delayMs: 0 });
    try {
      await conformance(t, gpu, fake);
      await t.step(
        "once closed, later work fails at once",
        () => closedRefusesWork(gpu, () => closeDevices()),
      );
    } finally {
      await closeDevices();
      await fake.close();
    }
  });
}
