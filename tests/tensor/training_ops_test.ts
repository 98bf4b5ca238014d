import assert from "node:assert/strict";
import {
  configureEngine,
  cpu,
  type Device,
  fromArray,
  ones,
  rand,
  synchronize,
  type Tensor,
  tryAllGpus,
  zeros,
} from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { assertClose } from "../assert_close.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });
const devices: Device[] = [gpu0, cpu()];

/** `op(A) @ op(B)` in float64 from row-major storage. */
function mmRef(
  a: Float32Array,
  b: Float32Array,
  M: number,
  K: number,
  N: number,
  tA: boolean,
  tB: boolean,
) {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        s += (tA ? a[k * M + i] : a[i * K + k]) * (tB ? b[j * K + k] : b[k * N + j]);
      }
      out[i * N + j] = s;
    }
  }
  return out;
}

/** `n` zeros that arrive late on `device`: products on gpu:1, then a copy. */
function slow(device: Device, n = 192): Tensor {
  let x = rand([192, 192], { device: gpu1, seed: 5 }).mul(0.01);
  for (let i = 0; i < 6; i++) x = x.mm(x).add(0.001);
  const zero = zeros([192, n], { device: gpu1 });
  return ones([1, 192], { device: gpu1 }).mm(x).mm(zero).sum(0).to(device, { nonBlocking: true });
}

for (const device of devices) {
  Deno.test(`mm with transA/transB on ${device.name} matches the reference`, opts, async () => {
    for (const [M, K, N] of [[1, 1, 1], [5, 3, 7], [64, 33, 10], [130, 17, 68]]) {
      for (const [tA, tB] of [[true, false], [false, true], [true, true]]) {
        const a = rand(tA ? [K, M] : [M, K], { device, seed: M + K });
        const b = rand(tB ? [N, K] : [K, N], { device, seed: N + 7 });
        const [av, bv, cv] = await Promise.all([
          a.data(),
          b.data(),
          a.mm(b, { transA: tA, transB: tB }).data(),
        ]);
        assertClose(
          cv,
          mmRef(av, bv, M, K, N, tA, tB),
          1e-5 * Math.sqrt(K),
          `${M}x${K}x${N} ${tA}${tB}`,
        );
      }
    }
  });

  Deno.test(
    `reluBackward, softmaxCrossEntropy and sub_ on ${device.name} match their CPU twins`,
    opts,
    async () => {
      const x = rand([33, 10], { device, seed: 3 }).sub(0.5).mul(20);
      const dy = rand([33, 10], { device, seed: 4 });
      const labels = fromArray(Array.from({ length: 33 }, (_, i) => i % 10), [33], { device });
      const [xv, dyv] = await Promise.all([x.data(), dy.data()]);
      assertClose(
        await x.reluBackward(dy).data(),
        Array.from(xv, (v, i) => (v > 0 ? dyv[i] : 0)),
        0,
        "reluBackward",
      );
      const { losses, grad } = x.softmaxCrossEntropy(labels, { scale: 1 / 33 });
      assert.deepEqual(losses.shape, [33]);
      assert.deepEqual(grad.shape, [33, 10]);
      const { kernel } = await import("../../lib/kernels/registry.ts");
      const [cl, cg] = kernel("softmax_cross_entropy").cpu([xv, await labels.data()], {
        rows: 33,
        cols: 10,
        scale: 1 / 33,
      });
      assertClose(await losses.data(), cl, 2e-5, "losses");
      assertClose(await grad.data(), cg, 1e-6, "grad");
      const w = x.mul(1);
      const before = w.add(0); // queued before the update: sees the old values
      assert.equal(w.sub_(dy, { alpha: 0.25 }), w);
      assertClose(await w.data(), Array.from(xv, (v, i) => v - 0.25 * dyv[i]), 1e-6, "sub_");
      assertClose(await before.data(), xv, 0, "a read queued before sub_");
    },
  );

  Deno.test(
    `sub_ on ${device.name} waits for an earlier read that waits on another device`,
    opts,
    async () => {
      const p = fromArray(Array.from({ length: 192 }, (_, i) => i), [192], { device });
      const g = fromArray(new Float32Array(192).fill(1), [192], { device });
      const late = slow(device);
      const read = p.add(late); // waits on the main thread for gpu:1
      const copy = p.to(gpu1, { nonBlocking: true }); // another reader, a copy
      p.sub_(g, { alpha: 100 });
      const after = p.add(late); // reads the new version
      const old = Array.from({ length: 192 }, (_, i) => i);
      assert.deepEqual([...await read.data()], old);
      assert.deepEqual([...await copy.data()], old);
      assert.deepEqual([...await after.data()], old.map((v) => v - 100));
      assert.deepEqual([...await p.data()], old.map((v) => v - 100));
    },
  );
}

Deno.test(
  "sub_ on a device is seen by later copies to the host and to another device",
  opts,
  async () => {
    const p = fromArray([1, 2, 3, 4], [4], { device: gpu0 });
    const g = fromArray([1, 1, 1, 1], [4], { device: gpu0 });
    const earlier = p.data();
    for (let i = 0; i < 5; i++) p.sub_(g, { alpha: 0.5 });
    const onHost = p.to(cpu());
    const onOther = p.to(gpu1, { nonBlocking: true });
    assert.deepEqual([...await earlier], [1, 2, 3, 4]);
    assert.deepEqual([...await onHost.data()], [-1.5, -0.5, 0.5, 1.5]);
    assert.deepEqual([...await onOther.data()], [-1.5, -0.5, 0.5, 1.5]);
  },
);

Deno.test(
  "in-place updates give the same values in parallel and in serial mode",
  opts,
  async () => {
    const run = async () => {
      const p = rand([64, 8], { device: gpu0, seed: 1 });
      const reads: Tensor[] = [];
      for (let i = 0; i < 4; i++) {
        reads.push(p.mul(2).to(gpu1, { nonBlocking: true }));
        p.sub_(p.mul(0.5).add(slow(gpu0, 8)).add(0.5), { alpha: 1 });
      }
      const out = await Promise.all([...reads, p].map((t) => t.data()));
      for (const t of [...reads, p]) t.dispose();
      return out;
    };
    const parallel = await run();
    configureEngine({ mode: "serial" });
    try {
      assert.deepEqual(await run(), parallel);
    } finally {
      configureEngine({ mode: "parallel" });
    }
  },
);

Deno.test("in-place updates reuse the buffer and free it once with the tensor", opts, async () => {
  await synchronize();
  const base = engine().liveBuffers();
  const p = rand([256, 16], { device: gpu0, seed: 2 });
  const g = rand([256, 16], { device: gpu0, seed: 3 });
  const reads: Tensor[] = [];
  for (let i = 0; i < 20; i++) {
    p.sub_(g, { alpha: 0.1 });
    reads.push(p.to(cpu(), { nonBlocking: true }));
  }
  await synchronize();
  // Earlier tests' temporaries may be collected meanwhile: the count can only fall by that.
  assert.ok(engine().liveBuffers().count <= base.count + 2, "an update allocated a buffer");
  const last = await reads[19].data();
  assert.deepEqual(await p.data(), last);
  for (const t of [p, g, ...reads]) t.dispose();
  await synchronize();
  assert.ok(engine().liveBuffers().count <= base.count, "a buffer outlived its tensor");
});

Deno.test("bad arguments to the training ops throw at the call", () => {
  const a = fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
  assert.throws(
    () => a.mm(a, { transB: false }),
    /Cannot multiply as shapes \[2, 3\] and \[2, 3\] do not align: inner sizes are 3 and 2/,
  );
  assert.throws(
    () => a.mm(fromArray(new Float32Array(9), [3, 3]), { transA: true }),
    /\[2, 3\] transposed and \[3, 3\] do not align: inner sizes are 2 and 3/,
  );
  assert.deepEqual(a.mm(a, { transB: true }).shape, [2, 2]);
  assert.throws(() => a.reluBackward(fromArray([1], [1])), RangeError);
  assert.throws(() => a.softmaxCrossEntropy(fromArray([0, 1, 2], [3])), /labels \[rows\]/);
  assert.throws(() => a.sub_(a), /from itself/);
  assert.throws(() => a.sub_(fromArray([1, 2, 3], [3])), /differ/);
  assert.throws(() => a.sub_(a.mul(1), { alpha: NaN }), /alpha NaN/);
});
