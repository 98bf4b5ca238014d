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

/** How one kind of class-index check reports: labels of `crossEntropy`, indices of `gather`. */
interface IndexCheck {
  /** The queued check's op name. */
  name: string;
  /** The RangeError for a bad value; `given` is the replay's tensor when a replay checks. */
  error(bad: { row: number; value: number }, given?: TensorRecord): RangeError;
  /** What a replay says when it is given values not known yet. */
  unknown: string;
  /** The host-only kernel that fails the queued check, and its parameters. */
  assert: { kernel: string; params: OpRequest["params"] };
}

/** The facts of `r`'s values: noted at creation, or read from computed host values. */
function knownFacts(r: TensorRecord): IndexFacts | undefined {
  return indexFacts.get(r) ??
    (isHostVisible(r.device) && r.state === "done"
      ? factsOf(engine().hostValues(r), r)
      : undefined);
}

/** Throws the check's RangeError for the first value outside [0, bound), if any. */
function verify(facts: IndexFacts, bound: number, c: IndexCheck, given?: TensorRecord): void {
  const bad = facts.bad ?? (facts.max!.value >= bound ? facts.max : undefined);
  if (bad) throw c.error(bad, given);
}

/**
 * Checks that `rec` holds whole numbers in [0, bound): before anything is queued when its
 * values are known (and again before each replay of a captured step, for the values it is
 * given), returning undefined or throwing. Otherwise it queues a check (a kernel that finds
 * the first bad value, a host kernel that throws naming it) and returns a record on `device`
 * made only when the check passed, for the op to take as one more input: a bad value then
 * fails the op at the next synchronisation instead of giving a wrong result.
 */
function checkIndexValues(
  rec: TensorRecord,
  bound: number,
  device: Device,
  c: IndexCheck,
): TensorRecord | undefined {
  const e = engine();
  const facts = knownFacts(rec);
  if (facts) {
    verify(facts, bound, c);
    const origin = facts.origin;
    e.capture?.check((resolve) => {
      const given = resolve(origin);
      if (!given) return;
      const f = knownFacts(given);
      if (!f) throw new TypeError(c.unknown);
      verify(f, bound, c, given);
    });
    return undefined;
  }
  // Each step consumes the previous step's temporary (never the checked tensor itself).
  const step = (req: Omit<OpRequest, "name" | "outputShapes">, temporary?: TensorRecord) => {
    const [out] = e.submit({ name: c.name, outputShapes: [[2]], ...req });
    if (temporary) e.dispose(temporary);
    return out;
  };
  const found = step({
    kind: "run",
    device: rec.device,
    ...call(findBadLabel, { rows: sizeOf(rec.shape), cols: bound }),
    inputs: [rec],
  });
  const onHost = !isHostVisible(rec.device)
    ? step({ kind: "read", device: rec.device, inputs: [found], internal: true }, found)
    : found;
  const checked = step({ kind: "run", device: cpu(), ...c.assert, inputs: [onHost] }, onHost);
  return isHostVisible(device)
    ? checked
    : step({ kind: "write", device, inputs: [checked], internal: true }, checked);
}

/**
 * Checks the class indices `labels` (`rec`) of a cross-entropy over `cols` classes, as
 * {@link checkIndexValues} does; the loss on `device` takes the returned record, if any.
 */
export function checkLabels(
  labels: Tensor,
  rec: TensorRecord,
  cols: number,
  device: Device,
): TensorRecord | undefined {
  return checkIndexValues(rec, cols, device, {
    name: "checkLabels",
    error: (bad, given) =>
      new RangeError(
        `Cannot take the cross-entropy of ${
          given ? `the labels Tensor${fmt(given.shape)}` : String(labels)
        }: label ${bad.value} at row ${bad.row} is not a class index in [0, ${cols})`,
      ),
    unknown: `Cannot replay a step with labels whose values are not known yet: give labels ` +
      `made by fromArray, or host values already computed`,
    assert: call(assertLabels, { cols, op: "the cross-entropy" }),
  });
}

/**
 * Checks index values as {@link checkLabels} checks labels (see {@link checkIndexValues});
 * a bad index fails the op, named by `what`. The returned record lives on the index's device.
 */
export function checkIndices(
  rec: TensorRecord,
  bound: number,
  what: string,
): TensorRecord | undefined {
  return checkIndexValues(rec, bound, rec.device, {
    name: "checkIndices",
    error: (bad) =>
      new RangeError(
        `Cannot ${what}: index ${bad.value} at position ${bad.row} is not a whole number in ` +
          `[0, ${bound})`,
      ),
    unknown: `Cannot replay a step that must ${what} with an index whose values are not known ` +
      `yet: give an index made by fromArray, or host values already computed`,
    assert: call(assertIndices, { bound, what }),
  });
}
