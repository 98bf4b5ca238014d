/**
 * Creating tensors: `rand`, `randn`, `zeros`, `ones`, `fromArray`. Values are made on the
 * device itself (no upload) except for `fromArray`.
 *
 * @module
 */
import { cpu, type Device } from "../devices/device.ts";
import { engine } from "../engine/engine.ts";
import { isHostVisible } from "../devices/capabilities.ts";
import type { KernelParams, KernelSpec } from "../kernels/kernel.ts";
import { fill, random } from "../kernels/elementwise.ts";
import { randn as randnKernel } from "../kernels/normal.ts";
import { checkDevice, checkShape, describe, noteValues, type Tensor, wrap } from "./tensor.ts";

/**
 * Options of the creation functions.
 *
 * @example
 * ```ts
 * import { zeros } from "../../mod.ts";
 * const w = zeros([2, 2], { requiresGrad: true });
 * console.log(w.device.name, w.requiresGrad); // "cpu" true
 * ```
 */
export interface CreateOptions {
  /**
   * Where the tensor lives.
   * @default {cpu()}
   */
  device?: Device;
  /**
   * Record the ops on this tensor for autograd (a leaf whose `.grad` backward() fills).
   * @default {false}
   */
  requiresGrad?: boolean;
}

/**
 * Options of {@link rand}.
 *
 * @example
 * ```ts
 * import { rand } from "../../mod.ts";
 * const a = await rand([3], { seed: 1 }).data();
 * console.log(a.every((v) => v >= 0 && v < 1)); // true
 * ```
 */
export interface RandOptions extends CreateOptions {
  /**
   * A whole number in [0, 2^32): the same seed gives the same values on every device.
   * @default {a fresh random seed}
   */
  seed?: number;
}

/** Numbers in nested arrays, as `torch.tensor([[1, 2], [3, 4]])` takes them. */
export type NestedNumbers = readonly (number | NestedNumbers)[];

/**
 * Nested arrays (`[[1, 2], [3, 4]]`, as torch.tensor takes them) flattened row-major;
 * throws a RangeError when their nesting is not `shape`.
 */
function flatten(data: readonly unknown[], shape: readonly number[]): unknown[] {
  const out: unknown[] = [];
  const walk = (v: unknown, depth: number, at: string) => {
    if (depth === shape.length) {
      if (Array.isArray(v)) {
        throw new RangeError(
          `Cannot make a tensor of shape [${shape.join(", ")}]: data${at} nests deeper`,
        );
      }
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new RangeError(
        `Cannot make a tensor of shape [${shape.join(", ")}] from nested arrays: data${at} ` +
          `has ${Array.isArray(v) ? v.length : "no"} entries where ${shape[depth]} belong`,
      );
    }
    v.forEach((w, i) => walk(w, depth + 1, `${at}[${i}]`));
  };
  walk(data, 0, "");
  return out;
}

function place(options: CreateOptions, shape: unknown, what: string) {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`Cannot ${what} with options ${options}: give an object or nothing`);
  }
  const device = checkDevice(options.device ?? cpu(), what);
  const requiresGrad = options.requiresGrad ?? false;
  if (typeof requiresGrad !== "boolean") {
    throw new TypeError(`Cannot ${what} with requiresGrad ${requiresGrad}: it must be a boolean`);
  }
  return { device, shape: checkShape(shape, device, what) };
}

function leaf(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Uniform random values in [0, 1), like `torch.rand`. Throws a RangeError for a bad shape
 * or seed.
 *
 * @example
 * ```ts
 * import { rand } from "./creation.ts";
 * const a = await rand([2, 3], { seed: 7 }).data();
 * const b = await rand([2, 3], { seed: 7 }).data();
 * console.log(a.every((v, i) => v === b[i])); // true
 * ```
 */
export function rand(shape: readonly number[], options: RandOptions = {}): Tensor {
  const { device, shape: s } = place(options, shape, "make a random tensor");
  const seed = seedOf(options);
  return leaf(made("rand", device, random, { n: sizeOf(s), seed }, s), options);
}

/** The seed of `options`, or a fresh random one; throws a RangeError for a bad seed. */
function seedOf(options: RandOptions): number {
  const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(`Cannot use seed ${seed}: it must be a whole number in [0, 2^32)`);
  }
  return seed;
}

/**
 * Standard normal random values (mean 0, variance 1), like `torch.randn`: the Box-Muller
 * transform of a counter-based hash, so a seed gives the same values on every device (to
 * float32 rounding of `log` and `cos`) and unseeded calls differ. Throws a RangeError for a
 * bad shape or seed.
 *
 * @example
 * ```ts
 * import { randn } from "../../mod.ts";
 * const a = await randn([1000], { seed: 3 }).data();
 * const mean = a.reduce((s, v) => s + v, 0) / a.length;
 * console.log(Math.abs(mean) < 0.2); // true
 * ```
 */
export function randn(shape: readonly number[], options: RandOptions = {}): Tensor {
  const { device, shape: s } = place(options, shape, "make a normal random tensor");
  const seed = seedOf(options);
  return leaf(made("randn", device, randnKernel, { n: sizeOf(s), seed }, s), options);
}

/**
 * A tensor of zeros. Throws a RangeError for a bad shape.
 *
 * @example
 * ```ts
 * import { zeros } from "../../mod.ts";
 * console.log(await zeros([2]).data()); // Float32Array [0, 0]
 * ```
 */
export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  const { device, shape: s } = place(options, shape, "make a tensor of zeros");
  return leaf(made("zeros", device, fill, { n: sizeOf(s), value: 0 }, s), options);
}

/**
 * A tensor of ones. Throws a RangeError for a bad shape.
 *
 * @example
 * ```ts
 * import { ones } from "../../mod.ts";
 * console.log(await ones([2]).data()); // Float32Array [1, 1]
 * ```
 */
export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  const { device, shape: s } = place(options, shape, "make a tensor of ones");
  return leaf(made("ones", device, fill, { n: sizeOf(s), value: 1 }, s), options);
}

/**
 * A tensor holding `values` (copied), row-major in `shape`: a flat array (or typed array),
 * or nested arrays as `torch.tensor` takes them. Throws a RangeError when the lengths or the
 * nesting differ from `shape`, and a TypeError naming the first element that is not a number.
 *
 * @example
 * ```ts
 * import { fromArray } from "./creation.ts";
 * const t = fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
 * console.log(t.shape); // [2, 3]
 * console.log(await fromArray([[1, 2], [3, 4]], [2, 2]).data()); // Float32Array [1, 2, 3, 4]
 * ```
 */
export function fromArray(
  values: ArrayLike<number> | NestedNumbers,
  shape: readonly number[],
  options: CreateOptions = {},
): Tensor {
  const { device, shape: s } = place(options, shape, "make a tensor from an array");
  const data =
    (Array.isArray(values) && Array.isArray(values[0]) ? flatten(values, s) : values) as ArrayLike<
      number
    >;
  if (typeof (data as unknown as BigInt64Array)?.[0] === "bigint") {
    throw new TypeError(
      `Cannot make a tensor from ${describe(data)} of BigInts: tensors hold float32; ` +
        `convert them first (Array.from(data, Number))`,
    );
  }
  if (data?.length !== sizeOf(s)) {
    throw new RangeError(
      `Cannot make a tensor of shape [${s.join(", ")}] from ${data?.length} values: it needs ${
        sizeOf(s)
      }`,
    );
  }
  if (!ArrayBuffer.isView(data)) {
    for (let i = 0; i < data.length; i++) {
      if (typeof data[i] !== "number") {
        throw new TypeError(
          `Cannot make a tensor from element ${i}, ${describe(data[i])} ` +
            `(${typeof data[i]}): every element must be a number`,
        );
      }
    }
  }
  const e = engine();
  const host = e.hostTensor(Float32Array.from(data), s);
  if (isHostVisible(device)) {
    const t = wrap(host);
    noteValues(t, data);
    return leaf(t, options);
  }
  host.internal = true; // ours alone: its buffer is handed to the Worker without another copy
  const [out] = e.submit({
    name: "fromArray",
    kind: "write",
    device,
    inputs: [host],
    outputShapes: [s],
  });
  e.dispose(host);
  const t = wrap(out);
  noteValues(t, data);
  return leaf(t, options);
}

function made<P extends KernelParams>(
  name: string,
  device: Device,
  spec: KernelSpec<P>,
  params: P,
  shape: readonly number[],
): Tensor {
  const [out] = engine().submit({
    name,
    kind: "run",
    device,
    kernel: spec.name,
    params,
    inputs: [],
    outputShapes: [shape],
  });
  return wrap(out);
}
