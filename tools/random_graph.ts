/**
 * Random dependency graphs as programs over the devices and the host: fast-check generates
 * them, {@link runOnEngine} runs one on the engine (in its current mode), {@link reference}
 * computes it in float64, independently of the kernels, and {@link checkProgram} compares
 * parallel mode, serial mode and the reference. Shared by the random-graph tests and the
 * complex-dependencies experiment.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4.11.0";
import type { Device } from "../lib/devices/device.ts";
import { engine } from "../lib/engine/engine.ts";
import { configureEngine } from "../lib/engine/configure.ts";
import { waitAll } from "../lib/engine/sync.ts";
import { fromArray, rand } from "../lib/tensor/creation.ts";
import type { Tensor } from "../lib/tensor/tensor.ts";

/** The ops a program uses. */
export type OpName =
  | "rand"
  | "fromArray"
  | "mm"
  | "add"
  | "sub"
  | "mul"
  | "relu"
  | "transpose"
  | "sum";

/** One node of a program; `args` are indices of earlier nodes. */
export interface GraphNode {
  op: OpName;
  /** Index into the device list (gpu:0, gpu:1, ..., cpu). */
  device: number;
  shape: number[];
  args: number[];
  /** A binary op with a number instead of a second tensor. */
  scalar?: number;
  /** `sum(axis)`; undefined sums everything. */
  axis?: number;
  /** rand's seed, or the seed of fromArray's values. */
  seed?: number;
  /** Per argument: copy it with `{ nonBlocking: true }` when it lives elsewhere. */
  nonBlocking: boolean[];
  /** Dispose the copies of the arguments right after this op is submitted. */
  disposeCopies: boolean;
  /** Dispose this node's tensor right after its last reader is submitted. */
  disposeAfterLastUse: boolean;
  /** Upper bound of |value| over the elements. */
  bound: number;
  /** Upper bound of |float32 result - exact result| over the elements. */
  err: number;
}

/** A program: nodes in submission order. */
export interface Program {
  nodes: GraphNode[];
  /** Read the results before `waitAll()` (else after it). */
  readFirst: boolean;
}

/** The raw choices fast-check generates and shrinks; `build` turns them into a program. */
/** One step of fast-check's raw choices. */
export interface Choice {
  op: number;
  a: number;
  b: number;
  pick: number;
  device: number;
  flags: number;
}

/** What fast-check generates and shrinks; {@link build} turns it into a program. */
export interface ProgramSpec {
  n: number;
  m: number;
  steps: Choice[];
  readFirst: boolean;
}

export const U = 2 ** -24; // unit roundoff of float32
export const gamma = (k: number) => (k * U) / (1 - k * U);
/** The most nodes of a program of the original random-graph test. */
export const MAX_NODES = 25;
/** Results above this are scaled down by a power of two (exact), so values stay near 1. */
export const RESCALE_ABOVE = 256;
const SCALARS = [-2, -1.5, -1, -0.5, 0.25, 0.5, 0.75, 1, 2, 3];
export const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Values of `fromArray` leaves: multiples of 1/8 in [-2, 2], exact in float32. */
function arrayValues(seed: number, n: number): number[] {
  const out: number[] = [];
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    out.push(((s >>> 8) % 33 - 16) / 8);
  }
  return out;
}

export function lastUses(nodes: readonly GraphNode[]): number[] {
  const last = nodes.map(() => -1);
  nodes.forEach((node, i) => node.args.forEach((j) => (last[j] = i)));
  return last;
}

/** Nodes whose tensors are still alive at the end: the ones read and compared. */
export function keptNodes(nodes: readonly GraphNode[]): number[] {
  const last = lastUses(nodes);
  return nodes.flatMap((node, i) => (node.disposeAfterLastUse && last[i] >= 0 ? [] : [i]));
}

/**
 * Appends `node`; when its values may exceed {@link RESCALE_ABOVE}, also appends an exact
 * scaling by a power of two (while fewer than `maxNodes` nodes), so values stay near 1.
 */
export function pushRescaled(nodes: GraphNode[], node: GraphNode, maxNodes: number): void {
  nodes.push(node);
  if (node.bound > RESCALE_ABOVE && nodes.length < maxNodes) {
    const s = 2 ** -Math.ceil(Math.log2(node.bound));
    nodes.push({
      op: "mul",
      device: node.device,
      shape: node.shape,
      args: [nodes.length - 1],
      scalar: s,
      nonBlocking: [false],
      disposeCopies: false,
      disposeAfterLastUse: false,
      bound: node.bound * s,
      err: node.err * s + U * node.bound * s,
    });
  }
}

/** Turns fast-check's choices into a well-typed program with magnitude and error bounds. */
export function build(spec: ProgramSpec, deviceCount: number, maxNodes = MAX_NODES): Program {
  const { n, m } = spec;
  const nodes: GraphNode[] = [];
  const flagsOf = (c: Choice) => ({
    nonBlocking: [(c.flags & 1) !== 0, (c.flags & 2) !== 0],
    disposeCopies: (c.flags & 4) !== 0,
    disposeAfterLastUse: (c.flags & 8) !== 0,
  });
  const push = (node: GraphNode) => pushRescaled(nodes, node, maxNodes);
  for (const [i, c] of spec.steps.entries()) {
    if (nodes.length >= maxNodes) break;
    const device = c.device % deviceCount;
    const flags = flagsOf(c);
    const kind = c.op % 100;
    if (i === 0 || kind < 20) {
      const shapes = [[n, n], [n, m], [m, n], [m, m], [n], [m]];
      const shape = shapes[c.a % shapes.length];
      const isRand = c.b % 2 === 0;
      push({
        op: isRand ? "rand" : "fromArray",
        device,
        shape,
        args: [],
        seed: c.pick >>> 0,
        ...flags,
        bound: isRand ? 1 : 2,
        err: 0,
      });
      continue;
    }
    const all = nodes.map((_, j) => j);
    const matrices = all.filter((j) => nodes[j].shape.length === 2);
    const a = all[c.a % all.length];
    const A = nodes[a];
    if (kind < 40 && matrices.length > 0) {
      const ma = matrices[c.a % matrices.length];
      const MA = nodes[ma];
      const partners = matrices.filter((j) => nodes[j].shape[0] === MA.shape[1]);
      if (partners.length > 0) {
        const mb = partners[c.b % partners.length];
        const MB = nodes[mb];
        const K = MA.shape[1];
        push({
          op: "mm",
          device,
          shape: [MA.shape[0], MB.shape[1]],
          args: [ma, mb],
          ...flags,
          bound: K * MA.bound * MB.bound,
          err: K * (MA.err * MB.bound + MB.err * MA.bound + MA.err * MB.err) +
            gamma(K) * K * MA.bound * MB.bound,
        });
        continue;
      }
    }
    const binary = (["add", "sub", "mul"] as const)[c.pick % 3];
    if (kind < 65) {
      const last = A.shape[A.shape.length - 1];
      const partners = all.filter((j) => {
        const s = nodes[j].shape;
        const same = s.length === A.shape.length && s.every((x, k) => x === A.shape[k]);
        return same || (A.shape.length >= 1 && s.length === 1 && s[0] === last);
      });
      const b = partners[c.b % partners.length];
      const B = nodes[b];
      const bound = binary === "mul" ? A.bound * B.bound : A.bound + B.bound;
      const err = binary === "mul"
        ? A.err * B.bound + B.err * A.bound + A.err * B.err + U * bound
        : A.err + B.err + U * bound;
      push({ op: binary, device, shape: A.shape, args: [a, b], ...flags, bound, err });
    } else if (kind < 75) {
      const s = SCALARS[c.b % SCALARS.length];
      const bound = binary === "mul" ? A.bound * Math.abs(s) : A.bound + Math.abs(s);
      const err = (binary === "mul" ? A.err * Math.abs(s) : A.err) + U * bound;
      push({ op: binary, device, shape: A.shape, args: [a], scalar: s, ...flags, bound, err });
    } else if (kind < 82) {
      push({ op: "relu", device, shape: A.shape, args: [a], ...flags, bound: A.bound, err: A.err });
    } else if (kind < 90 && matrices.length > 0) {
      const t = matrices[c.a % matrices.length];
      const T = nodes[t];
      push({
        op: "transpose",
        device,
        shape: [T.shape[1], T.shape[0]],
        args: [t],
        ...flags,
        bound: T.bound,
        err: T.err,
      });
    } else {
      const axes = A.shape.length === 0
        ? [undefined]
        : A.shape.length === 1
        ? [undefined, 0, -1]
        : [undefined, 0, 1, -1, -2];
      const axis = axes[c.b % axes.length];
      const rank = A.shape.length;
      const ax = axis === undefined ? undefined : axis < 0 ? axis + rank : axis;
      const shape = ax === undefined || rank === 1 ? [] : [A.shape[1 - ax]];
      const N = ax === undefined || rank === 1 ? sizeOf(A.shape) : A.shape[ax];
      push({
        op: "sum",
        device,
        shape,
        args: [a],
        axis,
        ...flags,
        bound: N * A.bound,
        err: N * A.err + gamma(N) * N * A.bound,
      });
    }
  }
  return { nodes, readFirst: spec.readFirst };
}

/** The program as the TypeScript that runs it, for failure messages. */
export function describe(p: Program, devices: readonly Device[]): string {
  const last = lastUses(p.nodes);
  const dev = (i: number) => devices[i].name === "cpu" ? "cpu()" : `gpus[${devices[i].index}]`;
  const lines = p.nodes.map((node, i) => {
    const args = node.args.map((j, k) =>
      node.device === p.nodes[j].device
        ? `t${j}`
        : `t${j}.to(${dev(node.device)}${node.nonBlocking[k] ? ", { nonBlocking: true }" : ""})`
    );
    let expr: string;
    if (node.op === "rand") {
      expr = `rand([${node.shape}], { device: ${dev(node.device)}, seed: ${node.seed} })`;
    } else if (node.op === "fromArray") {
      expr = `fromArray([${arrayValues(node.seed!, sizeOf(node.shape))}], [${node.shape}], ` +
        `{ device: ${dev(node.device)} })`;
    } else if (node.op === "sum") {
      expr = `${args[0]}.sum(${node.axis ?? ""})`;
    } else if (node.scalar !== undefined) expr = `${args[0]}.${node.op}(${node.scalar})`;
    else expr = `${args[0]}.${node.op}(${args.slice(1).join(", ")})`;
    const copies = node.disposeCopies && args.some((s) => s.includes(".to("))
      ? " // copies disposed"
      : "";
    const disposed = p.nodes.flatMap((n, j) =>
      n.disposeAfterLastUse && last[j] === i ? [`t${j}.dispose();`] : []
    );
    return `const t${i} = ${expr};${copies}${disposed.length ? ` ${disposed.join(" ")}` : ""}`;
  });
  const kept = keptNodes(p.nodes).map((i) => `t${i}`);
  lines.push(
    p.readFirst
      ? `await Promise.all([${kept}].map((t) => t.data())); await waitAll();`
      : `await waitAll(); await Promise.all([${kept}].map((t) => t.data()));`,
  );
  return lines.join("\n");
}

/**
 * Submits `p`'s ops to the engine (nothing waits): returns the kept nodes' tensors, and
 * every tensor it made (disposing those is the caller's).
 */
export function submitProgram(
  p: Program,
  devices: readonly Device[],
): { kept: Tensor[]; made: Tensor[] } {
  const last = lastUses(p.nodes);
  const tensors: Tensor[] = [];
  const made: Tensor[] = [];
  for (const [i, node] of p.nodes.entries()) {
    const device = devices[node.device];
    let t: Tensor;
    if (node.op === "rand") t = rand(node.shape, { device, seed: node.seed });
    else if (node.op === "fromArray") {
      t = fromArray(arrayValues(node.seed!, sizeOf(node.shape)), node.shape, { device });
    } else {
      const copies: Tensor[] = [];
      const [a, b] = node.args.map((j, k) => {
        const moved = tensors[j].to(device, { nonBlocking: node.nonBlocking[k] });
        if (moved !== tensors[j]) copies.push(moved);
        return moved;
      });
      made.push(...copies);
      switch (node.op) {
        case "mm":
          t = a.mm(b);
          break;
        case "add":
        case "sub":
        case "mul":
          t = a[node.op](node.scalar ?? b);
          break;
        case "relu":
          t = a.relu();
          break;
        case "transpose":
          t = a.transpose();
          break;
        case "sum":
          t = a.sum(node.axis);
          break;
      }
      if (node.disposeCopies) { for (const c of copies) c.dispose(); }
    }
    assert.deepEqual(t.shape, node.shape, `t${i} has the wrong shape`);
    tensors.push(t);
    made.push(t);
    for (const j of node.args) {
      if (last[j] === i && p.nodes[j].disposeAfterLastUse) tensors[j].dispose();
    }
  }
  return { kept: keptNodes(p.nodes).map((i) => tensors[i]), made };
}

/** Runs `p` on the engine in its current mode; returns the kept nodes' values. */
export async function runOnEngine(p: Program, devices: readonly Device[]): Promise<Float32Array[]> {
  const liveBefore = engine().liveBuffers().count;
  let made: Tensor[] = [];
  try {
    const submitted = submitProgram(p, devices);
    made = submitted.made;
    const kept = submitted.kept;
    let values: Float32Array[];
    if (p.readFirst) {
      values = await Promise.all(kept.map((t) => t.data()));
      await waitAll();
    } else {
      await waitAll();
      values = await Promise.all(kept.map((t) => t.data()));
    }
    return values;
  } finally {
    for (const t of made) t.dispose();
    await waitAll();
    assert.equal(
      engine().liveBuffers().count,
      liveBefore,
      "every device buffer the program made is freed once its tensors are disposed",
    );
  }
}

// ---- the float64 reference interpreter (independent of the kernels and their CPU twins) ----

function pcg(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

function referenceRand(seed: number, n: number): Float64Array {
  const key = pcg(seed);
  return Float64Array.from({ length: n }, (_, i) => (pcg((i ^ key) >>> 0) >>> 8) / 2 ** 24);
}

export function reference(p: Program): Float64Array[] {
  const vals: Float64Array[] = [];
  for (const node of p.nodes) {
    const [A, B] = node.args.map((j) => vals[j]);
    const aShape = node.args.length > 0 ? p.nodes[node.args[0]].shape : [];
    let out: Float64Array;
    switch (node.op) {
      case "rand":
        out = referenceRand(node.seed!, sizeOf(node.shape));
        break;
      case "fromArray":
        out = Float64Array.from(arrayValues(node.seed!, sizeOf(node.shape)));
        break;
      case "mm": {
        const [rows, inner] = aShape;
        const cols = node.shape[1];
        out = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) {
            let acc = 0;
            for (let k = 0; k < inner; k++) acc += A[r * inner + k] * B[k * cols + c];
            out[r * cols + c] = acc;
          }
        }
        break;
      }
      case "add":
      case "sub":
      case "mul": {
        const f = node.op === "add"
          ? (x: number, y: number) => x + y
          : node.op === "sub"
          ? (x: number, y: number) => x - y
          : (x: number, y: number) => x * y;
        // The second operand: a number, a tensor of the same size, or a row repeated.
        const other = (i: number) => node.scalar ?? B[i % B.length];
        out = A.map((x, i) => f(x, other(i)));
        break;
      }
      case "relu":
        out = A.map((x) => Math.max(x, 0));
        break;
      case "transpose": {
        const [rows, cols] = aShape;
        out = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) out[c * rows + r] = A[r * cols + c];
        }
        break;
      }
      case "sum": {
        const rank = aShape.length;
        const ax = node.axis === undefined ? undefined : (node.axis + rank) % rank;
        if (ax === undefined || rank === 1) out = Float64Array.of(A.reduce((s, x) => s + x, 0));
        else {
          const [rows, cols] = aShape;
          out = new Float64Array(ax === 0 ? cols : rows);
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < cols; c++) out[ax === 0 ? c : r] += A[r * cols + c];
          }
        }
        break;
      }
    }
    vals.push(out);
  }
  return keptNodes(p.nodes).map((i) => vals[i]);
}

// ---- generation with fast-check ----

/** Options of {@link programSpecs}. */
export interface ProgramSpecsOptions {
  /** Devices a node may be placed on (the host counts as one). */
  deviceCount: number;
  /**
   * Largest matrix side.
   * @default {24}
   */
  maxDim?: number;
  /**
   * Most nodes of a program.
   * @default {MAX_NODES}
   */
  maxNodes?: number;
}

/** The fast-check arbitrary of program specs; {@link build} turns one into a program. */
export function programSpecs(options: ProgramSpecsOptions): fc.Arbitrary<ProgramSpec> {
  const { deviceCount, maxDim = 24, maxNodes = MAX_NODES } = options;
  const choice = fc.record({
    op: fc.nat(99),
    a: fc.nat(1000),
    b: fc.nat(1000),
    pick: fc.nat(),
    device: fc.nat(deviceCount - 1),
    flags: fc.nat(15),
  });
  return fc.record({
    n: fc.integer({ min: 1, max: maxDim }),
    m: fc.integer({ min: 1, max: maxDim }),
    steps: fc.array(choice, { minLength: 3, maxLength: maxNodes, size: "medium" }),
    readFirst: fc.boolean(),
  });
}

// ---- the check ----

function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** Options of {@link checkProgram}. */
export interface CheckProgramOptions {
  /**
   * The float64 reference the float32 results must match within their error bound.
   * @default {reference}
   */
  reference?: (p: Program) => Float64Array[];
}

/** What {@link checkProgram} measured. */
export interface ProgramCheck {
  /** Seconds of the run in parallel mode and in serial mode (submission to last value). */
  parallelSeconds: number;
  serialSeconds: number;
  /** The largest |float32 - reference| / tolerance over the kept values (<= 1 passes). */
  worstErrorRatio: number;
}

/**
 * Runs `p` in parallel mode, then in serial mode, and checks that both give bitwise the same
 * values and that they match the float64 reference within twice the float32 error bound.
 * Throws an AssertionError that shows the program as TypeScript when they do not.
 */
export async function checkProgram(
  p: Program,
  devices: readonly Device[],
  options: CheckProgramOptions = {},
): Promise<ProgramCheck> {
  const code = () => `\n${describe(p, devices)}`;
  const kept = keptNodes(p.nodes);
  const run = async (mode: "parallel" | "serial") => {
    configureEngine({ mode });
    const start = performance.now();
    try {
      const values = await runOnEngine(p, devices);
      return { values, seconds: (performance.now() - start) / 1000 };
    } catch (e) {
      throw new Error(`The program failed in ${mode} mode: ${e}:${code()}`, { cause: e });
    } finally {
      configureEngine({ mode: "parallel" });
    }
  };
  const { values: parallel, seconds: parallelSeconds } = await run("parallel");
  const { values: serial, seconds: serialSeconds } = await run("serial");
  const expected = (options.reference ?? reference)(p);
  let worstErrorRatio = 0;
  kept.forEach((node, k) => {
    const got = bitsOf(parallel[k]);
    const want = bitsOf(serial[k]);
    assert.equal(got.length, want.length, `t${node} has as many values in both modes`);
    const i = got.findIndex((x, j) => x !== want[j]);
    assert.equal(
      i,
      -1,
      `t${node}[${i}] is ${parallel[k][i]} in parallel mode but ${serial[k][i]} in ` +
        `serial mode:${code()}`,
    );
    const { err, bound } = p.nodes[node];
    // Twice the worst-case float32 error bound, plus a floor for flushed subnormals.
    const tol = 2 * err + 1e-30 * Math.max(1, bound);
    assert.equal(parallel[k].length, expected[k].length, `t${node} has the reference size`);
    parallel[k].forEach((x, j) => {
      const diff = Math.abs(x - expected[k][j]);
      if (!(diff <= tol)) {
        assert.fail(
          `t${node}[${j}] is ${x} but the reference is ${expected[k][j]} (diff ${diff}, ` +
            `tolerance ${tol}, bound ${bound}):${code()}`,
        );
      }
      worstErrorRatio = Math.max(worstErrorRatio, diff / tol);
    });
  });
  return { parallelSeconds, serialSeconds, worstErrorRatio };
}

/** Options of {@link checkRandomGraphs}. */
export interface CheckRandomGraphsOptions extends CheckProgramOptions {
  /** The devices, the host included if it may hold nodes. */
  devices: readonly Device[];
  /** fast-check's seed: the same seed generates the same graphs. */
  seed: number;
  /** How many graphs. */
  runs: number;
  /**
   * Largest matrix side.
   * @default {24}
   */
  maxDim?: number;
  /**
   * Most nodes of a graph.
   * @default {MAX_NODES}
   */
  maxNodes?: number;
  /**
   * fast-check's path of a failure to replay (with its seed): runs that graph only.
   * @default {undefined}
   */
  path?: string;
  /**
   * How to rerun the failing graph, shown after the seed in the failure message.
   * @default {"AUTOPAR_GRAPH_SEED=<seed> AUTOPAR_GRAPH_PATH=<path> deno test -A <the test>"}
   */
  replay?: (seed: number, path: string) => string;
  /**
   * Where the seed of a failure is printed; `null` prints nothing.
   * @default {console.error}
   */
  print?: ((line: string) => void) | null;
}

/** Thrown by {@link checkRandomGraphs} for a failing graph: carries what replays it. */
export class RandomGraphError extends Error {
  override name = "RandomGraphError";
  /** fast-check's seed and path of the (shrunk) failing graph. */
  readonly seed: number;
  readonly path: string;
  /** The failing graph's spec. */
  readonly spec: ProgramSpec;
  constructor(message: string, seed: number, path: string, spec: ProgramSpec, cause: unknown) {
    super(message, { cause });
    this.seed = seed;
    this.path = path;
    this.spec = spec;
  }
}

/**
 * Generates `runs` random graphs from `seed` and runs {@link checkProgram} on each. On a
 * failure, fast-check shrinks the graph, the seed and path are printed, and a
 * {@link RandomGraphError} is thrown whose message holds the seed, the path, how to replay
 * it and the failing program. Returns how many graphs passed.
 */
export async function checkRandomGraphs(options: CheckRandomGraphsOptions): Promise<number> {
  const { devices, seed, runs, path } = options;
  const maxNodes = options.maxNodes ?? MAX_NODES;
  const print = options.print === undefined ? console.error : options.print;
  const replay = options.replay ??
    ((s: number, p: string) =>
      `AUTOPAR_GRAPH_SEED=${s} AUTOPAR_GRAPH_PATH=${p} deno test -A <the test>`);
  const specs = programSpecs({ deviceCount: devices.length, maxDim: options.maxDim, maxNodes });
  let passed = 0;
  const details = await fc.check(
    fc.asyncProperty(specs, async (spec) => {
      await checkProgram(build(spec, devices.length, maxNodes), devices, options);
      passed++;
    }),
    { seed, numRuns: runs, path },
  );
  await waitAll();
  if (details.failed) {
    const failedPath = details.counterexamplePath ?? "";
    const line = `random graph failed: seed ${details.seed}, path "${failedPath}"; ` +
      `replay: ${replay(details.seed, failedPath)}`;
    print?.(line);
    const cause = details.errorInstance;
    throw new RandomGraphError(
      `${line}\n${cause instanceof Error ? cause.message : String(cause)}`,
      details.seed,
      failedPath,
      details.counterexample![0],
      cause,
    );
  }
  return passed;
}

// ---- layered graphs of a given width ----

/** A layered graph: `width` chains of products, each layer reading the layer before it. */
export interface LayeredSpec {
  width: number;
  depth: number;
  /** Rows and columns of every matrix. */
  size: number;
  /** The device of each chain. */
  devices: number[];
  /** Per layer and chain: which chain of the layer before is the second factor. */
  partners: number[][];
  /** rand's seeds of the first layer. */
  seeds: number[];
}

/** The fast-check arbitrary of layered graphs of one width, depth and size. */
export function layeredSpecs(
  shape: { width: number; depth: number; size: number },
  deviceCount: number,
): fc.Arbitrary<LayeredSpec> {
  const { width, depth, size } = shape;
  return fc.record({
    width: fc.constant(width),
    depth: fc.constant(depth),
    size: fc.constant(size),
    devices: fc.array(fc.nat(deviceCount - 1), { minLength: width, maxLength: width }),
    partners: fc.array(
      fc.array(fc.nat(width - 1), { minLength: width, maxLength: width }),
      { minLength: depth, maxLength: depth },
    ),
    seeds: fc.array(fc.nat(), { minLength: width, maxLength: width }),
  });
}

/**
 * Turns a layered spec into a program: `width` random leaves, then `depth` layers where
 * chain j computes `prev[j].mm(prev[partner])` on its device (a copy when the partner lives
 * elsewhere), scaled back near 1. Only the last layer is read.
 */
export function layeredProgram(spec: LayeredSpec): Program {
  const { width, depth, size, devices, partners, seeds } = spec;
  const nodes: GraphNode[] = [];
  const common = { nonBlocking: [true, true], disposeCopies: true, disposeAfterLastUse: true };
  let prev: number[] = [];
  for (let j = 0; j < width; j++) {
    nodes.push({
      op: "rand",
      device: devices[j],
      shape: [size, size],
      args: [],
      seed: seeds[j] >>> 0,
      ...common,
      bound: 1,
      err: 0,
    });
    prev.push(nodes.length - 1);
  }
  for (let layer = 0; layer < depth; layer++) {
    const next: number[] = [];
    for (let j = 0; j < width; j++) {
      const [A, B] = [nodes[prev[j]], nodes[prev[partners[layer][j]]]];
      pushRescaled(nodes, {
        op: "mm",
        device: devices[j],
        shape: [size, size],
        args: [prev[j], prev[partners[layer][j]]],
        ...common,
        bound: size * A.bound * B.bound,
        err: size * (A.err * B.bound + B.err * A.bound + A.err * B.err) +
          gamma(size) * size * A.bound * B.bound,
      }, Infinity);
      next.push(nodes.length - 1);
    }
    prev = next;
  }
  return { nodes, readFirst: false };
}
