/**
 * Class-index checks for labels and indices (`crossEntropy`, `gather`, ...): facts noted
 * where values are made, checks before an op is queued or queued beside it.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { engine, type TensorRecord } from "../engine/engine.ts";
import type { OpRequest } from "../engine/records.ts";
import { isHostVisible } from "../devices/capabilities.ts";
import { assertLabels, findBadLabel } from "../kernels/training.ts";
import { assertIndices } from "../kernels/shape.ts";
import type { Tensor } from "./tensor.ts";
import { call, fmt, sizeOf } from "./checks.ts";
import { cpu } from "../devices/device.ts";

/** What is known of a tensor's values as class indices: checked once, where they were made. */
interface IndexFacts {
  /** The tensor whose values these facts describe (slices and copies of it share them). */
  origin: TensorRecord;
  /** The first value that is not a whole number >= 0, and its row. */
  bad?: { row: number; value: number };
  /** Otherwise the first largest value, and its row. */
  max?: { row: number; value: number };
}

const indexFacts = new WeakMap<TensorRecord, IndexFacts>();

/** Labels up to this length are checked as class indices when they are made (cheap). */
const CHECK_AT_CREATION = 4096;

function factsOf(values: ArrayLike<number>, origin: TensorRecord): IndexFacts {
  const max = { row: 0, value: -1 };
  for (let r = 0; r < values.length; r++) {
    const v = values[r];
    if (!(Number.isInteger(v) && v >= 0)) return { origin, bad: { row: r, value: v } };
    if (v > max.value) [max.row, max.value] = [r, v];
  }
  return { origin, max };
}

/** A slice or copy of `from` is known to hold class indices if `from` is (conservatively). */
export function inheritFacts(from: TensorRecord, to: TensorRecord): void {
  const f = indexFacts.get(from);
  if (f) indexFacts.set(to, f);
}

/**
 * Notes, for `crossEntropy`, whether the values `t` was made from are class indices, so
 * that labels uploaded to a device need no check there (creation functions call it).
 */
export function noteRecordValues(rec: TensorRecord, values: ArrayLike<number>): void {
  rememberValues(rec, values);
  if (values.length <= CHECK_AT_CREATION) indexFacts.set(rec, factsOf(values, rec));
}

/** Values known without waiting, of small device tensors (for printing). */
const knownValues = new WeakMap<TensorRecord, Float32Array>();
/** Device tensors up to this size remember their values once read or uploaded. */
const REMEMBER_UP_TO = 1024;

export function rememberValues(rec: TensorRecord, values: ArrayLike<number>): void {
  if (!isHostVisible(rec.device) && values.length <= REMEMBER_UP_TO) {
    knownValues.set(rec, Float32Array.from(values));
  }
}

/** The values of `rec` if they are known now: a computed host tensor, or remembered. */
export function valuesNow(rec: TensorRecord): Float32Array | undefined {
  if (rec.disposed || rec.freed) return undefined;
  if (isHostVisible(rec.device)) {
    return rec.state === "done" ? engine().hostValues(rec) : undefined;
  }
  return knownValues.get(rec);
}

/** Throws a RangeError naming the first label out of [0, cols), if any. */
function verifyFacts(facts: IndexFacts, cols: number, what: string): void {
  const bad = facts.bad ?? (facts.max!.value >= cols ? facts.max : undefined);
  if (bad) {
    throw new RangeError(
      `Cannot take the cross-entropy of ${what}: label ${bad.value} at row ${bad.row} is not ` +
        `a class index in [0, ${cols})`,
    );
  }
}

/**
 * Checks class indices before the op is queued when they are known (noted at creation, or
 * host values already computed): returns undefined or throws naming the label. Otherwise
 * queues a check that fails, naming the first bad label, and returns a record on `device`
 * that is made only when the check passed: the loss depends on it, so reading the loss
 * fails too.
 */
export function checkLabels(
  labels: Tensor,
  rec: TensorRecord,
  cols: number,
  device: Device,
): TensorRecord | undefined {
  const e = engine();
  const op = "the cross-entropy";
  let facts = indexFacts.get(rec);
  if (!facts && isHostVisible(rec.device) && rec.state === "done") {
    facts = factsOf(e.hostValues(rec), rec);
  }
  if (facts) {
    verifyFacts(facts, cols, String(labels));
    // A replay checks the labels it is given, where these came from, before it runs.
    const origin = facts.origin;
    e.capture?.check((resolve) => {
      const given = resolve(origin);
      if (!given) return;
      const known = indexFacts.get(given) ??
        (isHostVisible(given.device) && given.state === "done"
          ? factsOf(e.hostValues(given), given)
          : undefined);
      if (!known) {
        throw new TypeError(
          `Cannot replay a step with labels whose values are not known yet: give labels made ` +
            `by fromArray, or host values already computed`,
        );
      }
      verifyFacts(known, cols, `the labels Tensor${fmt(given.shape)}`);
    });
    return undefined;
  }
  // Each step consumes the previous step's temporary (never the labels themselves).
  const step = (req: Omit<OpRequest, "name" | "outputShapes">, temporary?: TensorRecord) => {
    const [out] = e.submit({ name: "checkLabels", outputShapes: [[2]], ...req });
    if (temporary) e.dispose(temporary);
    return out;
  };
  const found = step({
    kind: "run",
    device: rec.device,
    ...call(findBadLabel, { rows: rec.shape[0], cols }),
    inputs: [rec],
  });
  const onHost = !isHostVisible(rec.device)
    ? step({ kind: "read", device: rec.device, inputs: [found], internal: true }, found)
    : found;
  const checked = step({
    kind: "run",
    device: cpu(),
    ...call(assertLabels, { cols, op }),
    inputs: [onHost],
  }, onHost);
  return isHostVisible(device)
    ? checked
    : step({ kind: "write", device, inputs: [checked], internal: true }, checked);
}

/** Throws a RangeError naming the first index value outside [0, bound), if any. */
function verifyIndices(facts: IndexFacts, bound: number, what: string): void {
  const bad = facts.bad ?? (facts.max!.value >= bound ? facts.max : undefined);
  if (bad) {
    throw new RangeError(
      `Cannot ${what}: index ${bad.value} at position ${bad.row} is not a whole number in ` +
        `[0, ${bound})`,
    );
  }
}

/**
 * Checks index values as {@link checkLabels} checks labels: before the op is queued when
 * they are known, throwing a RangeError naming the first bad one; otherwise it queues a
 * check and returns a record on the index's device for the op to take as one more input,
 * so that a bad index fails the op, named by `what`, at the next synchronisation.
 */
export function checkIndices(
  rec: TensorRecord,
  bound: number,
  what: string,
): TensorRecord | undefined {
  const e = engine();
  const known = (r: TensorRecord) =>
    indexFacts.get(r) ??
      (isHostVisible(r.device) && r.state === "done" ? factsOf(e.hostValues(r), r) : undefined);
  const facts = known(rec);
  if (facts) {
    verifyIndices(facts, bound, what);
    const origin = facts.origin;
    e.capture?.check((resolve) => {
      const given = resolve(origin);
      if (!given) return;
      const f = known(given);
      if (!f) {
        throw new TypeError(
          `Cannot replay a step that must ${what} with an index whose values are not known ` +
            `yet: give an index made by fromArray, or host values already computed`,
        );
      }
      verifyIndices(f, bound, what);
    });
    return undefined;
  }
  const step = (req: Omit<OpRequest, "name" | "outputShapes">, temporary?: TensorRecord) => {
    const [out] = e.submit({ name: "checkIndices", outputShapes: [[2]], ...req });
    if (temporary) e.dispose(temporary);
    return out;
  };
  const rows = sizeOf(rec.shape);
  const found = step({
    kind: "run",
    device: rec.device,
    ...call(findBadLabel, { rows, cols: bound }),
    inputs: [rec],
  });
  const onHost = !isHostVisible(rec.device)
    ? step({ kind: "read", device: rec.device, inputs: [found], internal: true }, found)
    : found;
  const checked = step({
    kind: "run",
    device: cpu(),
    ...call(assertIndices, { bound, what }),
    inputs: [onHost],
  }, onHost);
  return isHostVisible(rec.device)
    ? checked
    : step({ kind: "write", device: rec.device, inputs: [checked], internal: true }, checked);
}
