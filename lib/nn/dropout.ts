/**
 * Dropout, as torch.nn.Dropout: in training mode each element is zeroed with probability
 * `p` and the others are scaled by `1 / (1 - p)`; in evaluation mode it is the identity.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { engine } from "../engine/engine.ts";
import { zeros } from "../tensor/creation.ts";
import { dropoutMask } from "../tensor/dropout_mask.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Module } from "./module.ts";

/**
 * Options of {@link Dropout}.
 *
 * @example
 * ```ts
 * import { Dropout } from "../../mod.ts";
 * console.log(new Dropout(0.2, { seed: 42 }).seed); // 42
 * ```
 */
export interface DropoutOptions {
  /**
   * The stream of masks, a whole number in [0, 2^32): two layers with the same seed draw
   * the same masks, call after call, on every device.
   * @default {a fresh random seed}
   */
  seed?: number;
}

/**
 * Inverted dropout (torch.nn.Dropout): in training mode, `x * mask` where each element of
 * the mask is 0 with probability `p` and `1 / (1 - p)` otherwise, so that the expected
 * value is unchanged; gradients flow through the product. In evaluation mode (`eval()`),
 * and for p 0, the input itself. Each call draws a new mask, the k-th call on a device
 * the same for the same seed wherever it runs (the host or any GPU), and a step replayed by
 * `capture()` draws a new mask each replay. Throws a TypeError for a p that is not a
 * number, a RangeError for one outside [0, 1] or a bad seed.
 *
 * @example
 * ```ts
 * import { Dropout, ones } from "../../mod.ts";
 * const drop = new Dropout(0.5, { seed: 1 });
 * const y = await drop.forward(ones([6])).data();
 * console.log(y.every((v) => v === 0 || v === 2)); // true
 * drop.eval();
 * console.log(await drop.forward(ones([2])).data()); // Float32Array [1, 1]
 * ```
 */
export class Dropout extends Module {
  /** The probability of zeroing an element. */
  readonly p: number;
  /** The stream of masks. */
  readonly seed: number;
  /**
   * The call counter of each device this layer ran on (one-element tensors, advanced on the
   * device by each call): a field, so that forward scopes keep it.
   */
  readonly counters: Tensor[] = [];

  /** A layer that drops elements with probability `p`. */
  constructor(p = 0.5, options: DropoutOptions = {}) {
    super();
    if (typeof p !== "number") {
      throw new TypeError(`Cannot make a Dropout layer with p ${String(p)}: it must be a number`);
    }
    if (!(p >= 0 && p <= 1)) {
      throw new RangeError(`Cannot make a Dropout layer with p ${p}: it must be in [0, 1]`);
    }
    const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
      throw new RangeError(
        `Cannot make a Dropout layer with seed ${seed}: it must be a whole number in [0, 2^32)`,
      );
    }
    this.p = p;
    this.seed = seed;
  }

  /** `x * mask` in training mode, else `x` itself. */
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    const mask = dropoutMask(x.shape, this.#counterOn(x.device), { p: this.p, seed: this.seed });
    return x.mul(mask);
  }

  #counterOn(device: Device): Tensor {
    const found = this.counters.find((c) => c.device === device && !c.disposed);
    if (found) return found;
    if (engine().capture) {
      // Made inside the recording, the counter would be made anew, at 0, by every replay.
      throw new TypeError(
        `Cannot record a Dropout layer's first call on ${device.name} in capture(): a replay ` +
          `would draw the same mask every time; run the layer on that device before the step ` +
          `is recorded (capture's warm-up call does, when the layer is in training mode then)`,
      );
    }
    const counter = zeros([1], { device });
    this.counters.push(counter);
    return counter;
  }
}
