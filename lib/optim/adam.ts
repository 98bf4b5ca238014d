/**
 * Adam (Kingma and Ba, 2015), as PyTorch's `torch.optim.Adam`.
 *
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";
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
  #t: number[] = [];

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
    this.#t = [];
    return [...this.#m.splice(0), ...this.#v.splice(0)];
  }

  /** One Adam step of `p` with gradient `g`. */
  protected update(p: Tensor, g: Tensor, i: number): void {
    const [b1, b2] = this.betas;
    const t = (this.#t[i] ?? 0) + 1;
    this.#t[i] = t;
    const temps: Tensor[] = [];
    const keep = <T extends Tensor>(x: T) => (temps.push(x), x);
    const gs = keep(g.mul(1 - b1));
    const m = this.#m[i] ? keep(this.#m[i]!.mul(b1)).add(gs) : gs.detach();
    const g2 = keep(keep(g.mul(g)).mul(1 - b2));
    const v = this.#v[i] ? keep(this.#v[i]!.mul(b2)).add(g2) : g2.detach();
    this.#m[i]?.dispose();
    this.#v[i]?.dispose();
    this.#m[i] = m;
    this.#v[i] = v;
    const denom = keep(keep(keep(v.sqrt()).mul(1 / Math.sqrt(1 - b2 ** t))).add(this.eps));
    const stepDir = keep(m.div(denom));
    p.sub_(stepDir, { alpha: this.lr / (1 - b1 ** t) });
    for (const x of temps) x.dispose();
  }
}
