/**
 * `produce`: an Observable of tensors, each emitted once it is computed, made only while
 * there is room (backpressure into the producer).
 *
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";
import { paced } from "./paced.ts";
import type * as rxjs from "./rxjs_types.ts";
import { computed } from "./settled.ts";

/**
 * A stream of tensors, each emitted once it is computed: an rxjs Observable, to `.pipe()`
 * (for example into `copyTo`) and `subscribe()` like any other.
 *
 * @example
 * ```ts
 * import { lastValueFrom, map, toArray } from "npm:rxjs@7.8.2";
 * import { ones } from "../tensor/creation.ts";
 * import { produce, type TensorStream } from "./produce.ts";
 * const x = ones([2]);
 * const ys: TensorStream = produce(3, (i) => x.add(i));
 * const shapes = await lastValueFrom(ys.pipe(map((y) => y.shape), toArray()));
 * console.log(shapes); // [[2], [2], [2]]
 * ```
 */
export type TensorStream = rxjs.Observable<Tensor>;

/**
 * Options of {@link produce}.
 *
 * @example
 * ```ts
 * import { lastValueFrom, toArray } from "npm:rxjs@7.8.2";
 * import { ones } from "../tensor/creation.ts";
 * import { produce, type ProduceOptions } from "./produce.ts";
 * const options: ProduceOptions = { inFlight: 1 }; // one tensor made at a time
 * const x = ones([2]);
 * const ys = await lastValueFrom(produce(2, (i) => x.mul(i + 1), options).pipe(toArray()));
 * console.log(await ys[1].data()); // Float32Array [2, 2]
 * ```
 */
export interface ProduceOptions {
  /**
   * At most this many tensors computing, or emitted and still waiting in a consumer's
   * buffer. Two keeps a device busy while the previous result is consumed.
   * @default {2}
   */
  inFlight?: number;
}

/**
 * Makes `make(i)` for i = 0..n-1 and emits each tensor once it is computed on its device, in
 * order. It makes a tensor only while fewer than `inFlight` are computing or held by a
 * consumer (`copyTo` holds what it has not started copying), so a long stream does not grow
 * memory. Unsubscribing stops production and disposes what was made and not emitted. An
 * error of `make` or of the work errors the stream. Throws a RangeError for bad counts.
 *
 * @example
 * ```ts
 * import { lastValueFrom, toArray } from "npm:rxjs@7.8.2";
 * import { ones } from "../tensor/creation.ts";
 * import { produce } from "./produce.ts";
 * const x = ones([4]);
 * const ys = await lastValueFrom(produce(3, (i) => x.mul(i)).pipe(toArray()));
 * console.log(await ys[2].data()); // Float32Array [2, 2, 2, 2]
 * ```
 */
export function produce(
  n: number,
  make: (i: number) => Tensor,
  options: ProduceOptions = {},
): TensorStream {
  const inFlight = options.inFlight ?? 2;
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`Cannot produce ${n} tensors: n must be a whole number >= 0`);
  }
  if (!Number.isInteger(inFlight) || inFlight < 1) {
    throw new RangeError(
      `Cannot produce with inFlight ${inFlight}: it must be a whole number >= 1`,
    );
  }
  if (typeof make !== "function") {
    throw new TypeError(`Cannot produce with ${make}: make must be a function (i) => Tensor`);
  }
  return paced({
    count: n,
    inFlight,
    make,
    ready: computed,
    discard: (t) => t.dispose(),
  });
}
