/**
 * NaN, Infinity, -Infinity and -0 through every op, on the host and on a GPU: both give what
 * PyTorch gives (NaN propagates through relu and max; IEEE arithmetic otherwise).
 *
 * @module
 */
import assert from "node:assert/strict";
import { cpu, type Device, fromArray, type Tensor, tryAllGpus } from "../../mod.ts";

const SPECIAL = [NaN, Infinity, -Infinity, -0, 0, 1, -1, 2.5, -3, 1e-30, 88, -88];
const gpus = await tryAllGpus({ count: 1 });
const devices: Device[] = [cpu(), ...gpus];

/** Same value, NaN equal to NaN; -0 and 0 equal unless `signed`. */
function same(a: number, b: number, signed: boolean): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (signed) return Object.is(a, b);
  return a === b || Math.abs(a - b) <= 2e-6 * Math.max(1, Math.abs(b));
}

function assertSame(got: Float32Array, want: ArrayLike<number>, what: string, signed = false) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (!same(got[i], want[i], signed)) {
      assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
    }
  }
}

/** What PyTorch gives for each unary op, in float64 then rounded as float32 stores it. */
const UNARY: Record<string, (x: number) => number> = {
  relu: (x) => Number.isNaN(x) ? NaN : x > 0 ? x : 0,
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  sqrt: Math.sqrt,
};

const f32 = (xs: number[]) => [...new Float32Array(xs)];

for (const device of devices) {
  // 12 values and the same 8 more times (96): both the vec4 and the scalar kernels.
  for (const n of [SPECIAL.length, SPECIAL.length * 8 + 1]) {
    const values = Array.from({ length: n }, (_, i) => SPECIAL[i % SPECIAL.length]);
    const x = () => fromArray(values, [n], { device });

    for (const [op, ref] of Object.entries(UNARY)) {
      Deno.test(`${op} of NaN, ±Infinity and -0 on ${device.name} (${n} elements) is PyTorch's`, async () => {
        const got = await (x() as unknown as Record<string, () => Tensor>)[op]().data();
        assertSame(got, f32(values.map(ref)), op, op === "neg");
      });
    }

    for (const op of ["add", "sub", "mul", "div"] as const) {
      Deno.test(`${op} of every pair of special values on ${device.name} (${n} elements) is IEEE's`, async () => {
        const other = [...values].reverse();
        const got = await x()[op](fromArray(other, [n], { device })).data();
        const apply = {
          add: (a: number, b: number) => a + b,
          sub: (a: number, b: number) => a - b,
          mul: (a: number, b: number) => a * b,
          div: (a: number, b: number) => a / b,
        }[op];
        assertSame(
          got,
          f32(values.map((v, i) => apply(Math.fround(v), Math.fround(other[i])))),
          op,
        );
      });
    }
  }

  Deno.test(`max over a NaN is NaN and over -Infinity alone is -Infinity on ${device.name}`, async () => {
    const m = fromArray([-Infinity, -Infinity, NaN, 1, 2, -0], [3, 2], { device });
    assertSame(await m.max().data(), [NaN], "max()");
    assertSame(await m.max(0).data(), [NaN, 1], "max(0)");
    assertSame(await m.max(1).data(), [-Infinity, NaN, 2], "max(1)");
    const onlyInf = fromArray([-Infinity, -Infinity, -Infinity, -Infinity], [2, 2], { device });
    assertSame(await onlyInf.max(0).data(), [-Infinity, -Infinity], "max(0) of -Infinity");
    assertSame(await onlyInf.max(1).data(), [-Infinity, -Infinity], "max(1) of -Infinity");
    assertSame(await onlyInf.max().data(), [-Infinity], "max() of -Infinity");
  });

  Deno.test(`sum and mean carry NaN and Infinity on ${device.name}`, async () => {
    const m = fromArray([Infinity, 1, NaN, 2, -Infinity, 3], [3, 2], { device });
    assertSame(await m.sum(1).data(), [Infinity, NaN, -Infinity], "sum(1)");
    assertSame(await m.mean(0).data(), [NaN, 2], "mean(0)");
    assertSame(
      await fromArray([Infinity, -Infinity], [2], { device }).sum().data(),
      [NaN],
      "inf - inf",
    );
  });

  Deno.test(`mm and logSoftmax carry NaN on ${device.name}`, async () => {
    const a = fromArray([1, NaN, 0, 1], [2, 2], { device });
    const b = fromArray([1, 2, 3, 4], [2, 2], { device });
    assertSame(await a.mm(b).data(), [NaN, NaN, 3, 4], "mm");
    const z = fromArray([0, NaN, 1000, 0], [2, 2], { device });
    assertSame(await z.logSoftmax(1).data(), [NaN, NaN, 0, -1000], "logSoftmax");
  });
}

for (const device of devices) {
  Deno.test(`logSumExp of NaN and the infinities is PyTorch's on ${device.name}`, async () => {
    // Lines: a NaN; a +Infinity; nothing but -Infinity; large values; -0 and 0.
    const lines = [NaN, 1, 2, Infinity, 1, -Infinity, -Infinity, -Infinity, -Infinity];
    const x = fromArray([...lines, 1000, 1000, 1000, 0, -0, 0], [5, 3], { device });
    // What torch.logsumexp gives for the same values, along each axis.
    const rows = [NaN, Infinity, -Infinity, 1000 + Math.log(3), Math.log(3)];
    assertSame(await x.logSumExp(1).data(), rows, "logSumExp along rows");
    assertSame(await x.logSumExp(0).data(), [NaN, 1000, 1000], "logSumExp along columns");
  });

  Deno.test(`max's gradient at ties is PyTorch's on ${device.name}: shared over all, the first along an axis`, async () => {
    const x = fromArray([1, 3, 3, 2], [4], { device, requiresGrad: true });
    x.max().backward();
    assertSame(await x.grad!.data(), [0, 0.5, 0.5, 0], "max() gradient");
    const m = fromArray([3, 3, 1, 2, 5, 5], [3, 2], { device, requiresGrad: true });
    m.max(1).sum().backward();
    assertSame(await m.grad!.data(), [1, 0, 0, 1, 1, 0], "max(1) gradient");
  });
}
