/**
 * A reduction with an elementwise prologue or epilogue. With a prologue, the input a
 * reduction reads (a sum's, say) is computed by a fused program (lib/kernels/fused.ts)
 * where each element is read, so it is never stored; with an epilogue, each element the
 * reduction stores goes through a fused program first (a mean's square root, say), so the
 * reduction's own result is stored only if something else reads it. The fuser
 * (lib/capture/fuse.ts) makes them from a reduction whose kernel states a `prologue` (or an
 * `epilogue`) and the group of elementwise kernels that makes its input (or reads its output).
 *
 * @module
 */
import type { KernelParams, KernelSpec } from "./kernel.ts";
import {
  constantFields,
  decodeProgram,
  type FusedCode,
  fusedCode,
  fusedCpu,
  type FusedProgram,
  memberCpu,
  memberOf,
  memberValues,
} from "./fused.ts";

/** The `is_nan` of a reduction's own WGSL (layout.ts's maximum), which the prologue also defines. */
const OWN_IS_NAN = /fn is_nan\(x: f32\) -> bool \{[^\n]*\}\n/;

/** Parameters of a reduction with a prologue: the reduction's, and the prologue. */
export interface PrologueParams extends KernelParams {
  /** A {@link FusedProgram}, as `encodeProgram` writes it, with nothing to store. */
  prologue: string;
  /** The member whose value is the reduction's input. */
  result: number;
}

/** Constants a prologue of `spec` may have: the uniform struct's fields after its own and `opaque`. */
export const prologueConstants = (spec: KernelSpec): number => 64 - spec.uniformFields.length - 1;

/** A kernel's inputs after the first (`in1`...) renamed to follow `loads` bindings. */
const shiftInputs = (wgsl: string, loads: number) =>
  loads === 1 ? wgsl : wgsl.replace(/\bin([1-9]\d*)\b/g, (_, k) => `in${Number(k) + loads - 1}`);

/**
 * The spec of `spec` (a reduction that states a `prologue`) with a prologue, named
 * `<name>_prologue`, over a kernel lookup (the registry passes its own). Bindings: the
 * prologue's loads, the reduction's other inputs (a loss's labels), then its outputs.
 */
export function withPrologue<P extends KernelParams>(
  spec: KernelSpec<P>,
  lookup: (name: string) => KernelSpec,
): KernelSpec<P & PrologueParams> {
  const member = memberOf(lookup);
  const max = prologueConstants(spec as KernelSpec);
  const fields = constantFields(max);
  const cache = new Map<string, { program: FusedProgram; code: FusedCode }>();
  const parsed = (p: PrologueParams) => {
    const key = `${p.result}|${p.prologue}`;
    let entry = cache.get(key);
    if (!entry) {
      const program = decodeProgram(p.prologue);
      const code = fusedCode(program, member, {
        prologue: { result: p.result },
        maxConstants: max,
      });
      if (cache.size > 1024) cache.clear();
      cache.set(key, entry = { program, code });
    }
    return entry;
  };
  return {
    name: `${spec.name}_prologue`,
    inputTypes: (p) => [
      ...parsed(p).program.types.slice(0, parsed(p).program.inputs),
      ...spec.inputTypes(p).slice(1),
    ],
    outputTypes: (p) => spec.outputTypes(p),
    uniformFields: [...spec.uniformFields, ["opaque", "u32"], ...fields],
    uniforms: (p) => {
      const cs = parsed(p).code.constants;
      return [...spec.uniforms(p), 0, ...cs, ...fields.slice(cs.length).map(() => 0)];
    },
    // The reduction reads its input only as in0[index]: the prologue computes it there. A
    // reduction's own is_nan (a maximum's) is the prologue's, for f32: it is defined once.
    wgsl: (p) => {
      // Its own in0 reads first, then its other inputs renamed past the prologue's loads.
      const own = spec.wgsl(p).replace(OWN_IS_NAN, "").replace(/in0\[([^\]]+)\]/g, "prologue($1)");
      return `${parsed(p).code.wgsl}\n${shiftInputs(own, parsed(p).program.inputs)}`;
    },
    variant: (p) => `${spec.variant(p)}|${parsed(p).code.wgsl}`,
    workgroups: (p) => spec.workgroups(p),
    cpu: (inputs, p) => {
      const { program } = parsed(p);
      const values = memberValues(
        program,
        inputs,
        (m, args) => memberCpu(lookup, m, args, program.n),
      );
      return spec.cpu([values[p.result], ...inputs.slice(program.inputs)], p);
    },
  };
}

/** Parameters of a reduction with an epilogue: the reduction's, and the epilogue. */
export interface EpilogueParams extends KernelParams {
  /** A {@link FusedProgram}, as `encodeProgram` writes it, whose `head` is the reduction's value. */
  epilogue: string;
}

/** Each store of a reduction's output, `out0[index] = value;`. */
const OWN_STORE = /out0\[([^\]]+)\] = ([^;]+);/g;

/**
 * The spec of `spec` (a reduction that states an `epilogue`) with an epilogue, named
 * `<name>_epilogue`, over a kernel lookup (the registry passes its own). Bindings: the
 * reduction's input, the epilogue's loads, then what the epilogue stores.
 */
export function withEpilogue<P extends KernelParams>(
  spec: KernelSpec<P>,
  lookup: (name: string) => KernelSpec,
): KernelSpec<P & EpilogueParams> {
  const member = memberOf(lookup);
  const max = prologueConstants(spec as KernelSpec);
  const fields = constantFields(max);
  const cache = new Map<string, { program: FusedProgram; code: FusedCode }>();
  const parsed = (p: EpilogueParams) => {
    let entry = cache.get(p.epilogue);
    if (!entry) {
      const program = decodeProgram(p.epilogue);
      const code = fusedCode(program, member, {
        epilogue: { inputOffset: 1 },
        maxConstants: max,
      });
      if (cache.size > 1024) cache.clear();
      cache.set(p.epilogue, entry = { program, code });
    }
    return entry;
  };
  const program = (p: EpilogueParams) => parsed(p).program;
  return {
    name: `${spec.name}_epilogue`,
    inputTypes: (p) => [...spec.inputTypes(p), ...program(p).types.slice(0, program(p).inputs)],
    outputTypes: (p) => program(p).types.slice(program(p).inputs),
    uniformFields: [...spec.uniformFields, ["opaque", "u32"], ...fields],
    uniforms: (p) => {
      const cs = parsed(p).code.constants;
      return [...spec.uniforms(p), 0, ...cs, ...fields.slice(cs.length).map(() => 0)];
    },
    // The reduction stores each element once as out0[index] = value: the epilogue takes the
    // value there. A reduction's own is_nan (a maximum's) is the epilogue's, defined once.
    wgsl: (p) => {
      const own = spec.wgsl(p).replace(OWN_IS_NAN, "");
      if (!own.match(OWN_STORE)) throw new TypeError(`${spec.name} stores no out0[index]`);
      return `${parsed(p).code.wgsl}\n${own.replace(OWN_STORE, "epilogue($2, $1);")}`;
    },
    variant: (p) => `${spec.variant(p)}|${parsed(p).code.wgsl}`,
    workgroups: (p) => spec.workgroups(p),
    cpu: ([input, ...rest], p) => {
      const head = spec.cpu([input], p)[0];
      return fusedCpu(program(p), rest, (m, args) => memberCpu(lookup, m, args, head.length), head);
    },
  };
}
