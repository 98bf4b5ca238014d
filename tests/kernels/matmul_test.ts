import assert from "node:assert/strict";
import fc from "npm:fast-check@4.11.0";
import { MAX_WORKGROUPS_PER_DIM } from "../../lib/kernels/kernel.ts";
import {
  createMatmul,
  DEFAULT_MATMUL_TILING,
  matmul,
  matmulCpu,
  type MatmulParams,
} from "../../lib/kernels/matmul.ts";
import { getTestDevice, runKernel } from "./harness.ts";

/** Uniform floats in [-1, 1) from a small seeded generator (mulberry32). */
function randomMatrix(length: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  });
}

const abs = (xs: Float32Array): Float32Array => xs.map(Math.abs);

/**
 * Asserts `actual` matches `expected` within float32 rounding of a K-term dot product:
 * |actual - expected| <= (2K + 4) * 2^-24 * sum_k |a_ik| |b_kj|, element by element.
 */
function assertClose(
  actual: Float32Array,
  expected: Float32Array,
  a: Float32Array,
  b: Float32Array,
  p: MatmulParams,
): void {
  assert.equal(actual.length, expected.length);
  const scale = matmulCpu(abs(a), abs(b), p);
  const eps = (2 * p.K + 4) * 2 ** -24;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= eps * scale[i] + 1e-30)) {
      const [row, col] = [Math.floor(i / p.N), i % p.N];
      assert.fail(
        `matmul ${JSON.stringify(p)} differs at [${row}, ${col}]: ` +
          `got ${actual[i]}, expected ${expected[i]} (tolerance ${eps * scale[i]})`,
      );
    }
  }
}

async function checkShape(
  device: GPUDevice,
  p: MatmulParams,
  seed: number,
  spec = matmul,
): Promise<void> {
  const a = randomMatrix(p.M * p.K, seed);
  const b = randomMatrix(p.K * p.N, seed + 1);
  const [gpu] = await runKernel(device, spec, p, [a, b], [p.M * p.N]);
  assertClose(gpu, spec.cpu([a, b], p)[0], a, b, p);
}

const COMBOS = [[false, false], [true, false], [false, true], [true, true]] as const;
const comboName = (transA: boolean, transB: boolean) =>
  `${transA ? "A^T" : "A"} * ${transB ? "B^T" : "B"}`;

Deno.test("the CPU twin computes a hand-checked 2x3 by 3x2 product for every transpose", () => {
  const a = new Float32Array([1, 2, 3, 4, 5, 6]); // [[1, 2, 3], [4, 5, 6]]
  const aT = new Float32Array([1, 4, 2, 5, 3, 6]);
  const b = new Float32Array([7, 8, 9, 10, 11, 12]); // [[7, 8], [9, 10], [11, 12]]
  const bT = new Float32Array([7, 9, 11, 8, 10, 12]);
  const expected = new Float32Array([58, 64, 139, 154]);
  for (const [transA, transB] of COMBOS) {
    const p = { M: 2, N: 2, K: 3, transA, transB };
    assert.deepEqual(matmulCpu(transA ? aT : a, transB ? bT : b, p), expected);
    assert.deepEqual(matmul.cpu([transA ? aT : a, transB ? bT : b], p), [expected]);
  }
});

Deno.test("the CPU twin agrees with a naive float64 triple loop", () => {
  const [M, N, K] = [5, 7, 9];
  for (const [transA, transB] of COMBOS) {
    const p = { M, N, K, transA, transB };
    const a = randomMatrix(M * K, 1), b = randomMatrix(K * N, 2);
    const naive = new Float32Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let sum = 0;
        for (let k = 0; k < K; k++) {
          sum += (transA ? a[k * M + i] : a[i * K + k]) * (transB ? b[j * K + k] : b[k * N + j]);
        }
        naive[i * N + j] = sum;
      }
    }
    assertClose(matmulCpu(a, b, p), naive, a, b, p);
  }
});

Deno.test("matmul keeps every workgroup count within the WebGPU limit, up to 4000x4000 and beyond", () => {
  for (
    const [M, N] of [[1, 1], [4000, 4000], [2 ** 22, 1], [1, 2 ** 25], [2 ** 20, 2 ** 12]]
  ) {
    const p = { M, N, K: 1, transA: false, transB: false };
    const [x, y, z] = matmul.workgroups(p);
    for (const d of [x, y, z]) assert.ok(d >= 1 && d <= MAX_WORKGROUPS_PER_DIM, `${M}x${N}: ${d}`);
  }
});

Deno.test("matmul on WebGPU matches its CPU twin", async (t) => {
  const device = await getTestDevice();
  try {
    const shapes = [
      [1, 1, 1],
      [3, 5, 7],
      [4, 4, 3],
      [4, 4, 4],
      [8, 12, 16],
      [33, 260, 12],
      [65, 33, 17],
      [100, 36, 20],
      [1, 300, 8],
      [300, 1, 8],
      [129, 127, 131],
      [64, 64, 64],
      [256, 264, 68],
    ];
    for (const [transA, transB] of COMBOS) {
      await t.step(`${comboName(transA, transB)} is right at ${shapes.length} shapes`, async () => {
        for (const [i, [M, N, K]] of shapes.entries()) {
          await checkShape(device, { M, N, K, transA, transB }, 100 * i);
        }
      });
    }

    await t.step("a product with more than 65535 workgroups of output rows is right", async () => {
      // One row more than 65535 blocks hold: the dispatch spreads over x and y.
      const M = 65535 * DEFAULT_MATMUL_TILING.tm * DEFAULT_MATMUL_TILING.wy + 1;
      await checkShape(device, { M, N: 1, K: 1, transA: false, transB: false }, 7);
    });

    await t.step("other tilings of the same generator are right at odd shapes", async () => {
      for (const tiling of [{ tm: 4, tn: 4, wx: 16, wy: 16 }, { tm: 8, tn: 4, wx: 4, wy: 8 }]) {
        const spec = createMatmul(tiling);
        for (const [transA, transB] of COMBOS) {
          for (const [M, N, K] of [[3, 5, 7], [65, 33, 17], [68, 36, 20]]) {
            await checkShape(device, { M, N, K, transA, transB }, M + N + K, spec);
          }
        }
      }
    });

    await t.step("random small shapes and transposes match the CPU twin", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 48 }),
          fc.integer({ min: 1, max: 48 }),
          fc.integer({ min: 1, max: 48 }),
          fc.boolean(),
          fc.boolean(),
          fc.integer({ min: 0, max: 2 ** 31 - 1 }),
          async (M, N, K, transA, transB, seed) => {
            await checkShape(device, { M, N, K, transA, transB }, seed);
          },
        ),
        { numRuns: 60 },
      );
    });
  } finally {
    device.destroy();
  }
});

Deno.test("createMatmul rejects tilings that are not multiples of 4", () => {
  assert.throws(() => createMatmul({ tm: 6, tn: 8, wx: 8, wy: 1 }), RangeError);
});
