/**
 * The device Worker's compiled kernels: a pipeline per kernel and parameters, compiled once
 * and then found without an await.
 *
 * @module
 */
import { kernel } from "../kernels/registry.ts";
import { type KernelParams, type KernelSpec, pipelineKey, wgslModule } from "../kernels/kernel.ts";
import type { Bindable } from "./bind_groups.ts";
import type { RunCommand } from "./protocol.ts";

/** A compiled kernel: its pipeline, which binds the uniform ring with a dynamic offset. */
export type Compiled = Bindable;

/** What names a kernel to compile: a registered one and its params. */
export type KernelRef = Pick<RunCommand, "kernel" | "params">;

/** The error messages of a shader module's compilation, if any. */
async function compileErrors(module: GPUShaderModule): Promise<string | undefined> {
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length === 0) return undefined;
  return errors.map((m) => `${m.lineNum}:${m.linePos}: ${m.message}`).join("; ");
}

/**
 * Pipelines by key; a kernel that fails to compile rejects with the compiler's messages and
 * is tried again the next time it is asked for.
 *
 * @example
 * ```ts
 * import { Pipelines } from "./pipelines.ts";
 * const pipelines = new Pipelines({} as GPUDevice); // compiles nothing until asked
 * const ref = { kernel: "unary", params: { op: "relu", n: 4 } };
 * console.log(pipelines.cached(pipelines.key(ref))); // undefined
 * ```
 */
export class Pipelines {
  readonly #device: GPUDevice;
  /** Resolved pipelines, so that a cached kernel costs no await. */
  readonly #compiled = new Map<string, Compiled>();
  readonly #pending = new Map<string, Promise<Compiled>>();
  #nextId = 1;

  /** Pipelines compiled on `device`. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** The cache key of a kernel. */
  key(ref: KernelRef): string {
    return pipelineKey(kernel(ref.kernel), ref.params);
  }

  /** The compiled kernel under `key`, when compiled already. */
  cached(key: string): Compiled | undefined {
    return this.#compiled.get(key);
  }

  /** Compiles a kernel (once: a second call waits for the first). */
  compile(ref: KernelRef): Promise<Compiled> {
    const device = this.#device;
    const pending = this.#pending;
    let spec: KernelSpec<KernelParams>;
    let key: string;
    let code: string | undefined;
    try {
      spec = kernel(ref.kernel);
      key = pipelineKey(spec, ref.params);
      // A kernel without WGSL (a host-only check) fails its op, not the Worker.
      if (!pending.has(key)) code = wgslModule(spec, ref.params);
    } catch (e) {
      return Promise.reject(e);
    }
    let p = pending.get(key);
    if (!p) {
      // A scope of its own, so a shader that fails to compile fails this op, not the batch.
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ label: key, code: code! });
      // Kernels bind the uniform ring with a dynamic offset, which needs an explicit layout.
      const layout = this.#layoutOf(spec, ref.params);
      // Dawn may hand back an invalid pipeline for a module that failed to compile (which
      // then fails the whole batch); the compiler's own messages name the fault.
      p = compileErrors(module).then(async (errors) => {
        if (errors) throw new Error(`Cannot compile kernel ${key}: ${errors}`);
        const pipeline = await device.createComputePipelineAsync({
          label: key,
          layout,
          compute: { module, entryPoint: "main" },
        });
        const compiled = { id: this.#nextId++, pipeline };
        this.#compiled.set(key, compiled);
        return compiled;
      });
      device.popErrorScope();
      pending.set(key, p);
      p.catch(() => pending.delete(key));
    }
    return p;
  }

  /** Storage bindings in order (inputs read-only), then the uniforms with a dynamic offset. */
  #layoutOf(spec: KernelSpec<KernelParams>, params: KernelParams): GPUPipelineLayout {
    const types: GPUBufferBindingType[] = [
      ...spec.inputTypes(params).map((): GPUBufferBindingType => "read-only-storage"),
      ...spec.outputTypes(params).map((): GPUBufferBindingType => "storage"),
    ];
    const entries: GPUBindGroupLayoutEntry[] = types.map((type, binding) => ({
      binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type },
    }));
    entries.push({
      binding: types.length,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: "uniform", hasDynamicOffset: true },
    });
    const device = this.#device;
    return device.createPipelineLayout({
      bindGroupLayouts: [device.createBindGroupLayout({ entries })],
    });
  }
}
