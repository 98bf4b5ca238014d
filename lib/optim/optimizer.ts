/**
 * What every optimizer shares: the parameters it updates, `zeroGrad()`, and the checks of
 * its arguments.
 *
 * @module
 */
import { noGrad } from "../autograd/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

/** Something that holds parameters: a Module, a DataParallel. */
export interface ParameterSource {
  /** The parameters to optimise. */
  parameters(): Iterable<Tensor>;
}

/** The parameters `params` gives; a TypeError saying what to pass when it gives none. */
function parameterList(params: Iterable<Tensor> | ParameterSource, what: string): Tensor[] {
  const given = params as Partial<ParameterSource & Iterable<Tensor>> | null | undefined;
  if (given !== null && typeof given === "object" && typeof given.parameters === "function") {
    return [...given.parameters()];
  }
  if (given === null || given === undefined || typeof given[Symbol.iterator] !== "function") {
    throw new TypeError(
      `Cannot make ${what} from ${String(params)}: pass the parameters (model.parameters(), ` +
        `an array of tensors) or the model itself`,
    );
  }
  return [...(params as Iterable<Tensor>)];
}

/**
 * An optimizer over a list of parameters (tensors that require grad); subclasses write `update`.
 *
 * @example
 * ```ts
 * import { fromArray, Optimizer, type Tensor } from "../../mod.ts";
 * // Plain gradient descent, written as a subclass.
 * class Descent extends Optimizer {
 *   constructor(params: Tensor[], readonly lr: number) {
 *     super(params, "a descent optimizer");
 *   }
 *   protected update(p: Tensor, g: Tensor): void {
 *     p.sub_(g, { alpha: this.lr });
 *   }
 * }
 * const w = fromArray([1], [1], { requiresGrad: true });
 * const opt = new Descent([w], 0.25);
 * w.mul(w).sum().backward();
 * opt.step();
 * console.log(await w.data()); // Float32Array [0.5]
 * ```
 */
export abstract class Optimizer {
  /** The parameters, in the order given. */
  readonly params: readonly Tensor[];

  /**
   * `params`: the parameters, or a model (anything with `parameters()`: a Module, a
   * DataParallel) whose parameters are taken. Throws a TypeError unless every parameter is a
   * leaf tensor that requires grad.
   */
  constructor(params: Iterable<Tensor> | ParameterSource, what: string) {
    this.params = parameterList(params, what);
    for (const [i, p] of this.params.entries()) {
      if (!(p instanceof Tensor) || !p.requiresGrad || p.gradFn !== undefined) {
        throw new TypeError(
          `Cannot make ${what} with parameter ${i}, ${String(p)}: parameters must be leaf ` +
            `tensors with requiresGrad (for example model.parameters())`,
        );
      }
    }
    if (this.params.length === 0) {
      throw new RangeError(`Cannot make ${what} without parameters`);
    }
  }

  /**
   * Updates every parameter that has a gradient, in place, and returns at once (the update
   * is queued work). Parameters without `.grad` are left alone.
   */
  step(): void {
    noGrad(() => {
      this.params.forEach((p, i) => {
        if (p.grad !== undefined && !p.grad.disposed) this.update(p, p.grad, i);
      });
    });
  }

  /** Drops every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = undefined;
    }
  }

  /** Frees the gradients and the optimizer's state (momentum, running means). */
  dispose(): void {
    this.zeroGrad();
    for (const t of this.state()) t?.dispose();
  }

  /** Updates parameter `i` from its gradient (inside noGrad). */
  protected abstract update(p: Tensor, grad: Tensor, i: number): void;

  /** The tensors the optimizer keeps between steps, for {@link Optimizer.dispose}. */
  protected state(): (Tensor | undefined)[] {
    return [];
  }
}

/** Throws a RangeError unless `value` is a finite number in [min, max]. */
export function checkRange(value: number, name: string, min: number, max = Infinity): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot use ${name} ${value}: it must be a finite number in [${min}, ${max}]`,
    );
  }
  return value;
}
