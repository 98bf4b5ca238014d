import assert from "node:assert/strict";
import {
  capture,
  cat,
  cpu,
  type Device,
  fromArray,
  noGrad,
  rand,
  stack,
  type Tensor,
  tryAllGpus,
} from "../../mod.ts";
import { assertClose } from "../assert_close.ts";
import { uniform } from "../autograd/gradcheck.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const gpus = await tryAllGpus({ count: 1 });
const devices: Device[] = [...gpus.slice(0, 1), cpu()];

/** A float64 array in row-major order: the references below are plain loops over these. */
interface Ref {
  shape: readonly number[];
  data: Float64Array;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}

const flat = (c: readonly number[], shape: readonly number[]) =>
  c.reduce((s, x, d) => s * shape[d] + x, 0);

/** Builds a Ref of `shape` whose element at coordinates `c` is `at(c)`. */
function build(shape: readonly number[], at: (c: number[]) => number): Ref {
  return {
    shape,
    data: Float64Array.from({ length: sizeOf(shape) }, (_, i) => at(coords(i, shape))),
  };
}

const ref = {
  permute: (x: Ref, dims: readonly number[]): Ref =>
    build(dims.map((d) => x.shape[d]), (c) => {
      const src = new Array(c.length);
      dims.forEach((d, k) => src[d] = c[k]);
      return x.data[flat(src, x.shape)];
    }),
  /** Python's `range(size)[start:end:step]`, element by element. */
  indices(
    size: number,
    start: number | undefined,
    end: number | undefined,
    step: number,
  ): number[] {
    const all = Array.from({ length: size }, (_, i) => i);
    const norm = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
    const s = norm(start ?? 0), e = norm(end ?? size);
    return all.filter((i) => i >= s && i < e && (i - s) % step === 0);
  },
  select: (x: Ref, axis: number, picks: readonly number[]): Ref =>
    build(x.shape.map((n, d) => d === axis ? picks.length : n), (c) => {
      const src = [...c];
      src[axis] = picks[c[axis]];
      return x.data[flat(src, x.shape)];
    }),
  cat: (xs: readonly Ref[], axis: number): Ref => {
    const shape = xs[0].shape.map((n, d) =>
      d === axis ? xs.reduce((s, x) => s + x.shape[d], 0) : n
    );
    return build(shape, (c) => {
      let j = c[axis], t = 0;
      while (j >= xs[t].shape[axis]) j -= xs[t++].shape[axis];
      const src = [...c];
      src[axis] = j;
      return xs[t].data[flat(src, xs[t].shape)];
    });
  },
  stack: (xs: readonly Ref[], axis: number): Ref =>
    build([...xs[0].shape.slice(0, axis), xs.length, ...xs[0].shape.slice(axis)], (c) => {
      const src = c.filter((_, d) => d !== axis);
      return xs[c[axis]].data[flat(src, xs[0].shape)];
    }),
  gather: (x: Ref, axis: number, index: Ref): Ref =>
    build(index.shape, (c) => {
      const src = [...c];
      src[axis] = index.data[flat(c, index.shape)];
      return x.data[flat(src, x.shape)];
    }),
  /** torch.matmul by its definition: promote 1-D, broadcast the batch, drop the 1-D dims. */
  matmul: (a: Ref, b: Ref): Ref => {
    const sa = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
    const sb = b.shape.length === 1 ? [b.shape[0], 1] : b.shape;
    const [M, K] = sa.slice(-2), N = sb[sb.length - 1];
    const ba = sa.slice(0, -2), bb = sb.slice(0, -2);
    const rank = Math.max(ba.length, bb.length);
    const pad = (s: readonly number[]) => [...new Array(rank - s.length).fill(1), ...s];
    const batch = pad(ba).map((n, d) => Math.max(n, pad(bb)[d]));
    const full = build([...batch, M, N], (c) => {
      const bc = c.slice(0, rank), [i, j] = c.slice(rank);
      const at = (s: readonly number[]) =>
        pad(s).map((n, d) => n === 1 ? 0 : bc[d]).slice(rank - s.length);
      let s = 0;
      for (let k = 0; k < K; k++) {
        s += a.data[flat([...at(ba), i, k], sa)] * b.data[flat([...at(bb), k, j], sb)];
      }
      return s;
    });
    const shape = [
      ...batch,
      ...(a.shape.length > 1 ? [M] : []),
      ...(b.shape.length > 1 ? [N] : []),
    ];
    return { shape, data: full.data };
  },
};

/** A tensor of `shape` with distinct values, and its Ref. */
function sample(shape: readonly number[], device: Device, seed = 1): [Tensor, Ref] {
  const values = uniform(sizeOf(shape), seed);
  return [fromArray(values, shape, { device }), { shape, data: Float64Array.from(values) }];
}

async function expectRef(t: Tensor, expected: Ref, what: string, tol = 0): Promise<void> {
  assert.deepEqual(t.shape, expected.shape, `${what}: shape`);
  assertClose(await t.data(), expected.data, tol, what);
}

for (const device of devices) {
  Deno.test(`permute and transpose on ${device.name} match the reference`, opts, async () => {
    const cases: [number[], number[]][] = [
      [[2, 3, 4], [2, 0, 1]],
      [[2, 3, 4], [-1, -2, -3]],
      [[1, 5, 1, 3], [3, 1, 0, 2]],
      [[3, 1, 2, 2, 3], [4, 2, 0, 3, 1]],
      [[7], [0]],
      [[17, 33], [1, 0]],
      [[2, 2, 2, 2, 2, 2, 2, 2, 2, 2], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]],
    ];
    for (const [shape, dims] of cases) {
      const [t, r] = sample(shape, device);
      const norm = dims.map((d) => d < 0 ? d + shape.length : d);
      await expectRef(t.permute(...dims), ref.permute(r, norm), `permute [${shape}] to [${dims}]`);
      await expectRef(t.permute(dims), ref.permute(r, norm), `permute [${shape}] to an array`);
    }
    const [t, r] = sample([2, 3, 4], device);
    await expectRef(t.transpose(0, 2), ref.permute(r, [2, 1, 0]), "transpose(0, 2)");
    await expectRef(t.transpose(-1, 1), ref.permute(r, [0, 2, 1]), "transpose(-1, 1)");
    await expectRef(t.transpose(1, 1), r, "transpose(1, 1)");
    const m = fromArray([1, 2, 3, 4, 5, 6], [2, 3], { device });
    assert.deepEqual([...await m.transpose().data()], [1, 4, 2, 5, 3, 6]);
    assert.deepEqual([...await m.transpose(1, 0).data()], [1, 4, 2, 5, 3, 6]);
    assert.deepEqual([...await fromArray([5], [1], { device }).transpose(0, -1).data()], [5]);
  });

  Deno.test(`slice on ${device.name} follows Python's slicing`, opts, async () => {
    const [t, r] = sample([4, 7, 3], device, 2);
    const cases: [number, number | undefined, number | undefined, number][] = [
      [1, 2, 5, 1],
      [1, undefined, undefined, 1],
      [1, -3, undefined, 1],
      [1, 1, -1, 2],
      [-2, undefined, undefined, 3],
      [0, -100, 100, 1],
      [2, 2, undefined, 1],
      [-1, 0, 3, 5],
      [0, 3, 4, 2],
      [1, 6, 7, 1],
    ];
    for (const [axis, start, end, step] of cases) {
      const ax = axis < 0 ? axis + 3 : axis;
      const picks = ref.indices(t.shape[ax], start, end, step);
      await expectRef(
        t.slice(axis, start, end, step),
        ref.select(r, ax, picks),
        `slice(${axis}, ${start}, ${end}, ${step})`,
      );
    }
    const u = fromArray([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10], { device });
    assert.deepEqual([...await u.slice(0, -4, undefined, 2).data()], [6, 8]);
    assert.deepEqual([...await u.slice(0, 1, 9, 3).data()], [1, 4, 7]);
  });

  Deno.test(`cat and stack on ${device.name} match the reference`, opts, async () => {
    const [a, ra] = sample([2, 3, 4], device, 1);
    const [b, rb] = sample([2, 1, 4], device, 2);
    const [c, rc] = sample([2, 5, 4], device, 3);
    await expectRef(cat([a, b, c], 1), ref.cat([ra, rb, rc], 1), "cat axis 1");
    await expectRef(cat([a, b, c], -2), ref.cat([ra, rb, rc], 1), "cat axis -2");
    await expectRef(cat([a, a], 0), ref.cat([ra, ra], 0), "cat axis 0");
    await expectRef(cat([a, a, a], 2), ref.cat([ra, ra, ra], 2), "cat axis 2");
    await expectRef(cat([a]), ra, "cat of one tensor");
    // More tensors than one kernel binds: joined in a tree.
    const many = Array.from({ length: 17 }, (_, i) => sample([1, 2], device, 10 + i));
    await expectRef(
      cat(many.map(([t]) => t), 0),
      ref.cat(many.map(([, r]) => r), 0),
      "cat of 17 tensors",
    );
    await expectRef(
      stack(many.map(([t]) => t), 1),
      ref.stack(many.map(([, r]) => r), 1),
      "stack of 17 tensors",
    );
    for (const axis of [0, 1, 2, 3, -1, -4]) {
      const ax = axis < 0 ? axis + 4 : axis;
      await expectRef(
        stack([a, a.mul(2)], axis),
        ref.stack([ra, {
          shape: ra.shape,
          data: ra.data.map((v) => Math.fround(v * 2)),
        }], ax),
        `stack along ${axis}`,
      );
    }
    const s = stack([fromArray([1], [], { device }), fromArray([2], [], { device })]);
    assert.deepEqual(s.shape, [2]);
    assert.deepEqual([...await s.data()], [1, 2]);
  });

  Deno.test(`indexSelect and gather on ${device.name} match the reference`, opts, async () => {
    const [t, r] = sample([3, 4, 5], device, 4);
    for (const [axis, picks] of [[0, [2, 0, 2, 1]], [1, [3]], [-1, [4, 4, 0, 1, 2, 3]]] as const) {
      const ax = axis < 0 ? axis + 3 : axis;
      const index = fromArray(picks, [picks.length], { device });
      await expectRef(
        t.indexSelect(axis, index),
        ref.select(r, ax, picks),
        `indexSelect(${axis}, [${picks}])`,
      );
    }
    // An index whose values are not known on the host is checked on its device.
    const computed = fromArray([1, 0], [2], { device }).mul(2);
    await expectRef(t.indexSelect(1, computed), ref.select(r, 1, [2, 0]), "computed index");
    for (const [axis, shape] of [[0, [2, 4, 5]], [1, [3, 6, 2]], [2, [1, 1, 9]]] as const) {
      const values = uniform(sizeOf(shape), 7 + axis, 0, r.shape[axis]).map(Math.floor);
      const index = fromArray(values, shape, { device });
      await expectRef(
        t.gather(axis, index),
        ref.gather(r, axis, { shape, data: Float64Array.from(values) }),
        `gather(${axis}) with an index of [${shape}]`,
      );
    }
    const m = fromArray([1, 2, 3, 4], [2, 2], { device });
    assert.deepEqual([...await m.gather(1, fromArray([0, 0, 1, 0], [2, 2], { device })).data()], [
      1,
      1,
      4,
      3,
    ]);
  });

  Deno.test(`indexAdd and scatterAdd on ${device.name} add up repeated indices`, opts, async () => {
    const zeros3 = fromArray([10, 20, 30], [3], { device });
    const added = zeros3.indexAdd(
      0,
      fromArray([2, 0, 2], [3], { device }),
      fromArray([1, 2, 3], [3], { device }),
    );
    assert.deepEqual([...await added.data()], [12, 20, 34]);
    const base = fromArray([0, 0, 0, 0], [2, 2], { device });
    const index = fromArray([0, 0, 1, 0], [2, 2], { device });
    const src = fromArray([1, 2, 3, 4, 5, 6], [2, 3], { device });
    assert.deepEqual([...await base.scatterAdd(1, index, src).data()], [3, 0, 5, 4]);
  });

  Deno.test(`matmul on ${device.name} follows torch.matmul's shapes and values`, opts, async () => {
    const cases: [number[], number[]][] = [
      [[5], [5]],
      [[4], [4, 3]],
      [[3, 4], [4]],
      [[2, 3, 4], [4]],
      [[4], [2, 4, 3]],
      [[2, 3, 4], [4, 6]],
      [[3, 4], [2, 4, 6]],
      [[2, 3, 5], [2, 5, 7]],
      [[2, 1, 3, 4], [5, 4, 6]],
      [[1, 3, 4], [2, 1, 4, 8]],
      [[3, 1, 2, 3], [1, 2, 3, 2]],
      [[1, 1], [1, 1]],
      [[17, 33], [33, 9]],
      [[3, 17, 33], [3, 33, 9]],
    ];
    for (const [sa, sb] of cases) {
      const [a, ra] = sample(sa, device, 1);
      const [b, rb] = sample(sb, device, 2);
      const K = sa.length === 1 ? sa[0] : sa[sa.length - 1];
      await expectRef(a.matmul(b), ref.matmul(ra, rb), `[${sa}] @ [${sb}]`, 1e-6 * K);
    }
  });

  Deno.test(`shape ops on ${device.name} reject bad arguments at the call`, opts, () => {
    const t = fromArray([1, 2, 3, 4, 5, 6], [1, 2, 3], { device });
    assert.throws(() => t.permute(0, 1), RangeError);
    assert.throws(() => t.permute(0, 0, 1), /Cannot permute shape \[1, 2, 3\] to dims \[0, 0, 1\]/);
    assert.throws(() => t.transpose(0, 3), RangeError);
    assert.throws(() => t.transpose(0), TypeError);
    assert.throws(() => t.transpose(), /transpose\(\) without dims needs a 2-D tensor/);
    assert.throws(() => t.slice(2, 1, 1), /no entry of the 3 is left/);
    assert.throws(() => t.slice(2, 0, 3, 0), RangeError);
    assert.throws(() => t.slice(2, 0.5), RangeError);
    assert.throws(() => t.slice(3), RangeError);
    assert.throws(() => t.indexSelect(2, fromArray([3], [1], { device })), {
      name: "RangeError",
      message: /index 3 at position 0 is not a whole number in \[0, 3\)/,
    });
    assert.throws(() => t.indexSelect(2, fromArray([-1], [1], { device })), RangeError);
    assert.throws(() => t.indexSelect(2, fromArray([0.5], [1], { device })), RangeError);
    assert.throws(() => t.indexSelect(2, fromArray([0, 1], [1, 2], { device })), /must be 1-D/);
    assert.throws(
      () => t.gather(2, fromArray([0, 1], [2], { device })),
      /with an index of shape \[2\]/,
    );
    assert.throws(
      () => t.gather(1, fromArray([0, 2, 0, 1, 0, 1], [1, 2, 3], { device })),
      /index 2 at position 1/,
    );
    assert.throws(() => t.matmul(fromArray([1, 2], [2], { device })), {
      name: "RangeError",
      message: "Cannot multiply as shapes [1, 2, 3] and [2] do not align: inner sizes are 3 and 2",
    });
    assert.throws(
      () => rand([2, 3, 4], { device }).matmul(rand([3, 4, 5], { device })),
      /batch dims \[2\] and \[3\] do not broadcast/,
    );
    assert.throws(() => t.matmul(fromArray([1], [], { device })), RangeError);
    assert.throws(() => cat([t, fromArray([1, 2], [1, 2], { device })]), {
      name: "RangeError",
      message: /Cannot cat shapes \[1, 2, 3\], \[1, 2\] along axis 0: tensor 1's shape \[1, 2\]/,
    });
    assert.throws(() => cat([t, t], 3), RangeError);
    assert.throws(() => cat([]), TypeError);
    assert.throws(() => cat([fromArray([1], [], { device })]), RangeError);
    assert.throws(
      () => stack([t, fromArray([1, 2, 3], [1, 1, 3], { device })]),
      /tensor 1's shape \[1, 1, 3\] differs/,
    );
    assert.throws(() => stack([t], 4), RangeError);
  });
}

Deno.test("a valid gather index is not rejected", opts, async () => {
  const t = fromArray([1, 2, 3, 4, 5, 6], [1, 2, 3]);
  const g = t.gather(1, fromArray([0, 1, 0, 1, 0, 1], [1, 2, 3]));
  assert.deepEqual([...await g.data()], [1, 5, 3, 4, 2, 6]);
});

if (gpus.length > 0) {
  const gpu = gpus[0];

  Deno.test("shape ops on a GPU agree with the host", opts, async () => {
    const x = rand([3, 5, 7], { seed: 3 }), y = rand([3, 7, 2], { seed: 4 });
    const index = fromArray([4, 0, 4, 2], [4]);
    const gi = fromArray(uniform(3 * 5 * 4, 9, 0, 7).map(Math.floor), [3, 5, 4]);
    const ops: [string, (x: Tensor, y: Tensor, i: Tensor, g: Tensor) => Tensor][] = [
      ["permute", (x) => x.permute(1, 2, 0)],
      ["slice", (x) => x.slice(2, 1, undefined, 3)],
      ["cat", (x) => cat([x, x.slice(1, 0, 2)], 1)],
      ["stack", (x) => stack([x, x], -1)],
      ["indexSelect", (x, _y, i) => x.indexSelect(1, i)],
      ["gather", (x, _y, _i, g) => x.gather(2, g)],
      ["matmul", (x, y) => x.matmul(y)],
    ];
    for (const [name, f] of ops) {
      const onHost = await f(x, y, index, gi).data();
      const [xg, yg, ig, gg] = [x, y, index, gi].map((t) => t.to(gpu));
      assertClose(await f(xg, yg, ig, gg).data(), onHost, 1e-6, `${name} on ${gpu.name}`);
    }
  });

  Deno.test(
    "a bad index computed on a GPU fails the op at the next synchronisation",
    opts,
    async () => {
      const x = rand([3, 4], { device: gpu, seed: 1 });
      const index = fromArray([1, 2], [2], { device: gpu }).mul(2); // [2, 4]: 4 is out of range
      const picked = x.indexSelect(1, index);
      await assert.rejects(() => picked.data(), (e: AggregateError) => {
        assert.match(
          e.message,
          /Cannot index-select along axis 1 of shape \[3, 4\]: index 4 at position 1/,
        );
        return true;
      });
      const gathered = x.gather(0, fromArray([0, 1, 2, 3], [1, 4], { device: gpu }).add(0.5));
      await assert.rejects(
        () => gathered.data(),
        /Cannot gather along axis 0 of shape \[3, 4\]: index 0.5 at position 0/,
      );
    },
  );

  Deno.test(
    "batched matmul on a GPU matches the host at odd and vectorised sizes",
    opts,
    async () => {
      for (
        const [sa, sb] of [[[4, 8, 12], [4, 12, 16]], [[3, 9, 13], [13, 7]], [[9, 13], [
          2,
          3,
          13,
          5,
        ]]]
      ) {
        const a = rand(sa, { seed: 1 }), b = rand(sb, { seed: 2 });
        const expected = await a.matmul(b).data();
        const K = sa[sa.length - 1];
        assertClose(
          await a.to(gpu).matmul(b.to(gpu)).data(),
          expected,
          1e-6 * K,
          `[${sa}] @ [${sb}]`,
        );
      }
    },
  );
}

/** The gradient of `sum(f(xs) * w)` by autograd, against float64 central differences of `r`. */
async function checkGrad(
  device: Device,
  shapes: readonly (readonly number[])[],
  f: (xs: Tensor[]) => Tensor,
  r: (xs: Ref[]) => Ref,
  what: string,
): Promise<void> {
  const values = shapes.map((s, k) => uniform(sizeOf(s), 31 + k));
  const refs = shapes.map((shape, k) => ({ shape, data: Float64Array.from(values[k]) }));
  const expected = r(refs);
  const w = Float64Array.from(uniform(expected.data.length, 99, 0.5, 1.5));
  const loss = (xs: Ref[]) => r(xs).data.reduce((s, v, i) => s + v * w[i], 0);
  const leaves = shapes.map((s, k) => fromArray(values[k], s, { device, requiresGrad: true }));
  const out = f(leaves);
  assert.deepEqual(out.shape, expected.shape, `${what}: shape`);
  out.mul(fromArray(Float32Array.from(w), out.shape, { device })).sum().backward();
  const h = 1e-3;
  for (const [k, leaf] of leaves.entries()) {
    const numeric = Float64Array.from(refs[k].data, (_, j) => {
      const probe = (delta: number) => {
        const data = refs[k].data.slice();
        data[j] += delta;
        return loss(refs.map((x, i) => i === k ? { shape: x.shape, data } : x));
      };
      return (probe(h) - probe(-h)) / (2 * h);
    });
    assert.ok(leaf.grad, `${what}: x${k} got no gradient`);
    assert.deepEqual(leaf.grad.shape, leaf.shape, `${what}: shape of the gradient of x${k}`);
    assertClose(await leaf.grad.data(), numeric, 1e-4, `${what}: gradient of x${k}`, 4);
  }
}

for (const device of devices) {
  Deno.test(
    `gradients of the shape ops on ${device.name} match central differences`,
    opts,
    async () => {
      const idx = (values: number[], shape: number[]) => fromArray(values, shape, { device });
      const cases: [string, number[][], (xs: Tensor[]) => Tensor, (xs: Ref[]) => Ref][] = [
        ["permute", [[2, 3, 4]], ([x]) => x.permute(2, 0, 1), ([x]) => ref.permute(x, [2, 0, 1])],
        [
          "transpose(0, 2)",
          [[2, 1, 3]],
          ([x]) => x.transpose(0, 2),
          ([x]) => ref.permute(x, [2, 1, 0]),
        ],
        ["slice", [[3, 5]], ([x]) => x.slice(1, 1, 4), ([x]) => ref.select(x, 1, [1, 2, 3])],
        [
          "stepped slice",
          [[3, 7]],
          ([x]) => x.slice(-1, 1, undefined, 3),
          ([x]) => ref.select(x, 1, [1, 4]),
        ],
        ["cat", [[2, 3], [2, 1], [2, 2]], (xs) => cat(xs, 1), (xs) => ref.cat(xs, 1)],
        ["stack", [[2, 3], [2, 3]], (xs) => stack(xs, 1), (xs) => ref.stack(xs, 1)],
        [
          "indexSelect",
          [[4, 3]],
          ([x]) => x.indexSelect(0, idx([3, 0, 3, 3, 1], [5])),
          ([x]) => ref.select(x, 0, [3, 0, 3, 3, 1]),
        ],
        [
          "gather",
          [[3, 4]],
          ([x]) => x.gather(1, idx([0, 0, 3, 1, 2, 2, 3, 3, 0], [3, 3])),
          ([x]) =>
            ref.gather(x, 1, { shape: [3, 3], data: Float64Array.of(0, 0, 3, 1, 2, 2, 3, 3, 0) }),
        ],
        ["matmul 1-D by 1-D", [[5], [5]], ([a, b]) => a.matmul(b), ([a, b]) => ref.matmul(a, b)],
        [
          "matmul 1-D by 3-D",
          [[3], [2, 3, 4]],
          ([a, b]) => a.matmul(b),
          ([a, b]) => ref.matmul(a, b),
        ],
        [
          "matmul 3-D by 1-D",
          [[2, 3, 4], [4]],
          ([a, b]) => a.matmul(b),
          ([a, b]) => ref.matmul(a, b),
        ],
        [
          "matmul 3-D by 2-D",
          [[2, 3, 4], [4, 2]],
          ([a, b]) => a.matmul(b),
          ([a, b]) => ref.matmul(a, b),
        ],
        [
          "matmul broadcast",
          [[2, 1, 3, 4], [5, 4, 2]],
          ([a, b]) => a.matmul(b),
          ([a, b]) => ref.matmul(a, b),
        ],
        [
          "matmul 2-D by 3-D",
          [[3, 4], [2, 4, 2]],
          ([a, b]) => a.matmul(b),
          ([a, b]) => ref.matmul(a, b),
        ],
      ];
      for (const [what, shapes, f, r] of cases) await checkGrad(device, shapes, f, r, what);
    },
  );
}

Deno.test("indexAdd and scatterAdd pass gradients to both tensors", opts, async () => {
  const self = fromArray([1, 2, 3], [3], { requiresGrad: true });
  const source = fromArray([4, 5], [2], { requiresGrad: true });
  self.indexAdd(0, fromArray([2, 2], [2]), source).mul(fromArray([1, 2, 3], [3])).sum().backward();
  assert.deepEqual([...await self.grad!.data()], [1, 2, 3]);
  assert.deepEqual([...await source.grad!.data()], [3, 3]);
  const base = fromArray([0, 0, 0, 0], [2, 2], { requiresGrad: true });
  const src = fromArray([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
  base.scatterAdd(1, fromArray([1, 0, 1, 1], [2, 2]), src).mul(fromArray([1, 2, 3, 4], [2, 2]))
    .sum().backward();
  assert.deepEqual([...await base.grad!.data()], [1, 2, 3, 4]);
  // src's entries beyond the index (its last column) are not read: their gradient is 0.
  assert.deepEqual([...await src.grad!.data()], [2, 1, 0, 4, 4, 0]);
});

Deno.test("shape ops record no graph inside noGrad", opts, () => {
  const x = fromArray([1, 2, 3, 4], [2, 2], { requiresGrad: true });
  const y = noGrad(() => cat([x.permute(1, 0), x.slice(0, 1)]).matmul(x));
  assert.equal(y.requiresGrad, false);
  assert.equal(cat([x, x]).gradFn?.name, "cat");
  assert.equal(x.slice(1, 0, 1).gradFn?.name, "slice");
});

Deno.test("cat and stack name the devices that differ", opts, () => {
  if (gpus.length === 0) return;
  const a = fromArray([1], [1]);
  const b = fromArray([1], [1], { device: gpus[0] });
  assert.throws(() => cat([a, b]), {
    name: "TypeError",
    message: /Cannot cat tensors on different devices, cpu \(item 0\) and gpu:0 \(item 1\)/,
  });
  assert.throws(() => stack([a, a, b]), /cpu \(item 0\) and gpu:0 \(item 2\)/);
  assert.throws(() => a.indexSelect(0, fromArray([0], [1], { device: gpus[0] })), TypeError);
});

Deno.test(
  "a captured step of shape ops replays with new inputs and checks its indices",
  opts,
  async () => {
    const device = gpus[0] ?? cpu();
    const f = (x: Tensor, i: Tensor) => {
      const y = x.to(device);
      const picked = y.indexSelect(0, i.to(device)).permute(1, 0); // [3, 2]
      const both = cat([picked, y.slice(0, 0, 2).transpose()], 1); // [3, 4]
      return stack([both, both], 0).matmul(y.slice(0, 0, 4)).gather(
        2,
        fromArray([2, 0], [1, 1, 2], { device }),
      );
    };
    const step = capture(f);
    const x = (seed: number) => rand([4, 3], { seed });
    for (const seed of [1, 2, 3, 4]) {
      const [xs, is] = [x(seed), fromArray([seed % 4, 3], [2])];
      assertClose(await step.replay(xs, is).data(), await f(xs, is).data(), 1e-6, `replay ${seed}`);
    }
    assert.ok(step.replays > 0);
    assert.throws(() => step.replay(x(5), fromArray([4, 0], [2])), {
      name: "RangeError",
      message: /Cannot index-select along axis 0 of shape \[4, 3\]: index 4 at position 0/,
    });
  },
);
