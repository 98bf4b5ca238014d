/**
 * Benchmarks the matmul kernel against a reference register-blocked kernel (4x4 outputs
 * per invocation, vec4 loads, no shared memory), side by side in one run.
 *
 * Usage: `deno run -A bench/matmul.ts [--sweep]`. Prints a table and writes
 * `bench/results/matmul.json`; `--sweep` also times candidate tilings at 512.
 *
 * @module
 */

import {
  type KernelParams,
  type KernelSpec,
  packUniforms,
  wgslModule,
} from "../lib/kernels/kernel.ts";
import {
  createMatmul,
  DEFAULT_MATMUL_TILING,
  matmul,
  type MatmulParams,
} from "../lib/kernels/matmul.ts";

/** The reference: 4x4 outputs per invocation, vec4 loads; M, N, K multiples of 4. */
const reference: KernelSpec<MatmulParams> = {
  name: "matmul_reference_4x4",
  inputTypes: () => ["vec4<f32>", "vec4<f32>"],
  outputTypes: () => ["vec4<f32>"],
  uniformFields: [["M", "u32"], ["N", "u32"], ["K", "u32"]],
  uniforms: (p) => [p.M, p.N, p.K],
  variant: () => "",
  workgroups: (p) => [Math.ceil(p.N / 32), Math.ceil(p.M / 32), 1],
  wgsl: () => `
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.y * 4u;
  let col4 = gid.x;
  let N4 = u.N / 4u;
  let K4 = u.K / 4u;
  if (row >= u.M || col4 >= N4) { return; }
  var c0 = vec4<f32>(); var c1 = vec4<f32>(); var c2 = vec4<f32>(); var c3 = vec4<f32>();
  for (var kq = 0u; kq < K4; kq++) {
    let a0 = in0[(row + 0u) * K4 + kq];
    let a1 = in0[(row + 1u) * K4 + kq];
    let a2 = in0[(row + 2u) * K4 + kq];
    let a3 = in0[(row + 3u) * K4 + kq];
    let k = kq * 4u;
    let b0 = in1[(k + 0u) * N4 + col4];
    let b1 = in1[(k + 1u) * N4 + col4];
    let b2 = in1[(k + 2u) * N4 + col4];
    let b3 = in1[(k + 3u) * N4 + col4];
    c0 += a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
    c1 += a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
    c2 += a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
    c3 += a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
  }
  out0[(row + 0u) * N4 + col4] = c0;
  out0[(row + 1u) * N4 + col4] = c1;
  out0[(row + 2u) * N4 + col4] = c2;
  out0[(row + 3u) * N4 + col4] = c3;
}`,
  cpu: () => {
    throw new Error("The reference kernel has no CPU twin");
  },
};

/** A kernel bound to its buffers, ready to be dispatched many times. */
interface Prepared {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: readonly [number, number, number];
  buffers: GPUBuffer[];
}

function prepare<P extends KernelParams>(
  device: GPUDevice,
  spec: KernelSpec<P>,
  params: P,
  inputs: Float32Array[],
  outputLength: number,
): Prepared {
  const buffers = inputs.map((data) => {
    const b = device.createBuffer({
      size: data.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(b, 0, data);
    return b;
  });
  buffers.push(device.createBuffer({ size: outputLength * 4, usage: GPUBufferUsage.STORAGE }));
  const bytes = packUniforms(spec, params);
  const uniform = device.createBuffer({
    size: bytes.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(uniform, 0, bytes);
  buffers.push(uniform);
  const module = device.createShaderModule({ code: wgslModule(spec, params) });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  return { pipeline, bindGroup, workgroups: spec.workgroups(params), buffers };
}

/**
 * Seconds per dispatch, from one submit of `count` dispatches: from timestamp queries when
 * the device has them, else wall-clock (Deno's ~11.5 ms completion floor is shared by all).
 */
async function timeDispatches(device: GPUDevice, k: Prepared, count: number): Promise<number> {
  const timed = device.features.has("timestamp-query");
  const querySet = timed ? device.createQuerySet({ type: "timestamp", count: 2 * count }) : null;
  const resolve = device.createBuffer({
    size: 16 * count,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const read = device.createBuffer({
    size: 16 * count,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  for (let i = 0; i < count; i++) {
    const pass = encoder.beginComputePass(
      querySet
        ? {
          timestampWrites: {
            querySet,
            beginningOfPassWriteIndex: 2 * i,
            endOfPassWriteIndex: 2 * i + 1,
          },
        }
        : {},
    );
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, k.bindGroup);
    pass.dispatchWorkgroups(...k.workgroups);
    pass.end();
  }
  if (querySet) {
    encoder.resolveQuerySet(querySet, 0, 2 * count, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, read, 0, 16 * count);
  }
  const start = performance.now();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  const wall = (performance.now() - start) / 1000 / count;
  let seconds = wall;
  if (querySet) {
    await read.mapAsync(GPUMapMode.READ);
    const t = new BigUint64Array(read.getMappedRange());
    let ns = 0n;
    for (let i = 0; i < count; i++) ns += t[2 * i + 1] - t[2 * i];
    read.unmap();
    seconds = Number(ns) / 1e9 / count;
    querySet.destroy();
  }
  resolve.destroy();
  read.destroy();
  return seconds;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Median GFLOP/s of each kernel on one problem, repetitions interleaved so drift hits all alike. */
async function compare(
  device: GPUDevice,
  kernels: Record<string, KernelSpec<MatmulParams>>,
  params: MatmulParams,
  reps: number,
): Promise<Record<string, { gflops: number; runs: number[] }>> {
  const { M, N, K } = params;
  const a = Float32Array.from({ length: M * K }, () => Math.random() - 0.5);
  const b = Float32Array.from({ length: K * N }, () => Math.random() - 0.5);
  const flops = 2 * M * N * K;
  const prepared = Object.fromEntries(
    Object.entries(kernels).map((
      [name, spec],
    ) => [name, prepare(device, spec, params, [a, b], M * N)]),
  );
  const runs: Record<string, number[]> = Object.fromEntries(
    Object.keys(kernels).map((k) => [k, []]),
  );
  // Warm up (compiles the shaders) and pick dispatches per submit for ~0.3 s batches.
  const perSubmit: Record<string, number> = {};
  for (const [name, k] of Object.entries(prepared)) {
    const s = await timeDispatches(device, k, 1);
    perSubmit[name] = Math.max(1, Math.min(20, Math.round(0.3 / s)));
  }
  for (let r = 0; r < reps; r++) {
    for (const [name, k] of Object.entries(prepared)) {
      runs[name].push(flops / (await timeDispatches(device, k, perSubmit[name])) / 1e9);
    }
  }
  Object.values(prepared).forEach((k) => k.buffers.forEach((b) => b.destroy()));
  return Object.fromEntries(
    Object.entries(runs).map(([name, xs]) => [name, { gflops: median(xs), runs: xs }]),
  );
}

/** Median over repetitions of the per-repetition ratio (paired, so shared noise cancels). */
const pairedRatio = (xs: number[], ys: number[]): number => median(xs.map((x, i) => x / ys[i]));

if (import.meta.main) {
  // Mesa's Vulkan driver complains on every adapter request without XDG_RUNTIME_DIR.
  if (Deno.env.get("XDG_RUNTIME_DIR") === undefined) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("Cannot benchmark matmul as navigator.gpu has no adapter");
  const features: GPUFeatureName[] = adapter.features.has("timestamp-query")
    ? ["timestamp-query"]
    : [];
  const device = await adapter.requestDevice({ requiredFeatures: features });
  const adapterName = adapter.info.description || adapter.info.vendor;
  const threads = Deno.env.get("LP_NUM_THREADS") ??
    `default (${navigator.hardwareConcurrency} cores)`;
  const timing = features.length ? "timestamp-query" : "wall-clock";
  console.log(`adapter: ${adapterName}, LP_NUM_THREADS: ${threads}, timing: ${timing}`);

  const rows: { size: number; matmul: number; reference: number; ratio: number; reps: number }[] =
    [];
  const raw: Record<string, unknown> = {};
  for (const size of [256, 512, 1024]) {
    const started = performance.now();
    const reps = size >= 1024 ? 3 : 5;
    const square = { M: size, N: size, K: size, transA: false, transB: false };
    const r = await compare(device, { matmul, reference }, square, reps);
    rows.push({
      size,
      matmul: r.matmul.gflops,
      reference: r.reference.gflops,
      ratio: pairedRatio(r.matmul.runs, r.reference.runs),
      reps,
    });
    raw[size] = r;
    console.log(`${size}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  console.log("\nsize  matmul GFLOP/s  reference GFLOP/s  ratio   (medians)");
  for (const r of rows) {
    console.log(
      `${String(r.size).padEnd(5)} ${r.matmul.toFixed(3).padStart(14)} ${
        r.reference.toFixed(3).padStart(18)
      } ${r.ratio.toFixed(2).padStart(6)}x`,
    );
  }

  // The paths the reference cannot run: transposes, and sizes not divisible by 4 (scalar loads).
  const variants: { shape: string; variant: string; gflops: number }[] = [];
  for (
    const [n, transA, transB] of [
      [512, true, false],
      [512, false, true],
      [512, true, true],
      [511, false, false],
      [511, true, true],
    ] as const
  ) {
    const params = { M: n, N: n, K: n, transA, transB };
    const r = await compare(device, { matmul }, params, 3);
    const shape = `${n}^3 ${transA ? "A^T" : "A"}*${transB ? "B^T" : "B"}`;
    variants.push({ shape, variant: matmul.variant(params), gflops: r.matmul.gflops });
  }
  console.log("\nother paths of matmul (median GFLOP/s of 3):");
  for (const v of variants) {
    console.log(`  ${v.shape.padEnd(16)} ${v.variant.padEnd(22)} ${v.gflops.toFixed(3)}`);
  }

  let sweep: Record<string, number> | undefined;
  const sweepArg = Deno.args.find((a) => a.startsWith("--sweep"));
  if (sweepArg) {
    const spec = sweepArg.split("=")[1] ??
      "4x4@8x8,8x8@8x8,8x8@4x4,16x16@4x4,16x16@8x2,16x32@8x2,32x32@8x1";
    const sweepSize = Number(Deno.env.get("SWEEP_SIZE") ?? 512);
    const kernels = Object.fromEntries(
      spec.split(",").map((s) => {
        const [tm, tn, wx, wy] = s.split(/[x@]/).map(Number);
        return [s, createMatmul({ tm, tn, wx, wy })];
      }),
    );
    const sweepReps = Number(Deno.env.get("SWEEP_REPS") ?? 5);
    const r = await compare(
      device,
      { ...kernels, reference },
      { M: sweepSize, N: sweepSize, K: sweepSize, transA: false, transB: false },
      sweepReps,
    );
    sweep = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.gflops]));
    console.log(`\nsweep at ${sweepSize} (median GFLOP/s of ${sweepReps}):`);
    for (const [k, v] of Object.entries(r)) {
      console.log(
        `  ${k.padEnd(22)} ${v.gflops.toFixed(3)}   [${v.runs.map((x) => x.toFixed(2)).join(" ")}]`,
      );
    }
  }

  await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(
    new URL("./results/matmul.json", import.meta.url),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        adapter: adapterName,
        lpNumThreads: threads,
        timing,
        tiling: DEFAULT_MATMUL_TILING,
        rows,
        variants,
        raw,
        sweep,
      },
      null,
      2,
    ) + "\n",
  );
  device.destroy();
}
