// The baseline of bench/two_devices.ts: the same products, hand-written on raw WebGPU in a
// Worker (one GPUDevice, one command buffer per run, the same matmul kernel as autopar).
import { parentPort } from "node:worker_threads";
import { matmul, type MatmulParams } from "../lib/kernels/matmul.ts";
import { packUniforms, wgslModule } from "../lib/kernels/kernel.ts";

const port = parentPort!;
const adapter = await navigator.gpu.requestAdapter();
const device = await adapter!.requestDevice({
  requiredLimits: {
    maxBufferSize: adapter!.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter!.limits.maxStorageBufferBindingSize,
  },
});
const pipelines = new Map<string, GPUComputePipeline>();
let inputs: { size: number; x: GPUBuffer; uniform: GPUBuffer } | undefined;

port.on("message", async ({ size, iters }: { size: number; iters: number }) => {
  const params: MatmulParams = { M: size, N: size, K: size, transA: false, transB: false };
  const key = matmul.variant(params);
  let pipeline = pipelines.get(key);
  if (!pipeline) {
    const module = device.createShaderModule({ code: wgslModule(matmul, params) });
    pipeline = await device.createComputePipelineAsync({
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    pipelines.set(key, pipeline);
  }
  const bytes = size * size * 4;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  if (inputs?.size !== size) {
    inputs?.x.destroy();
    const x = device.createBuffer({ size: bytes, usage });
    device.queue.writeBuffer(x, 0, new Float32Array(size * size).map(() => Math.random()));
    const uniform = device.createBuffer({
      size: 256,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(uniform, 0, packUniforms(matmul, params));
    await device.queue.onSubmittedWorkDone();
    inputs = { size, x, uniform };
  }
  const { x, uniform } = inputs;
  const start = performance.now();
  const encoder = device.createCommandEncoder();
  const outs: GPUBuffer[] = [];
  for (let i = 0; i < iters; i++) {
    const out = device.createBuffer({ size: bytes, usage });
    outs.push(out);
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(
      0,
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [x, x, out, uniform].map((buffer, binding) => ({ binding, resource: { buffer } })),
      }),
    );
    pass.dispatchWorkgroups(...matmul.workgroups(params));
    pass.end();
  }
  device.queue.submit([encoder.finish()]);
  for (const b of outs) b.destroy();
  await device.queue.onSubmittedWorkDone();
  port.postMessage({ start, end: performance.now() });
});
port.postMessage("ready");
