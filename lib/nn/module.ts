/**
 * Layers with PyTorch's names: a {@link Module} holds parameters (tensors that require
 * grad) and child modules; {@link Linear}, {@link ReLU} and {@link Sequential} are the
 * building blocks of the chapter's MLP.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { forwardScope, noGrad } from "../autograd/tape.ts";
import { rand } from "../tensor/creation.ts";
import { moveInPlace, Tensor } from "../tensor/tensor.ts";
import {
  loadStateDictInto,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type StateDictLike,
  stateDictOf,
} from "./state_dict.ts";

/**
 * A layer or a model. Subclasses set parameters (tensors with `requiresGrad`) and child
 * modules as fields, and implement `forward`; `parameters()`, `to()` and DataParallel's
 * replicas find them by walking the fields in the order they were set.
 *
 * @example
 * ```ts
 * import { fromArray, Linear, Module, type Tensor } from "../../mod.ts";
 * class Net extends Module {
 *   fc = new Linear(2, 1, { seed: 1 });
 *   forward(x: Tensor): Tensor {
 *     return this.fc.forward(x).tanh();
 *   }
 * }
 * const net = new Net();
 * console.log(net.parameters().length, net.forward(fromArray([1, 2], [1, 2])).shape); // 2 [1, 1]
 * ```
 */
export abstract class Module {
  /**
   * Training mode (true, the default) or evaluation mode, as PyTorch's `training`: layers
   * such as Dropout act differently. Set it with {@link Module.train} or {@link Module.eval},
   * which set it on the children too.
   */
  training = true;

  /**
   * The module's output for `input`. Tensors made inside it, other than the result and
   * tensors stored in the module's fields, are freed once backward no longer needs them:
   * return (or store) what you want to keep.
   */
  abstract forward(input: Tensor): Tensor;

  /** Wraps the subclass's `forward` in a scope that frees its intermediate results. */
  constructor() {
    scopeForward(this);
  }

  /** Every parameter, this module's own fields first, then the children's, in field order. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Every parameter with its dotted path (`"layers.0.weight"`), as PyTorch names them. */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    walk(this, "", (name, p) => out.push([name, p]));
    return out;
  }

  /**
   * Sets training mode (`mode` true) or evaluation mode on this module and every child module
   * in its fields, as PyTorch's `train(mode)`. Returns the module. Throws a TypeError for a
   * mode that is not a boolean.
   *
   * @example
   * ```ts
   * import { Dropout, Linear, Sequential } from "../../mod.ts";
   * const net = new Sequential(new Linear(2, 2, { seed: 1 }), new Dropout(0.5));
   * console.log(net.train(false).layers[1].training, net.train().layers[1].training); // false true
   * ```
   */
  train(mode = true): this {
    if (typeof mode !== "boolean") {
      throw new TypeError(`Cannot set training mode ${mode}: it must be a boolean`);
    }
    setTraining(this, mode);
    return this;
  }

  /** Evaluation mode: `train(false)`, as PyTorch's `eval()`. Returns the module. */
  eval(): this {
    return this.train(false);
  }

  /**
   * The module's parameters by dotted name (`"layers.0.weight"`, the names of
   * {@link Module.namedParameters}), in field order, as PyTorch's `state_dict()`: the
   * parameter tensors themselves, whose values follow training (`detach()` one to keep a
   * snapshot).
   *
   * @example
   * ```ts
   * import { Linear } from "../../mod.ts";
   * const fc = new Linear(3, 2, { seed: 1 });
   * console.log([...fc.stateDict().keys()], fc.stateDict().get("weight") === fc.weight); // ["weight", "bias"] true
   * ```
   */
  stateDict(): Map<string, Tensor> {
    return stateDictOf(this);
  }

  /**
   * Copies the values of `dict` into the parameters of the same names, in place (each
   * parameter keeps its identity, device and requiresGrad; values on another device are
   * copied over), as PyTorch's `load_state_dict`. Checks everything before changing anything:
   * a TypeError naming missing and unexpected keys (unless `strict` is false; the result then
   * lists them), a RangeError naming the keys whose shapes differ.
   *
   * @example
   * ```ts
   * import { Linear } from "../../mod.ts";
   * const a = new Linear(2, 2, { seed: 1 });
   * const b = new Linear(2, 2, { seed: 2 });
   * const w = b.weight;
   * b.loadStateDict(a.stateDict());
   * console.log(b.weight === w, (await b.weight.data())[0] === (await a.weight.data())[0]); // true true
   * ```
   */
  loadStateDict(dict: StateDictLike, options: LoadStateDictOptions = {}): LoadStateDictResult {
    return loadStateDictInto(this, dict, options);
  }

  /**
   * Moves every parameter (and its gradient) to `device` in place, like PyTorch's
   * `module.to()`: the parameters keep their identity, so an optimizer made before the move
   * goes on updating them. Returns the module. Throws like {@link Tensor.to}.
   *
   * @example
   * ```ts
   * import { cpu, Linear, SGD } from "../../mod.ts";
   * const net = new Linear(2, 1, { seed: 1 });
   * const before = net.weight;
   * const opt = new SGD(net.parameters(), { lr: 0.1 });
   * net.to(cpu()); // or a device from tryAllGpus()
   * console.log(net.weight === before, opt.params[0] === net.weight); // true true
   * ```
   */
  to(device: Device): this {
    for (const p of this.parameters()) moveInPlace(p, device);
    return this;
  }
}

/**
 * Makes `m.forward` (the prototype's) run in a {@link forwardScope}; an own non-enumerable
 * property, so that field walks do not see it.
 */
function scopeForward(m: Module): void {
  const proto = Object.getPrototypeOf(m) as { forward: (x: Tensor) => Tensor };
  Object.defineProperty(m, "forward", {
    configurable: true,
    writable: true,
    enumerable: false,
    value: (x: Tensor) => forwardScope(() => proto.forward.call(m, x), () => tensorsIn(m)),
  });
}

/** Sets `training` on `value` and on the modules in its fields, arrays included. */
function setTraining(value: unknown, mode: boolean): void {
  if (value instanceof Module) {
    value.training = mode;
    for (const v of Object.values(value)) setTraining(v, mode);
  } else if (Array.isArray(value)) { for (const v of value) setTraining(v, mode); }
}

/** The tensors stored in the fields of `value` and of its children. */
function tensorsIn(value: unknown, out = new Set<Tensor>()): Set<Tensor> {
  if (value instanceof Tensor) out.add(value);
  else if (value instanceof Module) { for (const v of Object.values(value)) tensorsIn(v, out); }
  else if (Array.isArray(value)) { for (const v of value) tensorsIn(v, out); }
  return out;
}

type Visit = (name: string, p: Tensor) => void;

function isParameter(v: unknown): v is Tensor {
  return v instanceof Tensor && v.requiresGrad && v.gradFn === undefined;
}

function walk(value: unknown, prefix: string, visit: Visit): void {
  if (isParameter(value)) return visit(prefix, value);
  const entries = value instanceof Module
    ? Object.entries(value)
    : Array.isArray(value)
    ? value.map((v, i) => [String(i), v] as const)
    : [];
  for (const [key, v] of entries) {
    if (v instanceof Module || Array.isArray(v) || isParameter(v)) {
      walk(v, prefix ? `${prefix}.${key}` : key, visit);
    }
  }
}

/**
 * A copy of `m` with copies of its parameters on `device` (the structure is cloned field
 * by field; other fields are shared). What DataParallel keeps on each device.
 *
 * @example
 * ```ts
 * import { cpu, Linear, replicate } from "../../mod.ts";
 * const a = new Linear(2, 2, { seed: 1 });
 * const b = replicate(a, cpu());
 * console.log(b !== a, b.weight !== a.weight, b.weight.requiresGrad); // true true true
 * ```
 */
export function replicate<M extends Module>(m: M, device: Device): M {
  return noGrad(() => cloneModule(m, device));
}

function cloneModule<M extends Module>(m: M, device: Device): M {
  const copy = Object.create(Object.getPrototypeOf(m)) as M;
  for (const [key, v] of Object.entries(m)) {
    (copy as Record<string, unknown>)[key] = cloneValue(v, device);
  }
  scopeForward(copy);
  return copy;
}

function cloneValue(v: unknown, device: Device): unknown {
  if (isParameter(v)) {
    const c = v.device === device ? v.detach() : v.to(device, { nonBlocking: true });
    c.requiresGrad = true;
    return c;
  }
  if (v instanceof Module) return cloneModule(v, device);
  if (Array.isArray(v)) return v.map((x) => cloneValue(x, device));
  return v;
}

/**
 * Options of {@link Linear}.
 *
 * @example
 * ```ts
 * import { Linear } from "../../mod.ts";
 * console.log(new Linear(3, 2, { bias: false, seed: 1 }).parameters().length); // 1
 * ```
 */
export interface LinearOptions {
  /**
   * Where the parameters live.
   * @default {cpu()}
   */
  device?: Device;
  /**
   * Add a learnt bias.
   * @default {true}
   */
  bias?: boolean;
  /**
   * Seed of the initial values (the same seed gives the same values on every device).
   * @default {a fresh random seed}
   */
  seed?: number;
}

/**
 * `y = x W^T + b`, with `weight` stored `[outFeatures, inFeatures]` as in PyTorch and both
 * initialised uniform in ±1/sqrt(inFeatures) (PyTorch's default). Throws a RangeError for
 * sizes that are not whole numbers >= 1.
 *
 * @example
 * ```ts
 * import { fromArray, Linear } from "../../mod.ts";
 * const fc = new Linear(3, 2, { seed: 7 });
 * console.log(fc.weight.shape, fc.forward(fromArray([1, 2, 3], [1, 3])).shape); // [2, 3] [1, 2]
 * ```
 */
export class Linear extends Module {
  /** `[outFeatures, inFeatures]`. */
  weight: Tensor;
  /** `[outFeatures]`, or undefined without a bias. */
  bias: Tensor | undefined;

  /** A layer from `inFeatures` to `outFeatures` values per sample. */
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super();
    for (const [name, n] of [["inFeatures", inFeatures], ["outFeatures", outFeatures]] as const) {
      if (!Number.isInteger(n) || n < 1) {
        throw new RangeError(`Cannot make a Linear layer with ${name} ${n}: it must be >= 1`);
      }
    }
    const bound = 1 / Math.sqrt(inFeatures);
    const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
    const uniform = (shape: number[], s: number) =>
      noGrad(() => {
        const r = rand(shape, { device: options.device, seed: s >>> 0 });
        const centred = r.sub(0.5);
        const t = centred.mul(2 * bound);
        r.dispose();
        centred.dispose();
        t.requiresGrad = true;
        return t;
      });
    this.weight = uniform([outFeatures, inFeatures], seed);
    this.bias = (options.bias ?? true) ? uniform([outFeatures], seed + 1) : undefined;
  }

  /** `x W^T + b` for `x` of shape `[batch, inFeatures]`. */
  forward(x: Tensor): Tensor {
    const y = x.mm(this.weight, { transB: true });
    return this.bias ? y.add(this.bias) : y;
  }
}

/**
 * `max(x, 0)`, as a layer.
 *
 * @example
 * ```ts
 * import { fromArray, ReLU } from "../../mod.ts";
 * console.log(await new ReLU().forward(fromArray([-1, 2], [2])).data()); // Float32Array [0, 2]
 * ```
 */
export class ReLU extends Module {
  /** `max(x, 0)`. */
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

/**
 * Layers applied one after the other.
 *
 * @example
 * ```ts
 * import { fromArray, Linear, ReLU, Sequential } from "../../mod.ts";
 * const mlp = new Sequential(new Linear(4, 8, { seed: 1 }), new ReLU(), new Linear(8, 3, { seed: 2 }));
 * console.log(mlp.forward(fromArray(new Float32Array(8), [2, 4])).shape); // [2, 3]
 * console.log(mlp.namedParameters().map(([name]) => name)); // ["layers.0.weight", "layers.0.bias", ...]
 * ```
 */
export class Sequential extends Module {
  /** The layers, in order. */
  readonly layers: Module[];

  /** Chains `layers`; throws a TypeError for one that is not a Module. */
  constructor(...layers: Module[]) {
    super();
    for (const l of layers) {
      if (!(l instanceof Module)) {
        throw new TypeError(`Cannot put ${l} in a Sequential: not a Module`);
      }
    }
    this.layers = layers;
  }

  /** Each layer's output feeds the next. */
  forward(x: Tensor): Tensor {
    let y = x;
    for (const layer of this.layers) y = layer.forward(y);
    return y;
  }
}
