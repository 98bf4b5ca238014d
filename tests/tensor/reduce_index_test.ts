import assert from "node:assert/strict";
import { cpu, type Device, fromArray, rand, randn, type Tensor, tryAllGpus } from "../../mod.ts";
import { kernel } from "../../lib/kernels/registry.ts";
import { normalAt } from "../../lib/kernels/normal.ts";
import { assertClose } from "../assert_close.ts";
import { prng, uniform } from "../autograd/gradcheck.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });
const devices: Device[] = gpu ? [cpu(), gpu] : [cpu()];

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Asserts the values are exactly `expected`, NaN meeting NaN and -0 told from 0. */
function assertSame(actual: ArrayLike<number>, expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], Math.fround(expected[i]))) {
      assert.fail(
        `${what}: element ${i} is ${Object.is(actual[i], -0) ? "-0" : actual[i]}, ` +
          `expected ${Object.is(expected[i], -0) ? "-0" : expected[i]}`,
      );
    }
  }
}

/** `[outer, mid, inner]` around `axis`. */
function split(shape: readonly number[], axis: number) {
  return {
    outer: sizeOf(shape.slice(0, axis)),
    mid: shape[axis] ?? 1,
    inner: sizeOf(shape.slice(axis + 1)),
  };
}

/** Plain-JS PyTorch semantics, written apart from the kernels' CPU twins. */
function refArg(x: ArrayLike<number>, shape: readonly number[], axis: number, max: boolean) {
  const { outer, mid, inner } = split(shape, axis);
  const values: number[] = [], indices: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const line = Array.from({ length: mid }, (_, j) => x[(o * mid + j) * inner + i]);
      const nan = line.findIndex(Number.isNaN);
      const best = max ? Math.max(...line) : Math.min(...line);
      const at = nan >= 0 ? nan : line.findIndex((v) => v === best);
      indices.push(at);
      values.push(line[at]);
    }
  }
  return { values, indices };
}

/** Values of `count` in [-1, 1) with some repeated, so that ties occur. */
function withTies(count: number, seed: number): number[] {
  return uniform(count, seed).map((v) => Math.round(v * 8) / 8);
}

for (const device of devices) {
  const on = (values: number[], shape: number[]) => fromArray(values, shape, { device });

  Deno.test(
    `argmax and argmin on ${device.name} give PyTorch's indices for NaN, Inf, -0 and ties`,
    opts,
    async () => {
      const a = on([3, 1, 3, NaN, -Infinity, NaN, -0, 0, -0, Infinity, 2, Infinity], [4, 3]);
      assertSame(await a.argmax(1).data(), [0, 0, 0, 0], "argmax(1)");
      assertSame(await a.argmin(1).data(), [1, 0, 0, 1], "argmin(1)");
      assertSame(await a.argmax(0).data(), [1, 3, 1], "argmax(0)");
      assertSame(await a.argmin(0).data(), [1, 1, 1], "argmin(0)");
      assertSame(await a.argmax(-1).data(), [0, 0, 0, 0], "argmax(-1)");
      assert.equal(await a.argmax().item(), 3, "argmax() is the first NaN of the flattened tensor");
      assert.equal(await on([2, -0, 0, -1, 5, -1], [2, 3]).argmin().item(), 3);
      assert.equal(await on([-0, 0], [2]).argmax().item(), 0, "-0 and 0 tie");
      assert.equal(await on([-Infinity, -Infinity], [2]).argmax().item(), 0);
      assert.deepEqual(a.argmax(1).shape, [4]);
      assert.deepEqual(a.argmax(1, { keepdim: true }).shape, [4, 1]);
      assert.deepEqual(a.argmin(0, { keepdim: true }).shape, [1, 3]);
      assert.deepEqual(a.argmax().shape, []);
      assert.deepEqual(a.argmax(undefined, { keepdim: true }).shape, [1, 1]);
      assert.equal(await on([7], []).argmax(0).item(), 0);
      assert.equal(a.argmax(1).requiresGrad, false);
    },
  );

  Deno.test(
    `argmax, argmin and min on ${device.name} match the reference along every axis of odd shapes`,
    opts,
    async () => {
      for (const shape of [[5], [3, 7], [2, 65, 3], [1, 130], [4, 1, 5], [3, 300]]) {
        const values = withTies(sizeOf(shape), sizeOf(shape));
        // A NaN in some lines, at different places, long lines included.
        for (let k = 2; k < values.length; k += 37) values[k] = NaN;
        if (values.length > 200) values[200] = Infinity;
        const x = on(values, shape);
        for (let axis = 0; axis < shape.length; axis++) {
          const what = `[${shape}] along ${axis}`;
          const max = refArg(values, shape, axis, true);
          const min = refArg(values, shape, axis, false);
          assertSame(await x.argmax(axis).data(), max.indices, `argmax ${what}`);
          assertSame(await x.argmin(axis).data(), min.indices, `argmin ${what}`);
          assertSame(await x.min(axis).data(), min.values, `min ${what}`);
          const kept = x.min(axis, { keepdim: true });
          assert.deepEqual(kept.shape, shape.map((s, i) => i === axis ? 1 : s));
        }
        const clean = values.map((v) => Number.isNaN(v) ? 0.25 : v);
        const full = refArg(clean, [clean.length], 0, false);
        assert.equal(
          await on(clean, shape).argmin().item(),
          full.indices[0],
          `argmin() [${shape}]`,
        );
        assert.equal(await on(clean, shape).min().item(), full.values[0], `min() [${shape}]`);
        assert.ok(Number.isNaN(await x.min().item()), `min() of [${shape}] with a NaN`);
      }
    },
  );

  Deno.test(`min on ${device.name} propagates NaN and handles infinities`, opts, async () => {
    const a = on([1, NaN, -1, Infinity, -Infinity, 0, 2, 3, 4], [3, 3]);
    assertSame(await a.min(1).data(), [NaN, -Infinity, 2], "min(1)");
    assertSame(await a.min(0).data(), [1, NaN, -1], "min(0)");
    assert.ok(Number.isNaN(await a.min().item()));
    assert.equal(await on([Infinity, Infinity], [2]).min().item(), Infinity);
    assert.deepEqual(a.min().shape, []);
    assert.deepEqual(a.min(undefined, { keepdim: true }).shape, [1, 1]);
  });

  Deno.test(
    `maximum and minimum on ${device.name} broadcast, propagate NaN and order -0 below 0`,
    opts,
    async () => {
      const a = on([1, NaN, -0, 0, -Infinity, 5], [2, 3]);
      const b = on([2, 0, 0], [3]);
      assertSame(await a.maximum(b).data(), [2, NaN, 0, 2, 0, 5], "maximum");
      assertSame(await a.minimum(b).data(), [1, NaN, -0, 0, -Infinity, 0], "minimum");
      assertSame(await b.maximum(a).data(), [2, NaN, 0, 2, 0, 5], "maximum, swapped");
      assertSame(await b.minimum(a).data(), [1, NaN, -0, 0, -Infinity, 0], "minimum, swapped");
      const z = on([-0, 0, -0, 0], [4]);
      const w = on([0, -0, -0, 0], [4]);
      assertSame(await z.maximum(w).data(), [0, 0, -0, 0], "maximum of zeros");
      assertSame(await z.minimum(w).data(), [-0, -0, -0, 0], "minimum of zeros");
      const col = on([NaN, 1], [2, 1]);
      assert.deepEqual(col.maximum(b).shape, [2, 3]);
      assertSame(await col.maximum(b).data(), [NaN, NaN, NaN, 2, 1, 1], "column against row");
      assertSame(await on([3], []).minimum(a).data(), [1, NaN, -0, 0, -Infinity, 3], "scalar");
    },
  );

  Deno.test(
    `clamp on ${device.name} keeps NaN, takes either bound alone, and gives max when min > max`,
    opts,
    async () => {
      const a = on([-2, 0.5, 3, NaN, -0, Infinity, -Infinity], [7]);
      assertSame(await a.clamp(0, 1).data(), [0, 0.5, 1, NaN, 0, 1, 0], "clamp(0, 1)");
      assertSame(await a.clamp(-1).data(), [-1, 0.5, 3, NaN, -0, Infinity, -1], "clamp(-1)");
      assertSame(
        await a.clamp(undefined, 0).data(),
        [-2, 0, 0, NaN, -0, 0, -Infinity],
        "clamp(undefined, 0)",
      );
      assertSame(await a.clamp(2, 1).data(), [1, 1, 1, NaN, 1, 1, 1], "clamp(2, 1)");
      assertSame(
        await a.clamp(-Infinity, Infinity).data(),
        [-2, 0.5, 3, NaN, -0, Infinity, -Infinity],
        "infinite bounds",
      );
      assertSame(await a.clamp(NaN, 1).data(), [NaN, NaN, NaN, NaN, NaN, NaN, NaN], "NaN bound");
    },
  );

  Deno.test(
    `softmax on ${device.name} is stable and gives PyTorch's NaN for NaN and +Infinity`,
    opts,
    async () => {
      const a = on([0, 0, 1000, 0, 1, NaN, Infinity, 1, -Infinity, 0, -Infinity, -Infinity], [
        6,
        2,
      ]);
      assertClose(
        await a.softmax().data(),
        [0.5, 0.5, 1, 0, NaN, NaN, NaN, NaN, 0, 1, NaN, NaN],
        1e-6,
        "softmax rows",
      );
      const big = on([1e30, -1e30, 88, 89], [2, 2]);
      const e = Math.exp(-1);
      assertClose(await big.softmax(1).data(), [1, 0, e / (1 + e), 1 / (1 + e)], 1e-6, "large");
      for (const shape of [[3, 5], [2, 67, 3], [1, 1], [7]]) {
        const values = uniform(sizeOf(shape), 40 + shape.length, -5, 5);
        for (let axis = 0; axis < shape.length; axis++) {
          const { outer, mid, inner } = split(shape, axis);
          const expected = new Array(values.length);
          for (let o = 0; o < outer; o++) {
            for (let i = 0; i < inner; i++) {
              const at = (j: number) => (o * mid + j) * inner + i;
              let s = 0;
              for (let j = 0; j < mid; j++) s += Math.exp(values[at(j)]);
              for (let j = 0; j < mid; j++) expected[at(j)] = Math.exp(values[at(j)]) / s;
            }
          }
          const p = on(values, shape).softmax(axis);
          assertClose(await p.data(), expected, 2e-6, `softmax [${shape}] along ${axis}`);
          assert.deepEqual(p.shape, shape);
        }
      }
    },
  );

  Deno.test(
    `item on ${device.name} reads the one value, and refuses other sizes at once`,
    opts,
    async () => {
      assert.equal(await on([1, 2, 3], [3]).sum().item(), 6);
      assert.equal(await on([-0.5], [1, 1]).item(), -0.5);
      assert.ok(Number.isNaN(await on([NaN], []).item()));
      assert.throws(() => on([1, 2], [2]).item(), {
        name: "RangeError",
        message: `Cannot take the item of Tensor[2] on ${device.name}: it has 2 elements, item() ` +
          `needs exactly one`,
      });
      const gone = on([1], [1]);
      gone.dispose();
      assert.throws(() => gone.item(), TypeError);
    },
  );

  Deno.test(
    `randn on ${device.name} is reproducible for a seed and standard normal`,
    opts,
    async () => {
      const a = await randn([100, 101], { device, seed: 42 }).data();
      const b = await randn([100, 101], { device, seed: 42 }).data();
      assert.deepEqual(a, b);
      const c = await randn([100, 101], { device, seed: 43 }).data();
      assert.notDeepEqual(a, c);
      const d = await randn([100, 101], { device }).data();
      const e = await randn([100, 101], { device }).data();
      assert.notDeepEqual(d, e, "unseeded calls differ");
      const mean = a.reduce((s, v) => s + v, 0) / a.length;
      const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
      assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
      assert.ok(Math.abs(variance - 1) < 0.05, `variance ${variance}`);
      const within = a.filter((v) => Math.abs(v) < 1).length / a.length;
      assert.ok(Math.abs(within - 0.6827) < 0.02, `share within one sigma ${within}`);
      assert.ok(a.every(Number.isFinite));
      assert.throws(() => randn([2], { device, seed: -1 }), RangeError);
      assert.throws(() => randn([0], { device }), RangeError);
    },
  );

  Deno.test(
    `the gradients of min, maximum, minimum and clamp on ${device.name} follow PyTorch at ties and NaN`,
    opts,
    async () => {
      const grad = async (x: Tensor) => await x.grad!.data();
      // min(): shared evenly by the ties; min(axis): to the first index.
      const x = on([1, 3, 1, 2], [2, 2]);
      x.requiresGrad = true;
      x.min().mul(4).backward();
      assertSame(await grad(x), [2, 0, 2, 0], "min() with ties");
      const y = on([1, 1, 5, 2, NaN, NaN], [2, 3]);
      y.requiresGrad = true;
      y.min(1).mul(on([3, 4], [2])).sum().backward();
      assertSame(await grad(y), [3, 0, 0, 0, 4, 0], "min(1) with ties and NaN");
      const z = on([NaN, 0, NaN], [3]);
      z.requiresGrad = true;
      z.min().backward();
      assertSame(await grad(z), [0.5, 0, 0.5], "min() with NaNs: shared by the NaNs");
      // maximum/minimum: half each on a tie, all to both where either is NaN.
      const a = on([1, 2, NaN, 4], [4]);
      const b = on([1, 3, 0, 0], [4]);
      a.requiresGrad = true;
      b.requiresGrad = true;
      a.maximum(b).sum().backward();
      assertSame(await grad(a), [0.5, 0, 1, 1], "maximum, a");
      assertSame(await grad(b), [0.5, 1, 1, 0], "maximum, b");
      const c = on([1, 2, NaN, 4], [4]);
      const r = on([2], [1]);
      c.requiresGrad = true;
      r.requiresGrad = true;
      c.minimum(r).sum().backward();
      assertSame(await grad(c), [1, 0.5, 1, 0], "minimum, c");
      assertSame(await grad(r), [0 + 0.5 + 1 + 1], "minimum, broadcast operand");
      // clamp: passes where min <= x <= max, bounds included; NaN gets none.
      const d = on([-1, 0, 0.5, 1, 2, NaN], [6]);
      d.requiresGrad = true;
      d.clamp(0, 1).sum().backward();
      assertSame(await grad(d), [0, 1, 1, 1, 0, 0], "clamp(0, 1)");
      const f = on([-1, 0, 2, NaN], [4]);
      f.requiresGrad = true;
      f.clamp(0).sum().backward();
      assertSame(await grad(f), [0, 1, 1, 0], "clamp(0)");
    },
  );
}

/** Weights of random sign and magnitude in [0.5, 1.5). */
function weights(count: number, seed: number): number[] {
  const next = prng(seed);
  return Array.from({ length: count }, () => Math.fround((next() < 0.5 ? -1 : 1) * (0.5 + next())));
}

/**
 * Checks the autograd gradient of `sum(f(xs) * w)` on `device` against float64 central
 * differences of `ref`, a plain-JS version of `f`.
 */
async function gradcheck(
  device: Device,
  what: string,
  f: (xs: Tensor[]) => Tensor,
  ref: (xs: Float64Array[]) => Float64Array,
  inputs: { shape: number[]; values: number[] }[],
): Promise<void> {
  const leaves = inputs.map((x) => fromArray(x.values, x.shape, { device, requiresGrad: true }));
  const out = f(leaves);
  const w = weights(out.size, 7);
  out.mul(fromArray(w, out.shape, { device })).sum().backward();
  const xs = inputs.map((x) => Float64Array.from(Float32Array.from(x.values)));
  const loss = (ys: Float64Array[]) => ref(ys).reduce((s, v, i) => s + v * w[i], 0);
  const h = 1e-6;
  for (const [k, leaf] of leaves.entries()) {
    const numeric = Array.from(xs[k], (_, j) => {
      const probe = (delta: number) => {
        const moved = xs.map((x, i) => i === k ? x.map((v, m) => m === j ? v + delta : v) : x);
        return loss(moved);
      };
      return (probe(h) - probe(-h)) / (2 * h);
    });
    assertClose(await leaf.grad!.data(), numeric, 1e-4, `${what}: gradient of x${k}`);
  }
}

function refLines(
  x: Float64Array,
  shape: readonly number[],
  axis: number,
  f: (line: number[]) => number[],
): Float64Array {
  const { outer, mid, inner } = split(shape, axis);
  const width = f(Array.from({ length: mid }, () => 0)).length;
  const out = new Float64Array(outer * width * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const line = f(Array.from({ length: mid }, (_, j) => x[(o * mid + j) * inner + i]));
      line.forEach((v, j) => out[(o * width + j) * inner + i] = v);
    }
  }
  return out;
}

const softmaxLine = (line: number[]) => {
  const m = Math.max(...line);
  const e = line.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

for (const device of devices) {
  Deno.test(
    `the gradients of softmax, min, maximum, minimum and clamp on ${device.name} match central differences`,
    opts,
    async () => {
      // Distinct values, far from ties and from the clamp's bounds.
      const distinct = (shape: number[], seed: number) => {
        const n = sizeOf(shape);
        const order = uniform(n, seed).map((v, i) => ({ v, i })).sort((p, q) => p.v - q.v);
        const values = new Array(n);
        order.forEach(({ i }, rank) => values[i] = (rank - n / 2) * 0.25 + 0.01);
        return { shape, values };
      };
      for (const [shape, axis] of [[[3, 4], 1], [[3, 4], 0], [[2, 3, 5], 1], [[6], 0]] as const) {
        const x = { shape: [...shape], values: uniform(sizeOf(shape), 11 + axis, -2, 2) };
        await gradcheck(
          device,
          `softmax(${axis}) [${shape}]`,
          ([t]) => t.softmax(axis),
          ([v]) => refLines(v, shape, axis, softmaxLine),
          [x],
        );
        const y = distinct([...shape], 20 + axis);
        await gradcheck(
          device,
          `min(${axis}) [${shape}]`,
          ([t]) => t.min(axis),
          ([v]) => refLines(v, shape, axis, (line) => [Math.min(...line)]),
          [y],
        );
      }
      await gradcheck(
        device,
        "min() [3, 5]",
        ([t]) => t.min(),
        ([v]) => Float64Array.of(Math.min(...v)),
        [distinct([3, 5], 3)],
      );
      const a = distinct([2, 3], 4);
      const b = { shape: [3], values: [0.13, -0.37, 0.61] };
      const at = (i: number) => i % 3;
      await gradcheck(
        device,
        "maximum [2, 3] [3]",
        ([s, t]) => s.maximum(t),
        ([u, v]) => u.map((p, i) => Math.max(p, v[at(i)])),
        [a, b],
      );
      await gradcheck(
        device,
        "minimum [3] [2, 3]",
        ([s, t]) => s.minimum(t),
        ([u, v]) => v.map((q, i) => Math.min(u[at(i)], q)),
        [b, a],
      );
      await gradcheck(
        device,
        "clamp(-0.3, 0.4) [4, 5]",
        ([t]) => t.clamp(-0.3, 0.4),
        ([v]) => v.map((p) => Math.min(Math.max(p, -0.3), 0.4)),
        [distinct([4, 5], 5)],
      );
    },
  );
}

Deno.test({
  name: "every new GPU kernel agrees with its CPU twin on random data",
  ignore: !gpu,
  ...opts,
}, async () => {
  const shapes = [[37, 29], [3, 130, 2], [1000]];
  for (const shape of shapes) {
    const seed = sizeOf(shape);
    const host = rand(shape, { seed }).sub(0.5);
    const dev = rand(shape, { device: gpu, seed }).sub(0.5);
    const v = await host.data();
    assertSame(await dev.data(), [...v], "the inputs agree");
    for (let axis = 0; axis < shape.length; axis++) {
      const what = `[${shape}] along ${axis}`;
      assertSame(
        await dev.argmax(axis).data(),
        [...await host.argmax(axis).data()],
        `argmax ${what}`,
      );
      assertSame(await dev.min(axis).data(), [...await host.min(axis).data()], `min ${what}`);
      assertClose(await dev.softmax(axis).data(), await host.softmax(axis).data(), 1e-6, what);
    }
    const other = rand([shape[shape.length - 1]], { seed: 9 }).sub(0.5);
    const otherOnGpu = other.to(gpu);
    assertSame(
      await dev.maximum(otherOnGpu).data(),
      [...await host.maximum(other).data()],
      `maximum [${shape}]`,
    );
    assertSame(await dev.clamp(-0.2, 0.1).data(), [...await host.clamp(-0.2, 0.1).data()], "clamp");
  }
});

Deno.test(
  "randn gives the same values on the host, the GPU and the plain-JS formula",
  opts,
  async () => {
    const shape = [33, 17];
    const host = await randn(shape, { seed: 12345 }).data();
    const twin = kernel("randn").cpu([], { n: 33 * 17, seed: 12345 })[0];
    assert.deepEqual(host, twin);
    for (let i = 0; i < 20; i++) {
      // Box-Muller of the rand stream's uniforms at 2i and 2i + 1, in float64.
      const u = kernel("random").cpu([], { n: 40, seed: 12345 })[0];
      const expected = Math.sqrt(-2 * Math.log(1 - u[2 * i])) *
        Math.cos(2 * Math.PI * (u[2 * i + 1] - 0.5));
      assert.ok(Math.abs(host[i] - expected) < 1e-5, `element ${i}: ${host[i]} vs ${expected}`);
      assert.equal(normalAt(12345, i), host[i]);
    }
    if (gpu) {
      const onGpu = await randn(shape, { device: gpu, seed: 12345 }).data();
      assertClose(onGpu, host, 2e-6, "randn on the GPU against the host");
    }
  },
);

Deno.test("new ops throw at once for bad arguments, before anything is queued", opts, () => {
  const a = fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
  assert.throws(() => a.argmax(2), {
    name: "RangeError",
    message: "Cannot take the argmax of shape [2, 3] along axis 2: axis must be a whole number " +
      "in [-2, 1]",
  });
  assert.throws(() => a.min(-3), RangeError);
  assert.throws(() => a.softmax(1.5), RangeError);
  assert.throws(() => a.maximum(fromArray([1, 2], [2])), {
    name: "RangeError",
    message: "Cannot take the maximum of shapes [2, 3] and [2]: they do not broadcast (sizes " +
      "must be equal or 1, aligned from the last dimension)",
  });
  assert.throws(() => a.minimum(3 as unknown as Tensor), TypeError);
  assert.throws(() => a.clamp(), {
    name: "TypeError",
    message: "Cannot clamp Tensor[2, 3] on cpu without bounds: give min, max or both",
  });
  assert.throws(() => a.clamp("1" as unknown as number), TypeError);
  if (gpu) assert.throws(() => a.maximum(fromArray([1], [1], { device: gpu })), TypeError);
});

Deno.test(
  "a tensor prints like PyTorch's repr, with values when they are known",
  opts,
  async () => {
    assert.equal(
      Deno.inspect(fromArray([1, 2, 3, 4], [2, 2])),
      "Tensor([[1, 2], [3, 4]], shape=[2, 2], dtype=float32, device=cpu)",
    );
    assert.equal(
      Deno.inspect(fromArray([0.5, -1.25, NaN, Infinity, -Infinity], [5])),
      "Tensor([0.5000, -1.2500, nan, inf, -inf], shape=[5], dtype=float32, device=cpu)",
    );
    assert.equal(
      Deno.inspect(fromArray([1e-6, 1], [2])),
      "Tensor([1.0000e-06, 1.0000e+00], shape=[2], dtype=float32, device=cpu)",
    );
    assert.equal(
      Deno.inspect(fromArray([-0, 7], [2])),
      "Tensor([-0, 7], shape=[2], dtype=float32, device=cpu)",
    );
    assert.equal(
      Deno.inspect(fromArray([3.5], [])),
      "Tensor(3.5000, shape=[], dtype=float32, device=cpu)",
    );
    const long = fromArray(Array.from({ length: 80 }, (_, i) => i), [8, 10]);
    assert.equal(
      Deno.inspect(long),
      "Tensor([[0, 1, 2, ..., 7, 8, 9], [10, 11, 12, ..., 17, 18, 19], [20, 21, 22, ..., 27, 28, " +
        "29], ..., [50, 51, 52, ..., 57, 58, 59], [60, 61, 62, ..., 67, 68, 69], [70, 71, 72, ..., " +
        "77, 78, 79]], shape=[8, 10], dtype=float32, device=cpu)",
    );
    const w = fromArray([1, 2], [2], { requiresGrad: true });
    assert.equal(
      Deno.inspect(w),
      "Tensor([1, 2], shape=[2], dtype=float32, device=cpu, requiresGrad=true)",
    );
    const pending = w.mul(2);
    assert.equal(
      Deno.inspect(pending),
      "Tensor(shape=[2], dtype=float32, device=cpu, requiresGrad=true)",
      "inspect cannot wait for the values",
    );
    await pending.data();
    assert.equal(
      Deno.inspect(pending),
      "Tensor([2, 4], shape=[2], dtype=float32, device=cpu, requiresGrad=true)",
    );
    const inspectNode = (t: Tensor) =>
      (t as unknown as Record<symbol, () => string>)[Symbol.for("nodejs.util.inspect.custom")]();
    assert.equal(inspectNode(w), Deno.inspect(w));
    w.dispose();
    assert.equal(
      Deno.inspect(w),
      "Tensor(shape=[2], dtype=float32, device=cpu, requiresGrad=true, disposed)",
    );
    assert.equal(String(fromArray([1], [1])), "Tensor[1] on cpu", "toString is unchanged");
    if (gpu) {
      const g = fromArray([1, 2, 3, 4], [2, 2], { device: gpu });
      assert.equal(
        Deno.inspect(g),
        `Tensor([[1, 2], [3, 4]], shape=[2, 2], dtype=float32, device=${gpu.name})`,
      );
      const made = g.mul(g);
      assert.equal(Deno.inspect(made), `Tensor(shape=[2, 2], dtype=float32, device=${gpu.name})`);
      await made.data();
      assert.equal(
        Deno.inspect(made),
        `Tensor([[1, 4], [9, 16]], shape=[2, 2], dtype=float32, device=${gpu.name})`,
      );
      const big = rand([2000], { device: gpu, seed: 1 });
      await big.data();
      assert.equal(Deno.inspect(big), `Tensor(shape=[2000], dtype=float32, device=${gpu.name})`);
    }
  },
);
