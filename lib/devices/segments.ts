/**
 * Device programs' segments (see DefineCommand in protocol.ts): each kernel's pipeline,
 * bindings, bound sizes, workgroups and uniforms resolved once, at its definition, and the
 * segment's static buffers made once. A replay only names the buffers of the inputs; its
 * kernels are then dispatched like any op (see encode.ts).
 *
 * @module
 */
import { kernel } from "../kernels/registry.ts";
import { packUniforms } from "../kernels/kernel.ts";
import type { DefineCommand, SegmentOutput } from "./protocol.ts";
import { boundSize, STORAGE_USAGE } from "./buffer_pool.ts";
import type { Compiled, Pipelines } from "./pipelines.ts";
import type { BindGroupMemo } from "./bind_groups.ts";

/** One kernel of a defined segment: everything but its input buffers is resolved. */
export interface SegmentKernel {
  compiled: Compiled;
  /** The slot bound at each binding (see SegmentKernel in protocol.ts). */
  bind: number[];
  /** The bound size at each binding. */
  sizes: number[];
  /** Its uniforms: an index into the segment's {@link Segment.uniforms}. */
  uniform: number;
  workgroups: readonly [number, number, number];
  /** The bind group it found last in the device's one cache. */
  last?: BindGroupMemo;
}

/** A defined segment of a device program. */
export interface Segment {
  /** Bound sizes of the input slots, then of the static slots. */
  sizes: number[];
  inputs: number;
  slots: GPUBuffer[];
  /** The kernels' packed uniforms: kernels with the same (a chain of adds) share one. */
  uniforms: Uint8Array[];
  kernels: SegmentKernel[];
  outputs: SegmentOutput[];
}

/** A segment whose definition failed: why, at which kernel, and what it would have made. */
export interface BrokenSegment {
  message: string;
  inner: number;
  outputs: SegmentOutput[];
}

/**
 * Defines a segment: compiles its kernels and makes its static buffers. A kernel that does
 * not compile makes every run of the segment fail, naming that kernel.
 */
export async function defineSegment(
  device: GPUDevice,
  pipelines: Pipelines,
  cmd: DefineCommand,
): Promise<Segment | BrokenSegment> {
  const sizes = [...cmd.inputs, ...cmd.slots.map((s) => s.bytes)].map(boundSize);
  const indices = new Map<string, number>();
  const uniforms: Uint8Array[] = [];
  const uniformOf = (bytes: Uint8Array) => {
    const key = bytes.join(",");
    let i = indices.get(key);
    if (i === undefined) {
      indices.set(key, i = uniforms.length);
      uniforms.push(bytes);
    }
    return i;
  };
  const kernels: SegmentKernel[] = [];
  for (const [i, k] of cmd.kernels.entries()) {
    try {
      const ref = { kernel: k.kernel, params: k.params };
      const compiled = pipelines.cached(pipelines.key(ref)) ?? await pipelines.compile(ref);
      const spec = kernel(k.kernel);
      kernels.push({
        compiled,
        bind: k.bind,
        sizes: k.bind.map((s) => sizes[s]),
        uniform: uniformOf(new Uint8Array(packUniforms(spec, k.params))),
        workgroups: spec.workgroups(k.params),
      });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      return { message, inner: i, outputs: cmd.outputs };
    }
  }
  const slots = cmd.slots.map((s, i) =>
    device.createBuffer({
      label: `program-${cmd.program}-${cmd.segment}-slot-${i}`,
      size: boundSize(s.bytes),
      usage: STORAGE_USAGE,
    })
  );
  return { sizes, inputs: cmd.inputs.length, slots, uniforms, kernels, outputs: cmd.outputs };
}

/**
 * Defined segments by program and segment (or why a definition failed).
 *
 * @example
 * ```ts
 * import { Programs } from "./segments.ts";
 * const programs = new Programs();
 * programs.set(1, 0, { message: "no such kernel", inner: 0, outputs: [] });
 * const seg = programs.get(1, 0);
 * console.log(seg && "message" in seg ? seg.message : "", programs.forget(1)); // no such kernel []
 * ```
 */
export class Programs {
  readonly #programs = new Map<number, Map<number, Segment | BrokenSegment>>();

  /** Segment `segment` of `program`, if defined. */
  get(program: number, segment: number): Segment | BrokenSegment | undefined {
    return this.#programs.get(program)?.get(segment);
  }

  /** Records a definition. */
  set(program: number, segment: number, seg: Segment | BrokenSegment): void {
    let segments = this.#programs.get(program);
    if (!segments) this.#programs.set(program, segments = new Map());
    segments.set(segment, seg);
  }

  /** Drops a program; returns its buffers, to destroy once the work using them is done. */
  forget(program: number): GPUBuffer[] {
    const segments = this.#programs.get(program);
    this.#programs.delete(program);
    const out: GPUBuffer[] = [];
    for (const seg of segments?.values() ?? []) if ("slots" in seg) out.push(...seg.slots);
    return out;
  }

  /** Drops every program; returns their buffers. */
  forgetAll(): GPUBuffer[] {
    return [...this.#programs.keys()].flatMap((id) => this.forget(id));
  }
}
