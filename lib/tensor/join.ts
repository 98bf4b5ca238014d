/**
 * Joining tensors: `cat` along an existing axis and `stack` along a new one, as in PyTorch.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { engine, type TensorRecord } from "../engine/engine.ts";
import { cat as catKernel, type CatParams, MAX_CAT_INPUTS } from "../kernels/shape.ts";
import { catShape } from "./shapes.ts";
import { checkShape, recordOf, type Tensor, trackOp, wrap } from "./tensor.ts";

const fmt = (shape: readonly number[]) => `[${shape.join(", ")}]`;
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The tensors' records, checked: a non-empty array of live tensors on one device. */
function operands(tensors: readonly Tensor[], what: string): TensorRecord[] {
  if (!Array.isArray(tensors) || tensors.length === 0) {
    throw new TypeError(`Cannot ${what} ${String(tensors)}: give a non-empty array of tensors`);
  }
  const recs = tensors.map((t, i) => {
    let rec: TensorRecord;
    try {
      rec = recordOf(t);
    } catch {
      throw new TypeError(`Cannot ${what} ${String(t)} (item ${i}): it is not a Tensor`);
    }
    if (rec.disposed) throw new TypeError(`Cannot ${what} ${t} (item ${i}): it was disposed`);
    return rec;
  });
  const device = tensors[0].device;
  const other = tensors.findIndex((t) => t.device !== device);
  if (other >= 0) {
    throw new TypeError(
      `Cannot ${what} tensors on different devices, ${device.name} (item 0) and ` +
        `${tensors[other].device.name} (item ${other}): move them with .to(device) first`,
    );
  }
  return recs;
}

/** `axis` of `rank` dims (negative from the end) as an index; throws a RangeError otherwise. */
function resolveAxis(axis: number, rank: number, what: string): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(
      `Cannot ${what} along axis ${axis}: it must be a whole number in [${-rank}, ${rank - 1}]`,
    );
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * `[outer, sizes[t], inner]` blocks joined along the middle: one kernel for up to
 * {@link MAX_CAT_INPUTS} inputs, a tree of them for more (every level copies once).
 */
function join(
  recs: readonly TensorRecord[],
  sizes: readonly number[],
  outer: number,
  inner: number,
  shape: readonly number[],
  device: Device,
  name: string,
): TensorRecord {
  const e = engine();
  const run = (rs: readonly TensorRecord[], ss: readonly number[], out: readonly number[]) => {
    const params: CatParams = { outer, inner, sizes: ss.join(",") };
    return e.submit({
      name,
      kind: "run",
      device,
      kernel: catKernel.name,
      params,
      inputs: [...rs],
      outputShapes: [out],
    })[0];
  };
  if (recs.length <= MAX_CAT_INPUTS) return run(recs, sizes, shape);
  const parts: TensorRecord[] = [];
  const partSizes: number[] = [];
  for (let i = 0; i < recs.length; i += MAX_CAT_INPUTS) {
    const ss = sizes.slice(i, i + MAX_CAT_INPUTS);
    const total = ss.reduce((a, b) => a + b, 0);
    parts.push(run(recs.slice(i, i + MAX_CAT_INPUTS), ss, [outer * total * inner]));
    partSizes.push(total);
  }
  const out = join(parts, partSizes, outer, inner, shape, device, name);
  for (const p of parts) e.dispose(p);
  return out;
}

/**
 * The tensors joined along `axis` (negative counts from the end), like `torch.cat`: they
 * have one rank and the same sizes outside `axis`, on one device. Throws a RangeError naming
 * the shapes that do not fit, a TypeError for tensors on different devices.
 *
 * @example
 * ```ts
 * import { cat, fromArray } from "../../mod.ts";
 * const t = cat([fromArray([1, 2], [1, 2]), fromArray([3, 4, 5, 6], [2, 2])]);
 * console.log(t.shape, await t.data()); // [3, 2] Float32Array [1, 2, 3, 4, 5, 6]
 * console.log(cat([t, t], -1).shape); // [3, 4]
 * ```
 */
export function cat(tensors: readonly Tensor[], axis = 0): Tensor {
  const recs = operands(tensors, "cat");
  const first = tensors[0].shape;
  if (first.length === 0) {
    throw new RangeError(
      `Cannot cat shapes ${tensors.map((t) => fmt(t.shape)).join(", ")}: ` +
        `tensors of shape [] have no axis to join along (stack them instead)`,
    );
  }
  const ax = resolveAxis(axis, first.length, `cat shapes of rank ${first.length}`);
  const device = tensors[0].device;
  const shape = checkShape(catShape(tensors.map((t) => t.shape), ax), device, "cat");
  const sizes = tensors.map((t) => t.shape[ax]);
  const outer = sizeOf(first.slice(0, ax)), inner = sizeOf(first.slice(ax + 1));
  const out = wrap(join(recs, sizes, outer, inner, shape, device, "cat"));
  return trackOp(out, "cat", tensors, { axis: ax, sizes });
}

/**
 * The tensors stacked along a new dimension at `axis` (in [-(rank + 1), rank]), like
 * `torch.stack`: they have the same shape, on one device. Throws a RangeError naming the
 * shapes that differ, a TypeError for tensors on different devices.
 *
 * @example
 * ```ts
 * import { fromArray, stack } from "../../mod.ts";
 * const [a, b] = [fromArray([1, 2], [2]), fromArray([3, 4], [2])];
 * console.log(stack([a, b]).shape, await stack([a, b], 1).data()); // [2, 2] Float32Array [1, 3, 2, 4]
 * ```
 */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  const recs = operands(tensors, "stack");
  const first = tensors[0].shape;
  const odd = tensors.findIndex((t) =>
    t.shape.length !== first.length || t.shape.some((n, d) => n !== first[d])
  );
  if (odd >= 0) {
    throw new RangeError(
      `Cannot stack shapes ${tensors.map((t) => fmt(t.shape)).join(", ")}: tensor ${odd}'s ` +
        `shape ${fmt(tensors[odd].shape)} differs from ${fmt(first)}`,
    );
  }
  const ax = resolveAxis(axis, first.length + 1, `stack shapes of rank ${first.length}`);
  const device = tensors[0].device;
  const shape = checkShape(
    [...first.slice(0, ax), tensors.length, ...first.slice(ax)],
    device,
    "stack",
  );
  const outer = sizeOf(first.slice(0, ax)), inner = sizeOf(first.slice(ax));
  const sizes = tensors.map(() => 1);
  const out = wrap(join(recs, sizes, outer, inner, shape, device, "stack"));
  return trackOp(out, "stack", tensors, { axis: ax });
}
