import assert from "node:assert/strict";
import { cpu, type Device, fromArray, rand, type Tensor, tryAllGpus } from "../../mod.ts";
import { kernel } from "../../lib/kernels/registry.ts";
import { assertClose } from "../assert_close.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const gpus = await tryAllGpus({ count: 2 });
const devices: Device[] = [...gpus.slice(0, 1), cpu()];
const SHAPES: [number, number][] = [[1, 1], [3, 5], [17, 33], [64, 64], [65, 127]];

/** Plain-JS references, written apart from the kernels' CPU twins. */
const ref = {
  mm(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float64Array {
    const out = new Float64Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
        out[i * N + j] = s;
      }
    }
    return out;
  },
};

const values = (t: Tensor) => t.data();

for (const device of devices) {
  Deno.test(
    `mm on ${device.name} matches the reference at sizes that are not multiples of the tile`,
    opts,
    async () => {
      for (const [M, K, N] of [[1, 1, 1], [3, 5, 7], [17, 33, 9], [64, 64, 64], [65, 127, 33]]) {
        const a = rand([M, K], { device, seed: M });
        const b = rand([K, N], { device, seed: N + 100 });
        const [av, bv, cv] = await Promise.all([values(a), values(b), values(a.mm(b))]);
        assertClose(cv, ref.mm(av, bv, M, K, N), 1e-5 * Math.sqrt(K), `mm ${M}x${K}x${N}`);
      }
    },
  );

  Deno.test(
    `add, sub and mul on ${device.name} match the reference for tensors, rows and scalars`,
    opts,
    async () => {
      for (const [r, c] of SHAPES) {
        const a = rand([r, c], { device, seed: 1 });
        const b = rand([r, c], { device, seed: 2 });
        const row = rand([c], { device, seed: 3 });
        const [av, bv, rv] = await Promise.all([values(a), values(b), values(row)]);
        const cases: [string, Tensor, (i: number) => number][] = [
          ["add", a.add(b), (i) => av[i] + bv[i]],
          ["sub", a.sub(b), (i) => av[i] - bv[i]],
          ["mul", a.mul(b), (i) => av[i] * bv[i]],
          ["add row", a.add(row), (i) => av[i] + rv[i % c]],
          ["sub row", a.sub(row), (i) => av[i] - rv[i % c]],
          ["mul row", a.mul(row), (i) => av[i] * rv[i % c]],
          ["add scalar", a.add(2.5), (i) => av[i] + 2.5],
          ["sub scalar", a.sub(-1), (i) => av[i] + 1],
          ["mul scalar", a.mul(0.5), (i) => av[i] * 0.5],
        ];
        for (const [what, t, f] of cases) {
          assertClose(
            await t.data(),
            Array.from({ length: r * c }, (_, i) => f(i)),
            1e-6,
            `${what} [${r}, ${c}]`,
          );
        }
      }
    },
  );

  Deno.test(`relu, transpose and sum on ${device.name} match the reference`, opts, async () => {
    for (const [r, c] of SHAPES) {
      const a = rand([r, c], { device, seed: 9 }).sub(0.5);
      const av = await a.data();
      assertClose(
        await a.relu().data(),
        Array.from(av, (v) => Math.max(v, 0)),
        0,
        `relu [${r}, ${c}]`,
      );
      const tv = await a.transpose().data();
      assert.deepEqual(a.transpose().shape, [c, r]);
      for (let i = 0; i < r; i++) {
        for (let j = 0; j < c; j++) assert.equal(tv[j * r + i], av[i * c + j]);
      }
      const total = av.reduce((s, v) => s + v, 0);
      assert.deepEqual(a.sum().shape, []);
      assertClose(await a.sum().data(), [total], 1e-5 * Math.sqrt(r * c), `sum [${r}, ${c}]`);
      const cols = Array.from({ length: c }, (_, j) => {
        let s = 0;
        for (let i = 0; i < r; i++) s += av[i * c + j];
        return s;
      });
      const rows = Array.from(
        { length: r },
        (_, i) => av.slice(i * c, i * c + c).reduce((s, v) => s + v, 0),
      );
      assertClose(await a.sum(0).data(), cols, 1e-5 * Math.sqrt(r), `sum(0) [${r}, ${c}]`);
      assertClose(await a.sum(1).data(), rows, 1e-5 * Math.sqrt(c), `sum(1) [${r}, ${c}]`);
      assertClose(await a.sum(-1).data(), rows, 1e-5 * Math.sqrt(c), `sum(-1) [${r}, ${c}]`);
    }
  });

  Deno.test(`zeros, ones and fromArray on ${device.name} hold the right values`, opts, async () => {
    const { zeros, ones } = await import("../../mod.ts");
    assert.deepEqual(await zeros([2, 3], { device }).data(), new Float32Array(6));
    assert.deepEqual(await ones([3], { device }).data(), new Float32Array([1, 1, 1]));
    assert.deepEqual(
      await fromArray([1, -2, 3.5], [3], { device }).data(),
      new Float32Array([1, -2, 3.5]),
    );
  });
}

Deno.test(
  "rand with the same seed gives the same values on every device and the CPU twin",
  opts,
  async () => {
    const shape = [33, 17];
    const expected = kernel("random").cpu([], { n: 33 * 17, seed: 12345 })[0];
    for (const device of [...gpus, cpu()]) {
      assert.deepEqual(await rand(shape, { device, seed: 12345 }).data(), expected, device.name);
    }
    const other = await rand(shape, { seed: 12346 }).data();
    assert.notDeepEqual(other, expected);
    assert.ok(expected.every((v) => v >= 0 && v < 1));
    const mean = expected.reduce((s, v) => s + v, 0) / expected.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean} is far from 0.5`);
  },
);

Deno.test("every GPU kernel agrees with its CPU twin", opts, async () => {
  if (gpus.length === 0) return;
  const device = gpus[0];
  const a = rand([37, 29], { device, seed: 5 });
  const b = rand([29, 41], { device, seed: 6 });
  const [av, bv] = await Promise.all([a.data(), b.data()]);
  const twin = (
    name: string,
    inputs: Float32Array[],
    params: Record<string, number | string | boolean>,
  ) => kernel(name).cpu(inputs, params)[0];
  const checks: [string, Tensor, Float32Array][] = [
    [
      "matmul",
      a.mm(b),
      twin("matmul", [av, bv], { M: 37, N: 41, K: 29, transA: false, transB: false }),
    ],
    [
      "binary",
      a.mul(a),
      twin("binary", [av, av], { op: "mul", broadcast: "same", n: 37 * 29, cols: 29, scalar: 0 }),
    ],
    [
      "unary",
      a.sub(0.5).relu(),
      twin("unary", [await a.sub(0.5).data()], { op: "relu", n: 37 * 29 }),
    ],
    ["transpose", a.transpose(), twin("transpose", [av], { rows: 37, cols: 29 })],
    ["sum_rows", a.sum(1), twin("sum_rows", [av], { rows: 37, cols: 29 })],
    ["sum_cols", a.sum(0), twin("sum_cols", [av], { rows: 37, cols: 29 })],
  ];
  for (const [name, t, expected] of checks) assertClose(await t.data(), expected, 2e-5, name);
});
