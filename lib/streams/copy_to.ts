/**
 * `copyTo`: an operator that copies each tensor to a device and emits the copy once it has
 * landed, in order, with a bounded number of copies in flight.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { checkDevice, type Tensor } from "../tensor/tensor.ts";
import { orderedMap } from "./ordered_map.ts";
import type * as rxjs from "./rxjs_types.ts";
import { computed } from "./settled.ts";

/**
 * An rxjs operator from a stream of tensors to a stream of tensors, for `.pipe()`.
 *
 * @example
 * ```ts
 * import { lastValueFrom, of, toArray } from "npm:rxjs@7.8.2";
 * import { cpu } from "../devices/device.ts";
 * import { tryGpu } from "../devices/discovery.ts";
 * import { ones } from "../tensor/creation.ts";
 * import { copyTo, type TensorOperator } from "./copy_to.ts";
 * const toHost: TensorOperator = copyTo(cpu());
 * const x = ones([2], { device: await tryGpu() });
 * const [y] = await lastValueFrom(of(x).pipe(toHost, toArray()));
 * console.log(y.device.name, await y.data()); // "cpu" Float32Array [1, 1]
 * ```
 */
export type TensorOperator = rxjs.OperatorFunction<Tensor, Tensor>;

/**
 * Options of {@link copyTo}.
 *
 * @example
 * ```ts
 * import { lastValueFrom, of, toArray } from "npm:rxjs@7.8.2";
 * import { cpu } from "../devices/device.ts";
 * import { tryGpu } from "../devices/discovery.ts";
 * import { ones } from "../tensor/creation.ts";
 * import { copyTo, type CopyToOptions } from "./copy_to.ts";
 * const options: CopyToOptions = { concurrency: 1, disposeSource: false }; // keep the sources
 * const x = ones([2], { device: await tryGpu() });
 * const [y] = await lastValueFrom(of(x).pipe(copyTo(cpu(), options), toArray()));
 * console.log(x.disposed, y.device.name); // false "cpu"
 * ```
 */
export interface CopyToOptions {
  /**
   * Most copies in flight at once.
   * @default {2}
   */
  concurrency?: number;
  /**
   * Dispose each incoming tensor once its copy is queued (it is freed after the copy has
   * read it): the stream moves tensors rather than duplicating them.
   * @default {true}
   */
  disposeSource?: boolean;
}

/**
 * Copies each incoming tensor to `device` with a non-blocking copy and emits the copy when
 * it has landed, in order, with at most `concurrency` copies in flight. Tensors waiting for
 * a free copy are held, so a `produce` upstream waits for room. The copy of `y[i-1]` runs
 * while `y[i]` is computing. Throws a TypeError for a bad device, a RangeError for a bad
 * concurrency.
 *
 * @example
 * ```ts
 * import { lastValueFrom, toArray } from "npm:rxjs@7.8.2";
 * import { cpu } from "../devices/device.ts";
 * import { tryGpu } from "../devices/discovery.ts";
 * import { ones } from "../tensor/creation.ts";
 * import { copyTo } from "./copy_to.ts";
 * import { produce } from "./produce.ts";
 * const x = ones([4], { device: await tryGpu() });
 * const copies = produce(3, (i) => x.mul(i)).pipe(copyTo(cpu()), toArray());
 * const ys = await lastValueFrom(copies);
 * console.log(ys.map((y) => y.device.name)); // ["cpu", "cpu", "cpu"]
 * ```
 */
export function copyTo(
  device: Device,
  options: CopyToOptions = {},
): TensorOperator {
  const target = checkDevice(device, "copy a stream");
  const concurrency = options.concurrency ?? 2;
  const disposeSource = options.disposeSource ?? true;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(
      `Cannot copy with concurrency ${concurrency}: it must be a whole number >= 1`,
    );
  }
  return orderedMap<Tensor, Tensor>({
    concurrency,
    start: (t) => {
      const copy = t.to(target, { nonBlocking: true });
      if (disposeSource && copy !== t) t.dispose();
      return { result: copy, done: computed(copy) };
    },
    discardItem: (t) => {
      if (disposeSource) t.dispose();
    },
    discardResult: (t) => t.dispose(),
  });
}
