/**
 * Several independent fused programs (lib/kernels/fused.ts), of any lengths, in one dispatch:
 * PyTorch's multi-tensor apply (its `_foreach_` ops), so that an optimizer's update of four
 * parameters, say, is one kernel instead of four. Invocation `i` computes element
 * `i - start` of the program whose range holds it, one element an invocation. The fuser
 * (lib/capture/fuse.ts) packs consecutive groups that touch none of each other's buffers.
 *
 * @module
 */
import {
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";
import {
  constantFields,
  decodeProgram,
  encodeProgram,
  fusedCode,
  fusedCpu,
  fusedHeader,
  type FusedProgram,
  MAX_FUSED_CONSTANTS,
  memberCpu,
  memberOf,
} from "./fused.ts";

/** Parameters of the multi-program kernel: its programs, as {@link multiParams} writes them. */
export interface MultiParams extends KernelParams {
  /** Elements of all programs. */
  n: number;
  /** A JSON array of programs, each as `encodeProgram` writes it. */
  programs: string;
}

/**
 * The parameters of one kernel for `programs` (each of one element an invocation). Its
 * bindings are the programs' loaded bindings, program after program, then their stored ones.
 */
export function multiParams(programs: FusedProgram[]): MultiParams {
  if (programs.some((p) => p.vec)) {
    throw new RangeError("The programs of a multi-program kernel compute one element each");
  }
  const n = programs.reduce((sum, p) => sum + p.n, 0);
  return { n, programs: JSON.stringify(programs.map(encodeProgram)) };
}

/** A program, where its range of invocations starts, and where its bindings start. */
interface Part {
  program: FusedProgram;
  start: number;
  inputOffset: number;
  outputOffset: number;
}

const CONSTANT_FIELDS = constantFields(MAX_FUSED_CONSTANTS);

/** Builds the multi-program kernel's spec over a kernel lookup (the registry passes its own). */
export function fusedMulti(lookup: (name: string) => KernelSpec): KernelSpec<MultiParams> {
  const member = memberOf(lookup);
  const cache = new Map<string, { parts: Part[]; wgsl: string; constants: number[] }>();
  const parsed = (p: MultiParams) => {
    let entry = cache.get(p.programs);
    if (entry) return entry;
    const parts: Part[] = [];
    let [start, inputOffset, outputOffset] = [0, 0, 0];
    for (const text of JSON.parse(p.programs) as string[]) {
      const program = decodeProgram(text);
      parts.push({ program, start, inputOffset, outputOffset });
      start += program.n;
      inputOffset += program.inputs;
      outputOffset += program.types.length - program.inputs;
    }
    const constants: number[] = [];
    const fns = parts.map(({ program, inputOffset, outputOffset }, k) =>
      fusedCode(program, member, {
        part: { name: `part${k}`, inputOffset, outputOffset },
        shared: constants,
      }).wgsl
    );
    const calls = parts.map(({ start }, k) => {
      const call = `part${k}(i - ${start}u);`;
      return k === parts.length - 1
        ? `{ ${call} }`
        : `if (i < ${start + parts[k].program.n}u) { ${call} }`;
    });
    const wgsl = `${fusedHeader(false)}\n${fns.join("\n")}\n${ELEMENTWISE_MAIN}\n  ${
      calls.join(" else ")
    }\n}`;
    if (cache.size > 1024) cache.clear();
    cache.set(p.programs, entry = { parts, wgsl, constants });
    return entry;
  };
  const inputsOf = (p: MultiParams) =>
    parsed(p).parts.flatMap(({ program }) => program.types.slice(0, program.inputs));
  return {
    name: "fused_multi",
    inputTypes: inputsOf,
    outputTypes: (p) =>
      parsed(p).parts.flatMap(({ program }) => program.types.slice(program.inputs)),
    uniformFields: [["n", "u32"], ["opaque", "u32"], ...CONSTANT_FIELDS],
    uniforms: (p) => {
      const cs = parsed(p).constants;
      return [p.n, 0, ...cs, ...CONSTANT_FIELDS.slice(cs.length).map(() => 0)];
    },
    // Pipelines are keyed by the WGSL: packs that differ only in their constants share one.
    variant: (p) => parsed(p).wgsl,
    wgsl: (p) => parsed(p).wgsl,
    workgroups: (p) => elementwiseWorkgroups(p.n),
    cpu: (inputs, p) => {
      // Each program on its own bindings: its loads, then its stored bindings' old values.
      const loaded = inputsOf(p).length;
      return parsed(p).parts.flatMap(({ program, inputOffset, outputOffset }) => {
        const stored = program.types.length - program.inputs;
        const own = [
          ...inputs.slice(inputOffset, inputOffset + program.inputs),
          ...inputs.slice(loaded + outputOffset, loaded + outputOffset + stored),
        ];
        return fusedCpu(program, own, (m, args) => memberCpu(lookup, m, args, program.n));
      });
    },
  };
}
