// Fused kernels on a real device: random elementwise steps give the bits of the same steps
// replayed unfused (NaN and Inf included), a fused kernel's failure names its ops, and the
// kernels of the chapter's MLP step are counted (deterministic: the goal of issue 20).
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Adam,
  capture,
  fromArray,
  grad,
  SGD,
  synchronize,
  type Tensor,
  trace$,
  type TraceEvent,
  tryAllGpus,
} from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { recordOf, wrap } from "../../lib/tensor/tensor.ts";
import { mlp, Trainer } from "../../lib/train/trainer.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });

const UNARY = ["relu", "neg", "exp", "log", "tanh", "sigmoid", "sqrt"] as const;
const BINARY = ["add", "sub", "mul", "div"] as const;

/** One op of a random step: on values so far, a row, a one-element tensor or a scalar. */
const opArb = fc.record({
  kind: fc.constantFrom("unary", "binary", "row", "one", "scalar", "sub_", "copy_"),
  unary: fc.constantFrom(...UNARY),
  binary: fc.constantFrom(...BINARY),
  a: fc.nat(),
  b: fc.nat(),
  scalar: fc.constantFrom(0.5, -1.25, 3, 1e-3, 2, -0),
});

/** The step the ops describe, over `x` ([4, 8]), a state `w` updated in place, `row` and `one`. */
function stepOf(ops: Op[]) {
  return (x: Tensor, w: Tensor, row: Tensor, one: Tensor) => {
    const values: Tensor[] = [x];
    const pick = (i: number) => values[i % values.length];
    for (const o of ops) {
      const a = pick(o.a);
      if (o.kind === "unary") values.push(a[o.unary]());
      else if (o.kind === "binary") values.push(a[o.binary](pick(o.b)));
      else if (o.kind === "row") values.push(a[o.binary](row));
      else if (o.kind === "one") values.push(a[o.binary](one));
      else if (o.kind === "scalar") {
        values.push(a[o.binary](o.binary === "div" && o.scalar === 0 ? 2 : o.scalar));
      } else if (o.kind === "sub_") w.sub_(a, { alpha: Number.isFinite(o.scalar) ? o.scalar : 1 });
      else w.copy_(a);
    }
    return [values[values.length - 1], w.mul(1)];
  };
}
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

const same = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && a.every((v, i) => Object.is(v, b[i]) || (isNaN(v) && isNaN(b[i])));

Deno.test(
  "random elementwise steps replayed fused give the bits of the unfused",
  opts,
  async () => {
    const xs = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i) * 3);
    xs[5] = NaN;
    xs[6] = Infinity;
    xs[7] = -Infinity;
    let fusedKernels = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 12 }), async (ops) => {
        const results: Float32Array[][] = [];
        for (const fuse of [true, false]) {
          const x = fromArray(xs, [4, 8], { device: gpu });
          const w = fromArray(xs.map((v) => v / 4), [4, 8], { device: gpu });
          const row = fromArray([1, -2, 0.5, 4, -0.25, 2, 8, -1], [8], { device: gpu });
          const one = fromArray([1.5], [1], { device: gpu });
          const step = capture(stepOf(ops), { fuse });
          let out: Tensor[] = [];
          for (let i = 0; i < 4; i++) out = step.replay(x, w, row, one) as Tensor[];
          results.push(await Promise.all(out.map((t) => t.data())));
          if (fuse) fusedKernels += step.fused;
          else assert.equal(step.fused, 0);
          step.dispose();
        }
        results[0].forEach((v, k) =>
          assert.ok(same(v, results[1][k]), `result ${k}: ${v} and unfused ${results[1][k]}`)
        );
      }),
      { numRuns: 100, seed: 0xf05e },
    );
    assert.ok(fusedKernels > 20, `only ${fusedKernels} fused kernels`);
  },
);

Deno.test(
  "matmuls with epilogues (bias, activation, a stored product) give the bits of the unfused",
  opts,
  async () => {
    const x = fromArray(Array.from({ length: 24 }, (_, i) => Math.sin(i) * 2), [4, 6], {
      device: gpu,
    });
    const w = fromArray(Array.from({ length: 30 }, (_, i) => Math.cos(i)), [6, 5], { device: gpu });
    const b = fromArray([0.5, -1, 2, -0, 0.25], [5], { device: gpu });
    const steps = [
      // The MLP's layer: mm, bias, relu; the product itself is not needed.
      (x: Tensor) => [x.mm(w).add(b).relu()],
      // The product is returned too (stored by the epilogue), and a scalar chain follows.
      (x: Tensor) => {
        const p = x.mm(w);
        return [p, p.mul(p).sub(p).tanh().div(3)];
      },
      // A transposed product (the backward's form) with a one-element operand.
      (x: Tensor) => [x.mm(x, { transB: true }).mul(b.narrow(0, 1, 1)).sigmoid()],
    ];
    for (const [k, f] of steps.entries()) {
      const results: Float32Array[][] = [];
      let epilogues = 0;
      for (const fuse of [true, false]) {
        const step = capture(f, { fuse });
        let out: Tensor[] = [];
        for (let i = 0; i < 2; i++) out = step.replay(x) as Tensor[];
        const sub = trace$().subscribe((e) => {
          epilogues += e.kernels?.filter((n) => n.startsWith("fused(mm")).length ?? 0;
        });
        out = step.replay(x) as Tensor[];
        results.push(await Promise.all(out.map((t) => t.data())));
        sub.unsubscribe();
        step.dispose();
      }
      assert.equal(epilogues, 1, `step ${k}: one matmul with an epilogue, fused only`);
      results[0].forEach((v, i) => assert.ok(same(v, results[1][i]), `step ${k}, result ${i}`));
    }
  },
);

Deno.test(
  "maxima, minima, clamps and clamp's gradient fused give the bits of the unfused",
  opts,
  async () => {
    // NaN, the infinities and both zeros, against rows, one element and equal shapes.
    const xs = [NaN, -0, 0, Infinity, -Infinity, 1.5, -2, 3, 0.25, -0.5, 2, -3];
    const x = fromArray(xs, [3, 4], { device: gpu });
    const y = fromArray(xs.map((v, i) => i % 3 === 0 ? -v : v * 0.5), [3, 4], { device: gpu });
    const row = fromArray([0, -0, NaN, 1], [4], { device: gpu });
    const one = fromArray([-0], [1], { device: gpu });
    const steps = [
      (x: Tensor, y: Tensor) => {
        const m = x.mul(2).maximum(y.neg());
        return [m, m.minimum(row), x.neg().maximum(y)];
      },
      (x: Tensor) => {
        const m = x.neg().minimum(one);
        return [m, m.add(1).maximum(row)];
      },
      // ReLU6, and clamps with one bound or crossed bounds (PyTorch: hi).
      (x: Tensor) => [x.mul(3).clamp(0, 6).sub(1), x.clamp(undefined, -0).exp()],
      (x: Tensor) => [x.add(1).clamp(2, -1).mul(x)],
      // The gradient of a clamp: its backward kernel fused with the product's.
      (x: Tensor, y: Tensor) => [grad((a: Tensor) => a.mul(y).clamp(-1, 1).mul(a).sum())(x)],
    ];
    for (const [k, f] of steps.entries()) {
      const results: Float32Array[][] = [];
      let fused = 0;
      for (const fuse of [true, false]) {
        const step = capture(f, { fuse });
        for (let i = 0; i < 2; i++) step.replay(x, y);
        const out = step.replay(x, y) as Tensor[];
        results.push(await Promise.all(out.map((t) => t.data())));
        fused += step.fused;
        step.dispose();
      }
      assert.ok(fused >= 1, `step ${k}: a fused kernel`);
      results[0].forEach((v, i) =>
        assert.ok(same(v, results[1][i]), `step ${k}, result ${i}: ${v} ${results[1][i]}`)
      );
    }
  },
);

Deno.test(
  "sums, means, maxima and softmaxes with prologues give the bits of the unfused",
  opts,
  async () => {
    const xs = Array.from({ length: 60 }, (_, i) => Math.sin(i) * 2);
    xs[7] = NaN;
    const x = fromArray(xs, [6, 10], { device: gpu });
    const row = fromArray(Array.from({ length: 10 }, (_, i) => i / 4 - 1), [10], { device: gpu });
    const labels = fromArray([0, 9, 3, 3, 1, 5], [6], { device: gpu });
    const steps = [
      (x: Tensor) => [x.mul(x).add(1).log().sum()],
      (x: Tensor) => [x.sub(row).relu().sum(0)],
      (x: Tensor) => [x.tanh().mul(3).mean(1)],
      (x: Tensor) => [x.exp().add(row).sum(1)],
      (x: Tensor) => [x.neg().relu().max(1)],
      (x: Tensor) => [x.sub(row).max(0)],
      // Attention's pattern: scaled scores plus a mask, then a softmax along the rows.
      (x: Tensor) => [x.mul(0.125).add(row).softmax(1)],
      (x: Tensor) => [x.tanh().logSoftmax(0)],
      (x: Tensor) => [x.mul(x).softmax(0), x.exp().logSoftmax(1)],
      (x: Tensor) => [x.mul(0.5).sub(row).logSumExp(1), x.neg().logSumExp(0)],
      // The loss of logits at a temperature, and its gradient (the loss's kernel makes both).
      (x: Tensor) => {
        const loss = (z: Tensor) => z.div(0.7).crossEntropy(labels);
        return [loss(x), grad(loss)(x)];
      },
    ];
    for (const [k, f] of steps.entries()) {
      const results: Float32Array[][] = [];
      let prologues = 0;
      for (const fuse of [true, false]) {
        const step = capture(f, { fuse });
        for (let i = 0; i < 2; i++) step.replay(x);
        const sub = trace$().subscribe((e) => {
          prologues += e.kernels?.filter((n) =>
            /^fused\(.*(sum|mean|max|softmax|logSoftmax|logSumExp|crossEntropy)\)$/.test(n)
          ).length ?? 0;
        });
        const out = step.replay(x) as Tensor[];
        results.push(await Promise.all(out.map((t) => t.data())));
        sub.unsubscribe();
        step.dispose();
      }
      assert.ok(prologues >= 1, `step ${k}: a reduction with a prologue`);
      results[0].forEach((v, i) =>
        assert.ok(same(v, results[1][i]), `step ${k}, result ${i}: ${v} ${results[1][i]}`)
      );
    }
  },
);

Deno.test("reductions with epilogues give the bits of the unfused", opts, async () => {
  const xs = Array.from({ length: 60 }, (_, i) => Math.cos(i) * 3);
  xs[11] = NaN;
  const x = fromArray(xs, [6, 10], { device: gpu });
  const row = fromArray(Array.from({ length: 10 }, (_, i) => i / 3 - 1), [10], { device: gpu });
  const steps = [
    // A layer norm's deviation, a mean's square root; an RMS, with a prologue too.
    (x: Tensor) => [x.mean(1).add(1e-5).sqrt()],
    (x: Tensor) => [x.mul(x).mean(1).add(1e-5).sqrt()],
    (x: Tensor) => [x.mul(2).softmax(1).mul(row), x.neg().logSumExp(0).exp()],
    (x: Tensor) => [x.sum(0).mul(2).tanh()],
    (x: Tensor) => [x.max(1).relu()],
    (x: Tensor) => [x.softmax(1).mul(row)],
    (x: Tensor) => [x.logSoftmax(0).neg(), x.sum(1)],
    (x: Tensor) => [x.logSumExp(1).mul(-2).exp()],
  ];
  for (const [k, f] of steps.entries()) {
    const results: Float32Array[][] = [];
    let epilogues = 0;
    for (const fuse of [true, false]) {
      const step = capture(f, { fuse });
      for (let i = 0; i < 2; i++) step.replay(x);
      const sub = trace$().subscribe((e) => {
        epilogues += e.kernels?.filter((n) =>
          /^fused\((.*, )?(sum|mean|max|softmax|logSoftmax|logSumExp), /.test(n)
        )
          .length ?? 0;
      });
      const out = step.replay(x) as Tensor[];
      results.push(await Promise.all(out.map((t) => t.data())));
      sub.unsubscribe();
      step.dispose();
    }
    assert.ok(epilogues >= 1, `step ${k}: a reduction with an epilogue`);
    results[0].forEach((v, i) =>
      assert.ok(same(v, results[1][i]), `step ${k}, result ${i}: ${v} ${results[1][i]}`)
    );
  }
});

Deno.test(
  "independent updates of parameters of several lengths, one dispatch, give the unfused bits",
  opts,
  async () => {
    // SGD with momentum by hand on 4 parameters of 60, 10, 7 and 1 elements.
    const lengths = [60, 10, 7, 1];
    const make = (seed: number) =>
      lengths.map((n, k) =>
        fromArray(Array.from({ length: n }, (_, i) => Math.sin(seed + k * 7 + i) * 2), [n], {
          device: gpu,
        })
      );
    const results: Float32Array[][] = [];
    let multi = 0;
    for (const fuse of [true, false]) {
      const [params, velocity] = [make(1), make(2)];
      const grads = make(3);
      const step = capture((...gs: Tensor[]) => {
        gs.forEach((g, k) => {
          velocity[k].copy_(velocity[k].mul(0.9).add(g));
          params[k].sub_(velocity[k], { alpha: 0.1 });
        });
        return params[0].mul(1);
      }, { fuse });
      for (let i = 0; i < 2; i++) step.replay(...grads);
      const sub = trace$().subscribe((e) => {
        multi += e.kernels?.filter((n) => n.startsWith("fused(") && n.split("sub_").length > 2)
          .length ?? 0;
      });
      await step.replay(...grads).data();
      sub.unsubscribe();
      results.push(await Promise.all([...params, ...velocity].map((t) => t.data())));
      step.dispose();
    }
    // Three bindings a parameter (g, v, p): two parameters a kernel.
    assert.equal(multi, 2, "two kernels, each updating two parameters");
    results[0].forEach((v, i) => assert.ok(same(v, results[1][i]), `tensor ${i}`));
  },
);

Deno.test(
  "a fused kernel that fails names each of its ops and where it was created",
  opts,
  async () => {
    const x = fromArray([1, 2, 3, 4], [4], { device: gpu });
    const step = capture((a: Tensor) => {
      const t = a.mul(2);
      // An elementwise kernel whose WGSL cannot compile: "bogus" is no unary op.
      const [bad] = engine().submit({
        name: "bogus",
        device: gpu,
        kind: "run",
        kernel: "unary",
        params: { op: "bogus", n: 4 },
        inputs: [recordOf(t)],
        outputShapes: [[4]],
        site: new Error("bogus"),
      });
      return wrap(bad).neg();
    });
    for (let i = 0; i < 2; i++) {
      step.replay(x);
      await assert.rejects(synchronize(), /bogus/);
    }
    assert.equal(step.fused, 1);
    step.replay(x);
    await assert.rejects(synchronize(), (e: AggregateError) => {
      const message = e.errors.map((f: Error) => f.message).join("\n");
      assert.match(message, /fused\(mul, bogus, neg\) \(replayed\)/);
      assert.match(message, /Cannot compile unary op "bogus"/);
      assert.match(message, /mul created at .*fused_gpu_test\.ts/);
      assert.match(message, /neg created at .*fused_gpu_test\.ts/);
      return true;
    });
    step.dispose();
  },
);

/** Kernels per replay of the MLP step (784 -> 256 -> 10, batch 8) with an optimizer. */
async function mlpKernels(optimizer: "sgd" | "momentum" | "adam", fuse: boolean) {
  const t = new Trainer(mlp({ seed: 1 }), [gpu], {
    lr: 0.1,
    optimizer: optimizer === "adam"
      ? (p) => new Adam(p, { lr: 1e-3 })
      : optimizer === "momentum"
      ? (p) => new SGD(p, { lr: 0.1, momentum: 0.9 })
      : undefined,
  });
  const step = capture((x: Tensor, y: Tensor) => {
    const out = t.dp.forwardBackward(x, y, (o, l) => o.crossEntropy(l));
    t.opt.step();
    t.opt.zeroGrad();
    return out.losses;
  }, { fuse });
  const x = fromArray(new Float32Array(8 * 784).fill(0.5), [8, 784], { device: gpu });
  const y = fromArray([0, 1, 2, 3, 4, 5, 6, 7], [8], { device: gpu });
  let loss: Tensor[] = [];
  for (let i = 0; i < 3; i++) loss = step.replay(x, y) as Tensor[];
  const value = (await loss[0].data())[0];
  const counts = { kernels: step.kernels, fused: step.fused, loss: value };
  step.dispose();
  t.dispose();
  return counts;
}

Deno.test(
  "the MLP step's kernels: Adam's update fused to a fifth, the same losses",
  opts,
  async () => {
    const counts: Record<string, [number, number]> = {};
    for (const opt of ["sgd", "momentum", "adam"] as const) {
      const fused = await mlpKernels(opt, true);
      const unfused = await mlpKernels(opt, false);
      assert.equal(fused.loss, unfused.loss, `${opt}: the loss of the third step`);
      counts[opt] = [fused.kernels, unfused.kernels];
    }
    // Forward, backward and the update of 4 parameters; Adam's ~22 elementwise ops per
    // parameter become one kernel per parameter and one for the bias corrections. Fused, the
    // input's detach() is no copy: the first product reads the input. SGD's 4 updates are one
    // dispatch (2 bindings each), momentum's two (3 each); Adam's bind 5 each, one a dispatch.
    assert.deepEqual(counts, { sgd: [15, 23], momentum: [16, 35], adam: [20, 115] });
  },
);

Deno.test(
  "the trace shows each replayed segment's kernels, fused ones with their ops",
  opts,
  async () => {
    const x = fromArray([1, -2, 3, -4], [1, 4], { device: gpu });
    const step = capture((a: Tensor) => a.mul(2).relu().mm(a.transpose()).neg());
    for (let i = 0; i < 2; i++) step.replay(x);
    await synchronize();
    const events: TraceEvent[] = [];
    const sub = trace$().subscribe((e) => events.push(e));
    await step.replay(x).data();
    sub.unsubscribe();
    const replay = events.find((e) => e.op === "replay");
    assert.ok(replay, `no replay among ${events.map((e) => e.op)}`);
    // The product's negation is its epilogue.
    assert.deepEqual(replay.kernels, ["fused(mul, relu)", "transpose", "fused(mm, neg)"]);
    step.dispose();
  },
);
