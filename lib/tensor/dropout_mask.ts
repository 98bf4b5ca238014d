/**
 * The mask of inverted dropout as a tensor, made on the device by the `dropout_mask`
 * kernel (lib/kernels/dropout.ts). Dropout (lib/nn/dropout.ts) multiplies its input by it.
 *
 * @module
 */
import { engine } from "../engine/engine.ts";
import { dropoutMask as dropoutKernel } from "../kernels/dropout.ts";
import { checkShape, recordOf, Tensor, wrap } from "./tensor.ts";

/** Options of {@link dropoutMask}. */
export interface DropoutMaskOptions {
  /** Probability of dropping an element, in [0, 1]. */
  p: number;
  /** The stream: a whole number in [0, 2^32). */
  seed: number;
}

/**
 * A mask of `shape` on `counter`'s device whose elements are 0 with probability `p` and
 * `1 / (1 - p)` otherwise, the same bits on every device for the same seed and count.
 * `counter` (shape `[1]`, a whole number) says which call of the stream this is; it is
 * advanced in place, so a step replayed by `capture()` draws a fresh mask each time.
 * Throws a RangeError for a bad p, seed, shape or counter.
 *
 * @example
 * ```ts
 * import { zeros } from "../../mod.ts";
 * import { dropoutMask } from "./dropout_mask.ts";
 * const counter = zeros([1]);
 * const a = await dropoutMask([8], counter, { p: 0.5, seed: 1 }).data();
 * console.log(a.every((v) => v === 0 || v === 2), await counter.data()); // true Float32Array [1]
 * ```
 */
export function dropoutMask(
  shape: readonly number[],
  counter: Tensor,
  options: DropoutMaskOptions,
): Tensor {
  const { p, seed } = options;
  if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
    throw new RangeError(`Cannot make a dropout mask with p ${p}: it must be in [0, 1]`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(`Cannot use seed ${seed}: it must be a whole number in [0, 2^32)`);
  }
  if (!(counter instanceof Tensor) || counter.disposed || counter.size !== 1) {
    throw new RangeError(
      `Cannot make a dropout mask with the counter ${String(counter)}: it must be a live ` +
        `tensor of one element`,
    );
  }
  const s = checkShape(shape, counter.device, "make a dropout mask");
  const n = s.reduce((a, b) => a * b, 1);
  const [mask, next] = engine().submit({
    name: "dropoutMask",
    kind: "run",
    device: counter.device,
    kernel: dropoutKernel.name,
    params: { n, p, scale: p === 1 ? 0 : 1 / (1 - p), seed },
    inputs: [recordOf(counter)],
    outputShapes: [s, [1]],
  });
  const advanced = wrap(next);
  counter.copy_(advanced);
  advanced.dispose();
  return wrap(mask);
}
