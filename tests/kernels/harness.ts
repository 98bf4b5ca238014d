/**
 * Test helpers that run one kernel on a real WebGPU device.
 *
 * @module
 */

import {
  type KernelParams,
  type KernelSpec,
  packUniforms,
  pipelineKey,
  wgslModule,
} from "../../lib/kernels/kernel.ts";

/**
 * Requests a fresh device whose buffer limits are raised to the adapter's maxima.
 * Throws if WebGPU has no adapter. Call `device.destroy()` when done.
 */
export async function getTestDevice(): Promise<GPUDevice> {
  // Mesa's Vulkan driver complains on every adapter request without XDG_RUNTIME_DIR.
  if (Deno.env.get("XDG_RUNTIME_DIR") === undefined) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("Cannot run GPU tests as navigator.gpu has no adapter");
  return await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
    },
  });
}

/** Compiled pipelines per device, under {@link pipelineKey}: a variant compiles once per device. */
const pipelines = new WeakMap<
  GPUDevice,
  Map<string, { layout: GPUBindGroupLayout; pipeline: GPUComputePipeline }>
>();

/** Buffer sizes rounded up to 16 bytes, so a `vec4<f32>` binding always fits. */
const paddedBytes = (floats: number): number => Math.max(16, Math.ceil((floats * 4) / 16) * 16);

/**
 * Runs `spec` once on `device` and reads its outputs back (`outputLengths` floats each).
 * The pipeline of each variant is compiled once per device and reused.
 * Throws the first GPU validation or out-of-memory error raised on the way.
 */
export async function runKernel<P extends KernelParams>(
  device: GPUDevice,
  spec: KernelSpec<P>,
  params: P,
  inputs: Float32Array[],
  outputLengths: number[],
): Promise<Float32Array[]> {
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  let scopesOpen = true;
  const buffers: GPUBuffer[] = [];
  const storage = (floats: number, usage: number) => {
    const buffer = device.createBuffer({ size: paddedBytes(floats), usage });
    buffers.push(buffer);
    return buffer;
  };
  try {
    const inBuffers = inputs.map((data) => {
      const buffer = storage(data.length, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
      device.queue.writeBuffer(buffer, 0, data);
      return buffer;
    });
    const outBuffers = outputLengths.map((n) =>
      storage(n, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC)
    );
    const uniformBytes = packUniforms(spec, params);
    const uniform = device.createBuffer({
      size: uniformBytes.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    buffers.push(uniform);
    device.queue.writeBuffer(uniform, 0, uniformBytes);

    let cache = pipelines.get(device);
    if (!cache) pipelines.set(device, cache = new Map());
    const key = pipelineKey(spec, params);
    let compiled = cache.get(key);
    if (!compiled) {
      // An explicit layout, so bindings the shader does not read are still accepted.
      const entries: GPUBindGroupLayoutEntry[] = [
        ...inBuffers.map(() => ({ type: "read-only-storage" as const })),
        ...outBuffers.map(() => ({ type: "storage" as const })),
        { type: "uniform" as const },
      ].map((buffer, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer }));
      const layout = device.createBindGroupLayout({ entries });
      const module = device.createShaderModule({ code: wgslModule(spec, params), label: key });
      const pipeline = device.createComputePipeline({
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: "main" },
        label: key,
      });
      compiled = { layout, pipeline };
      cache.set(key, compiled);
    }
    const { layout, pipeline } = compiled;
    const bindGroup = device.createBindGroup({
      layout,
      entries: [...inBuffers, ...outBuffers, uniform].map((buffer, binding) => ({
        binding,
        resource: { buffer },
      })),
    });

    const staging = outputLengths.map((n) =>
      storage(n, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST)
    );
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...spec.workgroups(params));
    pass.end();
    outBuffers.forEach((b, i) => encoder.copyBufferToBuffer(b, 0, staging[i], 0, b.size));
    device.queue.submit([encoder.finish()]);

    scopesOpen = false;
    const validation = await device.popErrorScope();
    const memory = await device.popErrorScope();
    const error = validation ?? memory;
    if (error) {
      cache.delete(key);
      throw new Error(`Cannot run kernel ${spec.name}: ${error.message}`, { cause: error });
    }
    await Promise.all(staging.map((b) => b.mapAsync(GPUMapMode.READ)));
    return staging.map((b, i) =>
      new Float32Array(b.getMappedRange().slice(0, outputLengths[i] * 4))
    );
  } finally {
    if (scopesOpen) await Promise.all([device.popErrorScope(), device.popErrorScope()]);
    buffers.forEach((b) => b.destroy());
  }
}
