import assert from "node:assert/strict";
import { reluBackward, softmaxCrossEntropy, subInPlace } from "../../lib/kernels/training.ts";
import { mulberry32 } from "../../lib/train/mnist.ts";
import { getTestDevice, runKernel } from "./harness.ts";
import { assertClose } from "../assert_close.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function uniform(length: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length }, () => lo + (hi - lo) * r());
}

/** Softmax cross-entropy in float64, written apart from the CPU twin. */
function softmaxRef(z: Float32Array, labels: Float32Array, cols: number, scale: number) {
  const rows = labels.length;
  const losses = new Float64Array(rows);
  const grad = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(z.subarray(r * cols, r * cols + cols));
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    losses[r] = Math.log(s) - (row[labels[r]] - m);
    for (let j = 0; j < cols; j++) {
      grad[r * cols + j] = scale * (e[j] / s - (j === labels[r] ? 1 : 0));
    }
  }
  return { losses, grad };
}

Deno.test("softmax cross-entropy's CPU twin matches a float64 reference, even for huge logits", () => {
  for (const [rows, cols, spread] of [[1, 2, 1], [7, 10, 5], [33, 3, 1000]]) {
    const z = uniform(rows * cols, rows, -spread, spread);
    const labels = Float32Array.from({ length: rows }, (_, r) => (r * 7) % cols);
    const [losses, grad] = softmaxCrossEntropy.cpu([z, labels], { rows, cols, scale: 0.25 });
    const ref = softmaxRef(z, labels, cols, 0.25);
    assertClose(losses, ref.losses, 1e-5, `losses ${rows}x${cols}`);
    assertClose(grad, ref.grad, 1e-6, `grad ${rows}x${cols}`);
    assert.ok(losses.every(Number.isFinite));
  }
});

Deno.test("relu backward and the in-place update's CPU twins compute dy * (x > 0) and p - a*g", () => {
  const x = new Float32Array([-1, 0, 2, 3]);
  const [g] = reluBackward.cpu([x, new Float32Array([5, 6, 7, 8])], { n: 4 });
  assert.deepEqual([...g], [0, 0, 7, 8]);
  const [p] = subInPlace.cpu([new Float32Array([1, 2]), new Float32Array([10, 20])], {
    n: 2,
    alpha: 0.5,
  });
  assert.deepEqual([...p], [9.5, 19]);
});

Deno.test("the training kernels on a WebGPU device match their CPU twins", opts, async () => {
  const device = await getTestDevice();
  try {
    for (const n of [1, 7, 1024, 1027, 70_001]) {
      const x = uniform(n, n);
      const dy = uniform(n, n + 1);
      const [gpu] = await runKernel(device, reluBackward, { n }, [x, dy], [n]);
      assertClose(gpu, reluBackward.cpu([x, dy], { n })[0], 0, `relu_backward n=${n}`);
    }
    for (const [rows, cols, spread] of [[1, 2, 1], [64, 10, 8], [257, 10, 1000], [5, 1, 1]]) {
      const z = uniform(rows * cols, rows + cols, -spread, spread);
      const labels = Float32Array.from({ length: rows }, (_, r) => (r * 3) % cols);
      if (rows === 257) labels[3] = cols; // out of range: NaN, not a silent wrong loss
      const p = { rows, cols, scale: 1 / rows };
      const [losses, grad] = await runKernel(device, softmaxCrossEntropy, p, [z, labels], [
        rows,
        rows * cols,
      ]);
      const [cl, cg] = softmaxCrossEntropy.cpu([z, labels], p);
      // log(sum) + max - z cancels: float32 keeps about 1e-7 of the logits' size.
      assertClose(losses, cl, 1e-6, `losses ${rows}x${cols}`, 2 * spread);
      assertClose(grad, cg, 1e-6, `grad ${rows}x${cols}`);
      if (rows === 257) assert.ok(Number.isNaN(losses[3]) && Number.isNaN(grad[3 * cols]));
    }
  } finally {
    device.destroy();
  }
});
