/**
 * Adam (Kingma and Ba, 2015), as PyTorch's `torch.optim.Adam`.
 *
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";
import { fromArray } from "../tensor/creation.ts";
import { checkRange, Optimizer, type ParameterSource } from "./optimizer.ts";

/**
 * Options of {@link Adam}.
 *
 * @example
 * ```ts
 * import { Adam, zeros } from "../../mod.ts";
 * const opt = new Adam([zeros([2], { requiresGrad: true })], { lr: 0.01, betas: [0.8, 0.99] });
 * console.log(opt.betas); // [0.8, 0.99]
 * ```
 */
export interface AdamOptions {
  /**
   * The learning rate.
   * @default {0.001}
   */
  lr?: number;
  /**
   * Decay rates of the running means of the gradient and of its square.
   * @default {[0.9, 0.999]}
   */
  betas?: readonly [number, number];
  /**
   * Added to the denominator for numerical stability.
   * @default {1e-8}
   */
  eps?: number;
}

/**
 * `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`. Throws a RangeError for
 * options out of range.
 *
 * @example
 * ```ts
 * import { Adam, fromArray } from "../../mod.ts";
 * const w = fromArray([1, -1], [2], { requiresGrad: true });
 * const opt = new Adam([w], { lr: 0.1 });
 * w.mul(w).sum().backward();
 * opt.step(); // the first step moves each weight by lr against its gradient's sign
 * console.log(await w.data()); // Float32Array [0.9, -0.9]
 * ```
 */
export class Adam extends Optimizer {
  /** The learning rate; may be changed between steps. */
  lr: number;
  /** See {@link AdamOptions.betas}. */
  readonly betas: readonly [number, number];
  /** See {@link AdamOptions.eps}. */
  readonly eps: number;
  #m: (Tensor | undefined)[] = [];
  #v: (Tensor | undefined)[] = [];
  /** beta1^t and beta2^t per parameter: the bias corrections, on the parameter's device. */
  #b1t: (Tensor | undefined)[] = [];
  #b2t: (Tensor | undefined)[] = [];

  /** An optimizer of `params`; throws a TypeError for a tensor that is not a parameter. */
  constructor(params: Iterable<Tensor> | ParameterSource, options: AdamOptions = {}) {
    super(params, "an Adam optimizer");
    this.lr = checkRange(options.lr ?? 1e-3, "lr", 0);
    const [b1, b2] = options.betas ?? [0.9, 0.999];
    this.betas = [checkRange(b1, "betas[0]", 0, 0.999999), checkRange(b2, "betas[1]", 0, 0.999999)];
    this.eps = checkRange(options.eps ?? 1e-8, "eps", 0);
  }

  /** The running means. */
  protected override state(): (Tensor | undefined)[] {
    return [
      ...this.#m.splice(0),
      ...this.#v.splice(0),
      ...this.#b1t.splice(0),
      ...this.#b2t.splice(0),
    ];
  }

  /**
   * One Adam step of `p` with gradient `g`. The running means and the powers of the betas
   * (the bias corrections) are tensors updated in place, so a captured step replays it:
   * nothing of the step count is baked into the ops.
   */
  protected update(p: Tensor, g: Tensor, i: number): void {
    const [b1, b2] = this.betas;
    const temps: Tensor[] = [];
    const keep = <T extends Tensor>(x: T) => (temps.push(x), x);
    /** `state = state * decay + x`, in place, or `x` itself the first time. */
    const running = (state: (Tensor | undefined)[], decay: number, x: Tensor) => {
      const old = state[i];
      if (old === undefined) state[i] = x.detach();
      else old.copy_(keep(keep(old.mul(decay)).add(x)));
      return state[i]!;
    };
    const m = running(this.#m, b1, keep(g.mul(1 - b1)));
    const v = running(this.#v, b2, keep(keep(g.mul(g)).mul(1 - b2)));
    // b^t, one element on p's device: b the first time, then times b each step.
    const power = (pows: (Tensor | undefined)[], b: number) => {
      const old = pows[i];
      if (old === undefined) pows[i] = fromArray([b], [1], { device: p.device });
      else old.copy_(keep(old.mul(b)));
      return pows[i]!;
    };
    const c1 = keep(keep(power(this.#b1t, b1).neg()).add(1)); // 1 - b1^t
    const c2 = keep(keep(power(this.#b2t, b2).neg()).add(1)); // 1 - b2^t
    const denom = keep(keep(keep(v.sqrt()).div(keep(c2.sqrt()))).add(this.eps));
    const stepDir = keep(keep(m.div(c1)).div(denom));
    p.sub_(stepDir, { alpha: this.lr });
    for (const x of temps) x.dispose();
  }
}
