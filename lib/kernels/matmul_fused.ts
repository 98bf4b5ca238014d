/**
 * A matrix product with an elementwise epilogue: the product's elements go through a fused
 * program (lib/kernels/fused.ts: a bias, an activation...) before they are stored, so the
 * product itself need not be written to memory. The fuser (lib/capture/fuse.ts) makes it
 * from a matmul and the group of elementwise kernels that reads its output.
 *
 * @module
 */
import type { KernelSpec } from "./kernel.ts";
import {
  constantFields,
  decodeProgram,
  type FusedCode,
  fusedCode,
  fusedCpu,
  type FusedProgram,
  memberCpu,
  memberOf,
} from "./fused.ts";
import { matmul, matmulBody, matmulCpu, type MatmulParams, matmulTilingOf } from "./matmul.ts";

/** Parameters of {@link matmulEpilogue}: the product's, and its epilogue as JSON. */
export interface MatmulEpilogueParams extends MatmulParams {
  /** A {@link FusedProgram} whose `head` arguments are the product's elements. */
  epilogue: string;
}

/** The matmul's own uniform fields (M, N, K, blocks, batch, strides). */
const MATMUL_FIELDS = matmul.uniformFields;

/** Constants an epilogue may have: the uniform struct's fields after the matmul's and `opaque`. */
export const MAX_EPILOGUE_CONSTANTS = 64 - MATMUL_FIELDS.length - 1;

const CONSTANT_FIELDS = constantFields(MAX_EPILOGUE_CONSTANTS);

/**
 * Builds the spec over a kernel lookup (the registry passes its own). Bindings: the product's
 * two operands, then the epilogue's loaded bindings, then those it stores.
 */
export function matmulEpilogue(
  lookup: (name: string) => KernelSpec,
): KernelSpec<MatmulEpilogueParams> {
  const member = memberOf(lookup);
  const cache = new Map<string, { program: FusedProgram; code: FusedCode }>();
  const parsed = (p: MatmulEpilogueParams) => {
    let entry = cache.get(p.epilogue);
    if (!entry) {
      const program = decodeProgram(p.epilogue);
      const code = fusedCode(program, member, {
        epilogue: { inputOffset: 2 },
        maxConstants: MAX_EPILOGUE_CONSTANTS,
      });
      if (cache.size > 1024) cache.clear();
      cache.set(p.epilogue, entry = { program, code });
    }
    return entry;
  };
  // The plain product's spec (cached per tiling) gives all but the body and the uniforms'
  // tail.
  const mm = matmul;
  return {
    name: "matmul_epilogue",
    inputTypes: (p) => [
      ...mm.inputTypes(p),
      ...parsed(p).program.types.slice(0, parsed(p).program.inputs),
    ],
    outputTypes: (p) => parsed(p).program.types.slice(parsed(p).program.inputs),
    uniformFields: [...MATMUL_FIELDS, ["opaque", "u32"], ...CONSTANT_FIELDS],
    uniforms: (p) => {
      const cs = parsed(p).code.constants;
      return [
        ...mm.uniforms(p),
        0,
        ...cs,
        ...CONSTANT_FIELDS.slice(cs.length).map(() => 0),
      ];
    },
    wgsl: (p) =>
      `${parsed(p).code.wgsl}\n${
        matmulBody(p, matmulTilingOf(p), (value, index) => `epilogue(${value}, ${index});`)
      }`,
    variant: (p) => `${mm.variant(p)}|${parsed(p).code.wgsl}`,
    workgroups: (p) => mm.workgroups(p),
    cpu: ([a, b, ...rest], p) => {
      const head = matmulCpu(a, b, p);
      return fusedCpu(
        parsed(p).program,
        rest,
        (m, args) => memberCpu(lookup, m, args, head.length),
        head,
      );
    },
  };
}
