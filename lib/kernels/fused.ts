/**
 * The fused elementwise kernel: one generated WGSL kernel that computes a group of
 * elementwise kernels (see {@link Elementwise}) element by element, keeping the values
 * between them in registers. Its parameters are the group itself, as data: which buffers
 * it loads and how, each member kernel with its own parameters and arguments, and which
 * values it stores. The WGSL is generated from them (so equal groups give equal WGSL and
 * share one pipeline), each member contributing its own expression, in the members' order.
 *
 * @module
 */
import {
  type ElementRead,
  type Elementwise,
  ELEMENTWISE_MAIN,
  elementwiseWorkgroups,
  type KernelParams,
  type KernelSpec,
} from "./kernel.ts";

/**
 * An argument of a member: a value made by an earlier member, a load of a binding, or (in an
 * epilogue) the element of the kernel it follows (`head`: a matmul's product, say).
 */
export type FusedArg = { value: number } | { binding: number; read: ElementRead } | {
  head: true;
};

/** A member of a fused group: a kernel, its parameters, and where its arguments come from. */
export interface FusedMember {
  kernel: string;
  params: KernelParams;
  /** Its inputs, then its in-place target's old value when it reads it. */
  args: FusedArg[];
}

/** A fused group, as the fuser plans it (lib/capture/fuse.ts). */
export interface FusedProgram {
  /** Elements of every member's output. */
  n: number;
  /** Four elements an invocation (`vec4<f32>`); a binding read as "one" is still `f32`. */
  vec: boolean;
  /** Bindings loaded and never stored, then those stored (which may be loaded first). */
  inputs: number;
  /** Each binding's element type. */
  types: ("f32" | "vec4<f32>")[];
  members: FusedMember[];
  /**
   * Stores at the end: binding `binding` (an output) gets member `value`'s value (-1: in an
   * epilogue, the head's).
   */
  stores: { binding: number; value: number }[];
}

/**
 * A fused program as text: JSON, with the numbers JSON cannot hold (-0, NaN, the infinities:
 * constants a step may well have) written as tagged strings.
 */
export function encodeProgram(program: FusedProgram): string {
  return JSON.stringify(
    program,
    (_, v) =>
      typeof v === "number" && (!Number.isFinite(v) || Object.is(v, -0))
        ? `${TAG}${v === 0 ? "-0" : v}`
        : v,
  );
}

/** The program {@link encodeProgram} wrote. */
export function decodeProgram(text: string): FusedProgram {
  return JSON.parse(
    text,
    (_, v) => typeof v === "string" && v.startsWith(TAG) ? Number(v.slice(TAG.length)) : v,
  ) as FusedProgram;
}

const TAG = "\u0000number:";

/** Parameters of {@link fused}: the group, as JSON (it is also the pipeline's variant). */
export interface FusedParams extends KernelParams {
  n: number;
  program: string;
}

/** The parameters of the fused kernel of `program`. */
export function fusedParams(program: FusedProgram): FusedParams {
  return { n: program.n, program: encodeProgram(program) };
}

const cache = new Map<string, { program: FusedProgram; code?: FusedCode }>();

function entryOf(p: FusedParams) {
  let entry = cache.get(p.program);
  if (!entry) {
    entry = { program: decodeProgram(p.program) };
    if (cache.size > 4096) cache.clear();
    cache.set(p.program, entry);
  }
  return entry;
}

/** The group of `p`, parsed once per distinct group. */
export function programOf(p: FusedParams): FusedProgram {
  return entryOf(p).program;
}

/** Where a fused program's code goes: a kernel of its own, or an epilogue of another kernel. */
export interface FusedCodeOptions {
  /**
   * Generate `fn epilogue(head: f32, idx: u32)`, which computes and stores element `idx`
   * from the head's value, for a kernel whose first `inputOffset` input bindings are its own.
   * @default {undefined: a kernel of its own}
   */
  epilogue?: { inputOffset: number };
  /**
   * Generate `fn prologue(idx: u32) -> f32`, which computes element `idx` of member
   * `result`'s value, for a kernel that reads its input through it (see reduce_fused.ts);
   * nothing is stored.
   * @default {undefined}
   */
  prologue?: { result: number };
  /**
   * Generate `fn <name>(idx: u32)`, which computes and stores element `idx`, for a kernel of
   * several programs (lib/kernels/fused_multi.ts): its input and output bindings start at
   * the offsets given. Give `shared` too.
   * @default {undefined}
   */
  part?: { name: string; inputOffset: number; outputOffset: number };
  /**
   * For a module of several programs' functions: no header ({@link fusedHeader}, which the
   * module has once), and the constants join this list, shared by the programs.
   * @default {undefined: a header, constants of its own}
   */
  shared?: number[];
  /**
   * Constants it may have (`u.c0`...).
   * @default {MAX_FUSED_CONSTANTS}
   */
  maxConstants?: number;
}

const readKey = (b: number, r: ElementRead) => `${b}:${typeof r === "string" ? r : `row${r.row}`}`;

/**
 * Which float32 constants of a fused kernel are one uniform: equal values, but 0 and -0 apart
 * (x + 0 and x + -0 differ at x = -0), and every NaN one.
 */
export function constantKey(x: number): string {
  const v = Math.fround(x);
  return Object.is(v, -0) ? "-0" : String(v);
}

/** Constants a fused kernel may have: the uniform struct's fields after `n` and `opaque`. */
export const MAX_FUSED_CONSTANTS = 62;

/** A fused kernel's code: its body, and the values of its constants (`u.c0`, ...). */
export interface FusedCode {
  wgsl: string;
  constants: number[];
}

/** The constants' uniform fields, `c0: f32` to `c61: f32`. */
const CONSTANT_FIELDS = constantFields(MAX_FUSED_CONSTANTS);

/**
 * The body of the fused kernel of `program` and its constants (each distinct float32 value
 * once); `member(m)` gives a member's elementwise contract. Throws a RangeError past
 * {@link MAX_FUSED_CONSTANTS} constants.
 */
export function fusedCode(
  program: FusedProgram,
  member: (m: FusedMember) => Elementwise,
  options: FusedCodeOptions = {},
): FusedCode {
  const max = options.maxConstants ?? MAX_FUSED_CONSTANTS;
  const part = options.part;
  const offset = options.epilogue?.inputOffset ?? part?.inputOffset ?? 0;
  const outOffset = part?.outputOffset ?? 0;
  const index = options.epilogue || options.prologue || part ? "idx" : "i";
  const bindingName = (b: number) =>
    b < program.inputs ? `in${b + offset}` : `out${b - program.inputs + outOffset}`;
  const lines: string[] = [];
  const constants: number[] = options.shared ?? [];
  let barrier = 1;
  const constant = (x: number) => {
    const v = Math.fround(x);
    let k = constants.findIndex((c) => constantKey(c) === constantKey(v));
    if (k < 0) k = constants.push(v) - 1;
    if (k >= max) throw new RangeError(`Cannot fuse more than ${max} constants in one kernel`);
    return `T(u.c${k})`;
  };
  const loads = new Map<string, string>();
  const load = (b: number, r: ElementRead) => {
    const key = readKey(b, r);
    let name = loads.get(key);
    if (!name) {
      name = `l${loads.size}`;
      const buf = bindingName(b);
      const width = program.vec ? 4 : 1;
      const at = r === "same" ? index : r === "one" ? "0u" : `${index} % ${r.row / width}u`;
      const value = r === "one" ? `T(${buf}[0u])` : `${buf}[${at}]`;
      lines.push(`  let ${name} = ${value};`);
      loads.set(key, name);
    }
    return name;
  };
  // The head's value passes a choice of its own too: a compiler must not contract the head's
  // last multiply (a mean's scale) with a member's add into one fma, which the unfused kernels,
  // storing the head first, never do.
  if (options.epilogue) lines.push(`  let h = opaque(head, ${barrier++}u);`);
  program.members.forEach((m, k) => {
    // An argument used twice by one member is told apart (x - x is NaN for infinite x).
    const used = new Set<string>();
    const args = m.args.map((a) => {
      const name = "head" in a ? "h" : "value" in a ? `v${a.value}` : load(a.binding, a.read);
      if (!used.has(name)) return used.add(name), name;
      return `opaque(${name}, ${barrier++}u)`;
    });
    const e = member(m);
    const cs = (e.constants?.(m.params) ?? []).map(constant);
    lines.push(`  let v${k} = opaque(${e.expression(m.params, args, cs)}, ${barrier++}u);`);
  });
  for (const s of program.stores) {
    lines.push(`  ${bindingName(s.binding)}[${index}] = ${s.value < 0 ? "h" : `v${s.value}`};`);
  }
  const body = `${
    part
      ? `fn ${part.name}(idx: u32) {`
      : options.epilogue
      ? "fn epilogue(head: f32, idx: u32) {"
      : options.prologue
      ? "fn prologue(idx: u32) -> f32 {"
      : ELEMENTWISE_MAIN
  }
${lines.join("\n")}${options.prologue ? `\n  return v${options.prologue.result};` : ""}
}`;
  return { wgsl: options.shared ? body : `${fusedHeader(program.vec)}\n${body}`, constants };
}

/**
 * What the code of fused programs needs once per module: the element type `T` (four
 * elements an invocation with `vec`), `is_nan` and `opaque`.
 */
export function fusedHeader(vec: boolean): string {
  const v = (x: string) => vec ? `vec4<${x}>` : x;
  return `alias T = ${v("f32")};
alias UT = ${v("u32")};
alias BT = ${v("bool")};
fn is_nan(x: T) -> BT {
  return (bitcast<UT>(x) & UT(0x7fffffffu)) > UT(0x7f800000u);
}
// Each member's value goes through a choice the compiler cannot see through (u.opaque is
// always 0, k never is), each its own: it keeps shader compilers from rewriting arithmetic
// across members (log(exp(x)) into x, exp(x) - exp(x) into 0), which the unfused kernels,
// with memory in between, never see, so that fused and unfused values agree to the bit.
fn opaque(x: T, k: u32) -> T {
  return select(x, T(0.0), u.opaque == k);
}`;
}

/** Each member's value, in order, from its own CPU twin on whole arrays (see {@link fusedCpu}). */
export function memberValues(
  program: FusedProgram,
  inputs: readonly Float32Array[],
  cpuOf: (m: FusedMember, args: Float32Array[]) => Float32Array,
  head?: Float32Array,
): Float32Array[] {
  const values: Float32Array[] = [];
  const arg = (a: FusedArg) =>
    "head" in a ? head! : "value" in a ? values[a.value] : inputs[a.binding];
  for (const m of program.members) values.push(cpuOf(m, m.args.map(arg)));
  return values;
}

/**
 * The CPU twin of the fused kernel of `program`: each member's own CPU twin, in order, on
 * whole arrays (so the arithmetic is exactly the unfused one). `inputs` are the bindings'
 * values (for a stored binding, its old value); returns the stored bindings' new values.
 */
export function fusedCpu(
  program: FusedProgram,
  inputs: readonly Float32Array[],
  cpuOf: (m: FusedMember, args: Float32Array[]) => Float32Array,
  head?: Float32Array,
): Float32Array[] {
  const values = memberValues(program, inputs, cpuOf, head);
  // A stored binding starts from its old value (none when run as an op: nothing reads it).
  const out = program.types.slice(program.inputs).map((_, k) =>
    inputs[program.inputs + k]?.slice() ?? new Float32Array(program.n)
  );
  for (const s of program.stores) {
    out[s.binding - program.inputs] = (s.value < 0 ? head! : values[s.value]).slice();
  }
  return out;
}

/** A member's own CPU twin on whole arrays (an in-place one is given an old value it ignores). */
export function memberCpu(
  lookup: (name: string) => KernelSpec,
  m: FusedMember,
  args: Float32Array[],
  n: number,
): Float32Array {
  const spec = lookup(m.kernel);
  const given = spec.inPlace && !spec.elementwise?.readsOld ? [...args, new Float32Array(n)] : args;
  return spec.cpu(given, m.params)[0];
}

/** The uniform fields of `count` constants, `c0: f32`... */
export function constantFields(count: number): (readonly [string, "f32"])[] {
  return Array.from({ length: count }, (_, k) => [`c${k}`, "f32"] as const);
}

/** The member spec lookup of a fused program: each member's elementwise contract. */
export function memberOf(lookup: (name: string) => KernelSpec): (m: FusedMember) => Elementwise {
  return (m) => {
    const e = lookup(m.kernel).elementwise;
    if (!e) throw new TypeError(`Cannot fuse kernel "${m.kernel}": it is not elementwise`);
    return e;
  };
}

/**
 * Builds the fused kernel's spec over a kernel lookup (the registry passes its own, so this
 * file does not import it).
 */
export function fusedKernel(lookup: (name: string) => KernelSpec): KernelSpec<FusedParams> {
  const member = memberOf(lookup);
  /** The code of `p`, generated once per distinct group. */
  const code = (p: FusedParams) => {
    const entry = entryOf(p);
    return entry.code ??= fusedCode(entry.program, member);
  };
  return {
    name: "fused",
    inputTypes: (p) => programOf(p).types.slice(0, programOf(p).inputs),
    outputTypes: (p) => programOf(p).types.slice(programOf(p).inputs),
    uniformFields: [["n", "u32"], ["opaque", "u32"], ...CONSTANT_FIELDS],
    uniforms: (p) => {
      const cs = code(p).constants;
      return [
        programOf(p).vec ? p.n / 4 : p.n,
        0,
        ...cs,
        ...CONSTANT_FIELDS.slice(cs.length).map(() => 0),
      ];
    },
    // Pipelines are keyed by the WGSL: groups that differ only in their constants share one.
    variant: (p) => code(p).wgsl,
    wgsl: (p) => code(p).wgsl,
    workgroups: (p) => elementwiseWorkgroups(p.n, programOf(p).vec ? 4 : 1),
    cpu: (inputs, p) =>
      fusedCpu(programOf(p), inputs, (m, args) => {
        return memberCpu(lookup, m, args, p.n);
      }),
  };
}
