/**
 * Creating tensors: `rand`, `zeros`, `ones`, `fromArray`. Values are made on the device
 * itself (no upload) except for `fromArray`.
 *
 * @module
 */
import { cpu, type Device } from "../devices/device.ts";
import { engine } from "../engine/engine.ts";
import type { KernelParams, KernelSpec } from "../kernels/kernel.ts";
import { fill, random } from "../kernels/elementwise.ts";
import { checkDevice, checkShape, noteValues, type Tensor, wrap } from "./tensor.ts";

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

function place(options: CreateOptions, shape: unknown, what: string) {
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
  const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(`Cannot use seed ${seed}: it must be a whole number in [0, 2^32)`);
  }
  return leaf(made("rand", device, random, { n: sizeOf(s), seed }, s), options);
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
 * A tensor holding `data` (copied), row-major in `shape`. Throws a RangeError when the
 * lengths differ and a TypeError naming the first element that is not a number.
 *
 * @example
 * ```ts
 * import { fromArray } from "./creation.ts";
 * const t = fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
 * console.log(t.shape); // [2, 3]
 * ```
 */
export function fromArray(
  data: ArrayLike<number>,
  shape: readonly number[],
  options: CreateOptions = {},
): Tensor {
  const { device, shape: s } = place(options, shape, "make a tensor from an array");
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
          `Cannot make a tensor from element ${i}, ${JSON.stringify(data[i]) ?? String(data[i])} ` +
            `(${typeof data[i]}): every element must be a number`,
        );
      }
    }
  }
  const e = engine();
  const host = e.hostTensor(Float32Array.from(data), s);
  if (device.kind === "cpu") {
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
