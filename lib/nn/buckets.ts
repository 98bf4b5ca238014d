/**
 * Gradient buckets, shared by DataParallel and DistributedDataParallel: which parameters go
 * together into one exchange, and a bucket's tensors joined into one flat tensor for it and
 * split back after.
 *
 * @module
 */
import { cat } from "../tensor/join.ts";
import type { Tensor } from "../tensor/tensor.ts";

/**
 * Parameter indices in buckets of at most `bytes` each (a larger parameter alone), in the
 * reverse order of the parameters: backward reaches the last ones first.
 *
 * @example
 * ```ts
 * import { zeros } from "../../mod.ts";
 * import { bucketsOf } from "./buckets.ts";
 * const params = [zeros([4]), zeros([2]), zeros([2])];
 * console.log(bucketsOf(params, 16)); // [[2, 1], [0]]
 * ```
 */
export function bucketsOf(params: readonly Tensor[], bytes: number): number[][] {
  const out: number[][] = [];
  let size = Infinity;
  for (let i = params.length - 1; i >= 0; i--) {
    const b = params[i].size * 4;
    if (size + b > bytes && size > 0) {
      out.push([]);
      size = 0;
    }
    out[out.length - 1].push(i);
    size += b;
  }
  return out;
}

/**
 * `exchange` of `parts` joined into one 1-D tensor, split back into tensors of the parts'
 * shapes (queued work). The joined tensor and the exchange's result are freed once read;
 * `parts` are left alone.
 *
 * @example
 * ```ts
 * import { fromArray } from "../../mod.ts";
 * import { throughFlat } from "./buckets.ts";
 * const [a, b] = throughFlat([fromArray([1, 2], [2]), fromArray([3], [1])], (t) => t.mul(10));
 * console.log(await a.data(), await b.data()); // Float32Array [10, 20] Float32Array [30]
 * ```
 */
export function throughFlat(
  parts: readonly Tensor[],
  exchange: (flat: Tensor) => Tensor,
): Tensor[] {
  const flat = parts.map((t) => t.reshape([t.size]));
  const joined = flat.length === 1 ? flat[0] : cat(flat);
  const out = exchange(joined);
  let offset = 0;
  const back = parts.map((p) => {
    const part = out.narrow(0, offset, p.size).reshape(p.shape);
    offset += p.size;
    return part;
  });
  for (const t of new Set([...flat, joined, out])) t.dispose();
  return back;
}
