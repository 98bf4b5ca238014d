// The raw-WebGPU baseline of bench/small_ops.ts: a chain of adds hand-written on one GPUDevice
// in a Worker, on the backend autopar's Worker uses (loaded by lib/devices/gpu_loader.ts, so
// Dawn gets the same polling policy), with autopar's WGSL for the add. Two buffers take turns
// as the chain's input and output; each op gets a new bind group; every `perBuffer` ops make
// one command buffer, submitted at once, with one compute pass per dispatch or one pass for
// all of them (as autopar encodes a batch since its lean op path); one readback at the end.
import { parentPort } from "node:worker_threads";
import { binary, type BinaryParams } from "../lib/kernels/elementwise.ts";
import { packUniforms, wgslModule } from "../lib/kernels/kernel.ts";
import { type LoadedGpu, loadGpu } from "../lib/devices/gpu_loader.ts";
import type { WebGpuBackend } from "../lib/devices/backend.ts";

/** What the main thread sends. */
export type ToRawWorker =
  | { type: "init"; backend: WebGpuBackend; x: Float32Array }
  | { type: "chain"; ops: number; perBuffer: number; onePass: boolean }
  | { type: "close" };

/** What the Worker answers. */
export type FromRawWorker =
  | { type: "ready"; adapter: string }
  | { type: "failed"; message: string }
  | { type: "result"; y: Float32Array }
  | { type: "closed" };

const port = parentPort!;
const post = (msg: FromRawWorker) => port.postMessage(msg);

interface Chain {
  loaded: LoadedGpu;
  device: GPUDevice;
  pipeline: GPUComputePipeline;
  x: GPUBuffer;
  pingPong: [GPUBuffer, GPUBuffer];
  uniform: GPUBuffer;
  staging: GPUBuffer;
  bytes: number;
  workgroups: readonly [number, number, number];
}
let chain: Chain | undefined;

async function init(backend: WebGpuBackend, xs: Float32Array): Promise<void> {
  const loaded = await loadGpu(backend);
  const adapter = await loaded.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error(`${backend}: requestAdapter() returned null`);
  const device = await adapter.requestDevice();
  const params: BinaryParams = { op: "add", broadcast: "same", n: xs.length, cols: 0, scalar: 0 };
  const module = device.createShaderModule({ code: wgslModule(binary, params) });
  const pipeline = await device.createComputePipelineAsync({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const bytes = xs.byteLength;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const x = device.createBuffer({ size: bytes, usage });
  device.queue.writeBuffer(x, 0, xs);
  const uniforms = packUniforms(binary, params);
  const uniform = device.createBuffer({
    size: uniforms.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(uniform, 0, uniforms);
  const staging = device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const pingPong: [GPUBuffer, GPUBuffer] = [
    device.createBuffer({ size: bytes, usage }),
    device.createBuffer({ size: bytes, usage }),
  ];
  loaded.polling?.wake();
  await device.queue.onSubmittedWorkDone();
  chain = {
    loaded,
    device,
    pipeline,
    x,
    pingPong,
    uniform,
    staging,
    bytes,
    workgroups: binary.workgroups(params),
  };
  post({ type: "ready", adapter: adapter.info.description || adapter.info.vendor });
}

/** `y = x`, then `ops` times `y = y + x`; answers y. */
async function run(ops: number, perBuffer: number, onePass: boolean): Promise<void> {
  const { loaded, device, pipeline, x, pingPong, uniform, staging, bytes, workgroups } = chain!;
  const layout = pipeline.getBindGroupLayout(0);
  for (let first = 0; first < ops; first += perBuffer) {
    const last = Math.min(ops, first + perBuffer);
    const encoder = device.createCommandEncoder();
    let pass = onePass ? encoder.beginComputePass() : undefined;
    for (let i = first; i < last; i++) {
      const input = i === 0 ? x : pingPong[(i - 1) % 2];
      const entries = [input, x, pingPong[i % 2], uniform]
        .map((buffer, binding) => ({ binding, resource: { buffer } }));
      pass ??= encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, device.createBindGroup({ layout, entries }));
      pass.dispatchWorkgroups(...workgroups);
      if (!onePass) {
        pass.end();
        pass = undefined;
      }
    }
    pass?.end();
    if (last === ops) encoder.copyBufferToBuffer(pingPong[(ops - 1) % 2], 0, staging, 0, bytes);
    device.queue.submit([encoder.finish()]);
  }
  loaded.polling?.wake();
  await staging.mapAsync(GPUMapMode.READ);
  const y = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  port.postMessage({ type: "result", y } satisfies FromRawWorker, [y.buffer]);
}

port.on("message", async (msg: ToRawWorker) => {
  try {
    if (msg.type === "init") await init(msg.backend, msg.x);
    else if (msg.type === "chain") await run(msg.ops, msg.perBuffer, msg.onePass);
    else {
      chain?.device.destroy();
      post({ type: "closed" });
    }
  } catch (e) {
    post({ type: "failed", message: e instanceof Error ? e.message : String(e) });
  }
});
