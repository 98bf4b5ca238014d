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
import type { Elementwise, KernelParams, KernelSpec } from "./kernel.ts";
import {
  constantFields,
  decodeProgram,
  fusedCode,
  fusedCpu,
  fusedHeader,
  type FusedMember,
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

/** Parameters of a reduction with an epilogue: the reduction's, and the epilogue. */
export interface EpilogueParams extends KernelParams {
  /** A {@link FusedProgram}, as `encodeProgram` writes it, whose `head` is the reduction's value. */
  epilogue: string;
}

/** Constants a prologue of `spec` may have: the uniform struct's fields after its own and `opaque`. */
export const prologueConstants = (spec: KernelSpec): number => 64 - spec.uniformFields.length - 1;

/** A kernel's inputs after the first (`in1`...) renamed to follow `loads` bindings. */
const shiftInputs = (wgsl: string, loads: number) =>
  loads === 1 ? wgsl : wgsl.replace(/\bin([1-9]\d*)\b/g, (_, k) => `in${Number(k) + loads - 1}`);

/** Each read of a reduction's first input, `in0[index]`. */
const OWN_READ = /in0\[([^\]]+)\]/g;
/** Each store of a reduction's output, `out0[index] = value;`. */
const OWN_STORE = /out0\[([^\]]+)\] = ([^;]+);/g;

type Fusion = Partial<PrologueParams & EpilogueParams>;

/** A reduction's fused programs, parsed, and its module. */
interface Parsed {
  prologue?: FusedProgram;
  epilogue?: FusedProgram;
  /** Bindings before the reduction's other inputs: the prologue's loads, or its own input. */
  loads: number;
  wgsl: string;
  constants: number[];
}

/** The programs of a reduction `spec` with the fused programs `kind` names, and its module. */
function parseFusion<P extends KernelParams>(
  spec: KernelSpec<P>,
  p: P & Fusion,
  member: (m: FusedMember) => Elementwise,
  others: number,
  kind: { prologue: boolean; epilogue: boolean },
): Parsed {
  const max = prologueConstants(spec as KernelSpec);
  const constants: number[] = [];
  const prologue = kind.prologue ? decodeProgram(p.prologue!) : undefined;
  const epilogue = kind.epilogue ? decodeProgram(p.epilogue!) : undefined;
  const loads = prologue?.inputs ?? 1;
  const fns: string[] = [];
  // The reduction's own is_nan (a maximum's) is the programs' for f32: defined once.
  let own = spec.wgsl(p).replace(OWN_IS_NAN, "");
  if (prologue) {
    const options = { prologue: { result: p.result! }, maxConstants: max, shared: constants };
    fns.push(fusedCode(prologue, member, options).wgsl);
    // It reads its input only as in0[index]: the prologue computes it there.
    own = shiftInputs(own.replace(OWN_READ, "prologue($1)"), loads);
  }
  if (epilogue) {
    const options = {
      epilogue: { inputOffset: loads + others },
      maxConstants: max,
      shared: constants,
    };
    fns.push(fusedCode(epilogue, member, options).wgsl);
    // It stores each element once as out0[index] = value: the epilogue takes it there.
    if (!own.match(OWN_STORE)) throw new TypeError(`${spec.name} stores no out0[index]`);
    own = own.replace(OWN_STORE, "epilogue($2, $1);");
  }
  const wgsl = `${fusedHeader(false)}\n${fns.join("\n")}\n${own}`;
  return { prologue, epilogue, loads, wgsl, constants };
}

/**
 * The spec of `spec` (a reduction that states a `prologue`, an `epilogue`, or both) with
 * the fused programs `kind` names, over a kernel lookup (the registry passes its own).
 * It is named `<name>_prologue`, `<name>_epilogue` or `<name>_prologue_epilogue`.
 * Bindings: the prologue's loads (or the reduction's input), the reduction's other inputs
 * (a loss's labels), the epilogue's loads, then what the epilogue stores (or the
 * reduction's outputs).
 */
export function withFusion<P extends KernelParams>(
  spec: KernelSpec<P>,
  lookup: (name: string) => KernelSpec,
  kind: { prologue: boolean; epilogue: boolean },
): KernelSpec<P & Fusion> {
  const member = memberOf(lookup);
  const max = prologueConstants(spec as KernelSpec);
  const fields = constantFields(max);
  const cache = new Map<string, Parsed>();
  const others = (p: P) => spec.inputTypes(p).length - 1;
  const parsed = (p: P & Fusion): Parsed => {
    // The reduction's own WGSL differs by its variant (a sum's, a maximum's).
    const key = `${spec.variant(p)}|${p.result}|${p.prologue}|${p.epilogue}`;
    let entry = cache.get(key);
    if (!entry) {
      if (cache.size > 1024) cache.clear();
      cache.set(key, entry = parseFusion(spec, p, member, others(p), kind));
    }
    return entry;
  };
  const loadTypes = (f?: FusedProgram) => f ? f.types.slice(0, f.inputs) : [];
  return {
    name: [spec.name, kind.prologue && "prologue", kind.epilogue && "epilogue"].filter(Boolean)
      .join("_"),
    inputTypes: (p) => {
      const { prologue, epilogue } = parsed(p);
      const own = spec.inputTypes(p);
      return [
        ...(prologue ? loadTypes(prologue) : own.slice(0, 1)),
        ...own.slice(1),
        ...loadTypes(epilogue),
      ];
    },
    outputTypes: (p) => {
      const { epilogue } = parsed(p);
      return epilogue ? epilogue.types.slice(epilogue.inputs) : spec.outputTypes(p);
    },
    uniformFields: [...spec.uniformFields, ["opaque", "u32"], ...fields],
    uniforms: (p) => {
      const cs = parsed(p).constants;
      return [...spec.uniforms(p), 0, ...cs, ...fields.slice(cs.length).map(() => 0)];
    },
    variant: (p) => `${spec.variant(p)}|${parsed(p).wgsl}`,
    wgsl: (p) => parsed(p).wgsl,
    workgroups: (p) => spec.workgroups(p),
    cpu: (inputs, p) => {
      const { prologue, epilogue, loads } = parsed(p);
      const cpuOf = (f: FusedProgram) => (m: FusedMember, args: Float32Array[]) =>
        memberCpu(lookup, m, args, f.n);
      const first = prologue
        ? memberValues(prologue, inputs, cpuOf(prologue))[p.result!]
        : inputs[0];
      const rest = loads + others(p);
      const outs = spec.cpu([first, ...inputs.slice(loads, rest)], p);
      if (!epilogue) return outs;
      return fusedCpu(epilogue, inputs.slice(rest), cpuOf(epilogue), outs[0]);
    },
  };
}
