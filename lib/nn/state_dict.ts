/**
 * A module's state as a dictionary of named tensors (PyTorch's `state_dict()` and
 * `load_state_dict()`): what {@link saveSafetensors} writes and {@link loadSafetensors} reads.
 *
 * @module
 */
import { noGrad } from "../autograd/tape.ts";
import { Tensor } from "../tensor/tensor.ts";

/**
 * Named tensors, as `stateDict()` gives them (a Map) or as a plain object.
 *
 * @example
 * ```ts
 * import { Linear, type StateDictLike } from "../../mod.ts";
 * const fc = new Linear(2, 1, { seed: 1 });
 * const dict: StateDictLike = { weight: fc.weight, bias: fc.bias! };
 * console.log(Object.keys(dict)); // ["weight", "bias"]
 * ```
 */
export type StateDictLike = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

/**
 * Options of `Module.loadStateDict`.
 *
 * @example
 * ```ts
 * import { fromArray, Linear } from "../../mod.ts";
 * const fc = new Linear(2, 1, { seed: 1 });
 * const r = fc.loadStateDict({ weight: fromArray([1, 2], [1, 2]) }, { strict: false });
 * console.log(r.missingKeys); // ["bias"]
 * ```
 */
export interface LoadStateDictOptions {
  /**
   * Require the keys to be exactly the module's parameter names: a missing or an unexpected
   * key is an error. Shapes must match either way.
   * @default {true}
   */
  strict?: boolean;
}

/**
 * What `Module.loadStateDict` did not match (PyTorch's `_IncompatibleKeys`): both empty
 * when it is strict.
 *
 * @example
 * ```ts
 * import { fromArray, Linear, type LoadStateDictResult } from "../../mod.ts";
 * const fc = new Linear(1, 1, { bias: false, seed: 1 });
 * const r: LoadStateDictResult = fc.loadStateDict({ weight: fromArray([3], [1, 1]) });
 * console.log(r); // { missingKeys: [], unexpectedKeys: [] }
 * ```
 */
export interface LoadStateDictResult {
  /** Parameter names that the dictionary does not hold. */
  missingKeys: string[];
  /** Keys of the dictionary that name no parameter. */
  unexpectedKeys: string[];
}

/** What stateDict and loadStateDict need of a module. */
interface Named {
  namedParameters(): [string, Tensor][];
}

const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;

/** The module's parameters by dotted name: the parameter tensors themselves, not copies. */
export function stateDictOf(m: Named): Map<string, Tensor> {
  return new Map(m.namedParameters());
}

function entriesOf(dict: StateDictLike): [string, Tensor][] {
  if (dict instanceof Map) return [...dict.entries()];
  if (typeof dict !== "object" || dict === null || Array.isArray(dict)) {
    throw new TypeError(
      `Cannot load the state dict ${String(dict)}: it must be a Map or an object of tensors`,
    );
  }
  return Object.entries(dict);
}

const list = (names: string[]) => names.map((n) => `"${n}"`).join(", ");

/**
 * Copies the dictionary's values into the module's parameters in place (each keeps its
 * identity, device and requiresGrad). Checks everything before it copies anything.
 */
export function loadStateDictInto(
  m: Named,
  dict: StateDictLike,
  options: LoadStateDictOptions = {},
): LoadStateDictResult {
  const strict = options.strict ?? true;
  if (typeof strict !== "boolean") {
    throw new TypeError(`Cannot load a state dict with strict ${strict}: it must be a boolean`);
  }
  const given = new Map(entriesOf(dict));
  const params = m.namedParameters();
  const names = new Set(params.map(([n]) => n));
  const missingKeys = params.map(([n]) => n).filter((n) => !given.has(n));
  const unexpectedKeys = [...given.keys()].filter((k) => !names.has(k));
  if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
    const why = [
      missingKeys.length > 0 ? `missing keys ${list(missingKeys)}` : "",
      unexpectedKeys.length > 0 ? `unexpected keys ${list(unexpectedKeys)}` : "",
    ].filter((s) => s !== "").join("; ");
    throw new TypeError(
      `Cannot load the state dict into ${m.constructor.name}: ${why} (pass { strict: false } ` +
        `to load the keys that match)`,
    );
  }
  const pairs: [Tensor, Tensor][] = [];
  const mismatched: string[] = [];
  for (const [name, p] of params) {
    if (!given.has(name)) continue;
    const v = given.get(name);
    if (!(v instanceof Tensor)) {
      throw new TypeError(
        `Cannot load "${name}" from ${String(v)}: the state dict's values must be Tensors`,
      );
    }
    if (v.disposed) throw new TypeError(`Cannot load "${name}" from ${v}: it was disposed`);
    if (v.shape.length !== p.shape.length || v.shape.some((n, i) => n !== p.shape[i])) {
      mismatched.push(`"${name}" is ${fmt(v.shape)} where the parameter is ${fmt(p.shape)}`);
    }
    pairs.push([p, v]);
  }
  if (mismatched.length > 0) {
    throw new RangeError(
      `Cannot load the state dict into ${m.constructor.name}: shapes differ, ${
        mismatched.join("; ")
      }`,
    );
  }
  noGrad(() => {
    for (const [p, v] of pairs) p.copy_(v);
  });
  return { missingKeys, unexpectedKeys };
}
