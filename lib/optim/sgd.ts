/**
 * Stochastic gradient descent with momentum, as PyTorch's `torch.optim.SGD`.
 *
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";
import { checkRange, Optimizer, type ParameterSource } from "./optimizer.ts";

/**
 * Options of {@link SGD}.
 *
 * @example
 * ```ts
 * import { SGD, zeros } from "../../mod.ts";
 * const opt = new SGD([zeros([2], { requiresGrad: true })], { lr: 0.1, momentum: 0.9 });
 * console.log(opt.momentum); // 0.9
 * ```
 */
export interface SgdOptions {
  /** The learning rate. */
  lr: number;
  /**
   * Momentum factor: `v = momentum * v + g; p -= lr * v` (PyTorch's form).
   * @default {0}
   */
  momentum?: number;
  /**
   * L2 penalty added to the gradient: `g + weightDecay * p`.
   * @default {0}
   */
  weightDecay?: number;
}

/**
 * `p -= lr * g` for every parameter, with optional momentum and weight decay. Throws a
 * RangeError for a learning rate or momentum out of range.
 *
 * @example
 * ```ts
 * import { fromArray, SGD } from "../../mod.ts";
 * const w = fromArray([1, 2], [2], { requiresGrad: true });
 * const opt = new SGD([w], { lr: 0.1 });
 * w.mul(w).sum().backward(); // grad 2w = [2, 4]
 * opt.step();
 * console.log(await w.data()); // Float32Array [0.8, 1.6]
 * ```
 */
export class SGD extends Optimizer {
  /** The learning rate; may be changed between steps. */
  lr: number;
  /** See {@link SgdOptions.momentum}. */
  readonly momentum: number;
  /** See {@link SgdOptions.weightDecay}. */
  readonly weightDecay: number;
  #velocity: (Tensor | undefined)[] = [];

  /** An optimizer of `params`; throws a TypeError for a tensor that is not a parameter. */
  constructor(params: Iterable<Tensor> | ParameterSource, options: SgdOptions) {
    super(params, "an SGD optimizer");
    if (options === null || typeof options !== "object") {
      throw new TypeError(`Cannot make an SGD optimizer with options ${options}: give { lr }`);
    }
    this.lr = checkRange(options.lr, "lr", 0);
    this.momentum = checkRange(options.momentum ?? 0, "momentum", 0, 1);
    this.weightDecay = checkRange(options.weightDecay ?? 0, "weightDecay", 0);
  }

  /** The velocities. */
  protected override state(): (Tensor | undefined)[] {
    return this.#velocity.splice(0);
  }

  /** `p -= lr * (momentum-averaged, decayed) grad`. */
  protected update(p: Tensor, grad: Tensor, i: number): void {
    let g = grad;
    if (this.weightDecay > 0) {
      const decay = p.mul(this.weightDecay);
      g = grad.add(decay);
      decay.dispose();
    }
    if (this.momentum > 0) {
      const v = this.#velocity[i];
      if (v === undefined) this.#velocity[i] = g === grad ? g.detach() : g;
      else {
        // In place (a new version of the same tensor), so a captured step can replay it.
        const scaled = v.mul(this.momentum);
        const next = scaled.add(g);
        v.copy_(next);
        for (const t of [scaled, next]) t.dispose();
        if (g !== grad) g.dispose();
      }
      g = this.#velocity[i]!;
    }
    p.sub_(g, { alpha: this.lr });
    if (g !== grad && g !== this.#velocity[i]) g.dispose();
  }
}
