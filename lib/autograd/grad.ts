/**
 * JAX-style transformations: `grad(f)` and `valueAndGrad(f)` turn a function of tensors
 * that returns a scalar into one that returns its gradients.
 *
 * @module
 */
import { Tensor } from "../tensor/tensor.ts";
import { zeros } from "../tensor/creation.ts";
import { runBackward } from "./tape.ts";

/**
 * Options of {@link grad} and {@link valueAndGrad}.
 *
 * @example
 * ```ts
 * import { fromArray, grad } from "../../mod.ts";
 * const dy = grad((w, x) => w.mul(x).sum(), { argnums: 1 });
 * console.log(await dy(fromArray([5], [1]), fromArray([2], [1])).data()); // Float32Array [5]
 * ```
 */
export interface GradOptions<A extends number | readonly number[]> {
  /**
   * Which arguments to differentiate with respect to: one index (the gradient is a Tensor)
   * or several (an array of Tensors), as JAX's `argnums`.
   * @default {0}
   */
  argnums?: A;
}

/**
 * The gradient(s) that `argnums` asks for: a Tensor for one index, an array for several.
 *
 * @example
 * ```ts
 * import { fromArray, grad, type Grads } from "../../mod.ts";
 * const both: Grads<[0, 1]> = grad((a, b) => a.mul(b).sum(), { argnums: [0, 1] })(
 *   fromArray([1], [1]),
 *   fromArray([2], [1]),
 * );
 * console.log(both.length); // 2
 * ```
 */
export type Grads<A> = A extends number ? Tensor : Tensor[];

function differentiate<A extends number | readonly number[]>(
  fn: (...args: Tensor[]) => Tensor,
  options: GradOptions<A>,
  args: Tensor[],
): [Tensor, Grads<A>] {
  const argnums = options.argnums ?? 0;
  const wanted: number[] = typeof argnums === "number"
    ? [argnums]
    : [...argnums as readonly number[]];
  for (const i of wanted) {
    if (!Number.isInteger(i) || !(args[i] instanceof Tensor)) {
      throw new TypeError(
        `Cannot differentiate with respect to argument ${i}: it is not a Tensor ` +
          `(the function got ${args.length} arguments)`,
      );
    }
  }
  // Fresh leaves, so that the caller's tensors and their .grad are left alone.
  const leaves = args.map((a, i) => {
    // Others that require grad would get a gradient too: they go in as constants.
    if (!wanted.includes(i)) return a instanceof Tensor && a.requiresGrad ? a.detach() : a;
    const l = a.detach();
    l.requiresGrad = true;
    return l;
  });
  const value = fn(...leaves);
  if (!(value instanceof Tensor)) {
    throw new TypeError(`Cannot differentiate a function that returned ${value}, not a Tensor`);
  }
  if (value.requiresGrad) runBackward(value, undefined);
  else if (value.size !== 1) runBackward(value, undefined); // throws the scalar error
  const grads = wanted.map((i) => {
    const l = leaves[i];
    return l.grad ?? zeros(l.shape, { device: l.device });
  });
  leaves.forEach((l, i) => {
    if (l !== args[i] && l !== value) l.dispose();
  });
  const result = (typeof argnums === "number" ? grads[0] : grads) as Grads<A>;
  return [value.requiresGrad ? value.detach() : value, result];
}

/**
 * `grad(f)` is a function with `f`'s arguments that returns the gradient of `f` (which must
 * return a scalar) with respect to argument 0, or those of `argnums`. The gradients are
 * queued work, like any op. The arguments' own `.grad` is left alone.
 *
 * @example
 * ```ts
 * import { fromArray, grad } from "../../mod.ts";
 * const dfdx = grad((x) => x.mul(x).sum());
 * console.log(await dfdx(fromArray([1, 2, 3], [3])).data()); // Float32Array [2, 4, 6]
 * ```
 */
export function grad<A extends number | readonly number[] = 0>(
  fn: (...args: Tensor[]) => Tensor,
  options: GradOptions<A> = {},
): (...args: Tensor[]) => Grads<A> {
  return (...args) => differentiate(fn, options, args)[1];
}

/**
 * Like {@link grad}, but the function returns `[value, gradients]`; the value is detached
 * from the graph.
 *
 * @example
 * ```ts
 * import { fromArray, valueAndGrad } from "../../mod.ts";
 * const f = valueAndGrad((w, x) => w.mul(x).sum(), { argnums: [0, 1] });
 * const [value, [dw, dx]] = f(fromArray([1, 2], [2]), fromArray([3, 4], [2]));
 * console.log((await value.data())[0], await dw.data(), await dx.data()); // 11 [3, 4] [1, 2]
 * ```
 */
export function valueAndGrad<A extends number | readonly number[] = 0>(
  fn: (...args: Tensor[]) => Tensor,
  options: GradOptions<A> = {},
): (...args: Tensor[]) => [Tensor, Grads<A>] {
  return (...args) => differentiate(fn, options, args);
}
