/**
 * The bad-input sweep of the public API, kept as a test: each call gets a clear error of the
 * right class, naming the value, and queues nothing (no op is made before the throw).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  Adam,
  capture,
  configureEngine,
  copyTo,
  cpu,
  DataParallel,
  type Device,
  fromArray,
  Linear,
  ones,
  produce,
  rand,
  ReLU,
  Sequential,
  SGD,
  type Tensor,
  tryAllGpus,
  tryGpu,
  zeros,
} from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";

type ErrorClass = typeof TypeError | typeof RangeError | typeof Error;
const any = <T>(v: unknown) => v as T;

// Operands made up front: a case's call must make nothing before it throws.
const m23 = ones([2, 3]);
const v3 = ones([3]);
const m31 = ones([3, 1]);
const v2 = ones([2]);
const v4 = ones([4]);
const m22 = ones([2, 2]);
const scalarGrad = ones([2], { requiresGrad: true }).mul(2);
const labels03 = fromArray([0, 3], [2]);
const labels0 = fromArray([0], [1]);
const labels01 = fromArray([0], [1]);
const row12 = ones([1, 2]);
const gone = ones([2]);
gone.dispose();
const net = new Linear(2, 2);
const dp2 = new DataParallel(new Linear(2, 2), [cpu(), cpu()]);

/** [what, call, error class, what the message must say]. */
const CASES: [string, () => unknown, ErrorClass, RegExp][] = [
  ["fromArray of BigInts", () => fromArray(any([1n, 2n]), [2]), TypeError, /BigInts.*float32/],
  [
    "fromArray of a BigInt64Array",
    () => fromArray(any(new BigInt64Array(2)), [2]),
    TypeError,
    /BigInt64Array/,
  ],
  [
    "fromArray of a string element",
    () => fromArray(any([1, "2"]), [2]),
    TypeError,
    /element 1, "2" \(string\)/,
  ],
  [
    "fromArray of too few values",
    () => fromArray([1, 2, 3], [2, 2]),
    RangeError,
    /from 3 values: it needs 4/,
  ],
  [
    "fromArray of ragged nested arrays",
    () => fromArray(any([[1, 2], [3]]), [2, 2]),
    RangeError,
    /data\[1\] has 1 entries where 2 belong/,
  ],
  [
    "fromArray of nothing",
    () => fromArray(any(undefined), [2]),
    RangeError,
    /from undefined values/,
  ],
  ["a null shape", () => zeros(any(null)), TypeError, /shape null: the shape must be an array/],
  ["a string shape", () => ones(any("3")), TypeError, /shape "3"/],
  ["a NaN size", () => zeros([NaN]), RangeError, /shape \[NaN\]: sizes must be whole numbers >= 1/],
  ["a zero size", () => zeros([2, 0]), RangeError, /shape \[2, 0\]/],
  ["a fractional size", () => rand([1.5]), RangeError, /shape \[1.5\]/],
  ["a negative seed", () => rand([2], { seed: -1 }), RangeError, /seed -1/],
  ["null options", () => zeros([2], any(null)), TypeError, /options null/],
  [
    "a string device",
    () => zeros([2], { device: any("gpu:0") }),
    TypeError,
    /on "gpu:0": it is not a device/,
  ],
  [
    "an object that is not a device",
    () => zeros([2], { device: any({ name: "gpu:9" }) }),
    TypeError,
    /on gpu:9: it is not a device/,
  ],
  [
    "a non-boolean requiresGrad",
    () => zeros([2], { requiresGrad: any(1) }),
    TypeError,
    /requiresGrad 1/,
  ],
  [
    "mm of misaligned shapes",
    () => m23.mm(m23),
    RangeError,
    /\[2, 3\] and \[2, 3\] do not align: inner sizes are 3 and 2/,
  ],
  ["mm of a 1-D tensor", () => v3.mm(m31), RangeError, /mm needs two 2-D tensors/],
  [
    "add of shapes that do not broadcast",
    () => m23.add(v4),
    RangeError,
    /\[2, 3\] and \[4\]: they do not broadcast/,
  ],
  [
    "add of a string",
    () => v2.add(any("1")),
    TypeError,
    /and "1": the operand is not a Tensor/,
  ],
  ["add of NaN as a scalar", () => v2.add(NaN), RangeError, /the scalar must be finite/],
  ["div by the number 0", () => v2.div(0), RangeError, /by the number 0/],
  [
    "sum along an axis it lacks",
    () => m22.sum(2),
    RangeError,
    /along axis 2: axis must be a whole number in \[-2, 1\]/,
  ],
  ["sum along a string axis", () => v2.sum(any("0")), RangeError, /along axis "0"/],
  [
    "reshape to the wrong size",
    () => m23.reshape([4, 2]),
    RangeError,
    /\(6 elements\) to \[4, 2\]/,
  ],
  ["reshape to null", () => v2.reshape(any(null)), TypeError, /the shape must be an array/],
  ["reshape with two -1", () => v4.reshape([-1, -1]), RangeError, /at most one -1/],
  [
    "narrow past the end",
    () => v3.narrow(0, 2, 2),
    RangeError,
    /the range must lie in \[0, 3\)/,
  ],
  [
    "crossEntropy with a bad label",
    () => m23.crossEntropy(labels03),
    RangeError,
    /label 3 at row 1 is not a class index in \[0, 3\)/,
  ],
  [
    "crossEntropy with labels of another length",
    () => m23.crossEntropy(labels0),
    RangeError,
    /labels of shape \[1\]/,
  ],
  [
    "an op on a disposed tensor",
    () => gone.add(1),
    TypeError,
    /it was disposed/,
  ],
  [
    "to() of something that is not a device",
    () => v2.to(any("cpu")),
    TypeError,
    /on "cpu": it is not a device/,
  ],
  [
    "backward of a non-scalar",
    () => scalarGrad.backward(),
    Error,
    /scalar|shape/,
  ],
  [
    "requiresGrad set to a string",
    () => {
      v2.requiresGrad = any("yes");
    },
    TypeError,
    /to "yes": it must be a boolean/,
  ],
  ["Linear of 0 inputs", () => new Linear(0, 2), RangeError, /inFeatures 0/],
  ["Linear of NaN outputs", () => new Linear(2, NaN), RangeError, /NaN/],
  ["an optimizer of a number", () => new Adam(any(5)), TypeError, /from 5: pass the parameters/],
  [
    "an optimizer of no parameters",
    () => new SGD([], { lr: 0.1 }),
    RangeError,
    /without parameters/,
  ],
  [
    "an optimizer of a tensor that is not a parameter",
    () => new SGD([v2], { lr: 0.1 }),
    TypeError,
    /leaf tensors with requiresGrad/,
  ],
  [
    "SGD without options",
    () => new SGD(net, any(undefined)),
    TypeError,
    /give \{ lr \}/,
  ],
  ["SGD with a negative lr", () => new SGD(net, { lr: -1 }), RangeError, /lr -1/],
  [
    "Adam with betas past 1",
    () => new Adam(net, { betas: [1.5, 0.9] }),
    RangeError,
    /betas\[0\] 1.5/,
  ],
  [
    "DataParallel on no devices",
    () => new DataParallel(net, []),
    RangeError,
    /no devices/,
  ],
  [
    "DataParallel with a bad staleness",
    () => new DataParallel(net, [cpu()], { staleness: -1 }),
    RangeError,
    /staleness/,
  ],
  [
    "a DataParallel step with fewer rows than devices",
    () => dp2.forwardBackward(row12, labels01, (o, y) => o.crossEntropy(y)),
    RangeError,
    /a batch of 1 rows .* between 2 devices/,
  ],
  [
    "a Sequential of something that is not a module",
    () => new Sequential(any(42)),
    TypeError,
    /42|module/i,
  ],
  [
    "configureEngine with a bad mode",
    () => configureEngine({ mode: any("eager") }),
    RangeError,
    /engine mode "eager"/,
  ],
  [
    "configureEngine with maxOpsInFlight 0",
    () => configureEngine({ maxOpsInFlight: 0 }),
    RangeError,
    /maxOpsInFlight to 0/,
  ],
  ["capture of something that is not a function", () => capture(any(42)), TypeError, /function/],
  ["produce of a negative count", () => produce(-1, () => ones([1])), RangeError, /-1/],
  ["copyTo of something that is not a device", () => copyTo(any("cpu")), TypeError, /device/],
];

for (const [what, call, kind, message] of CASES) {
  Deno.test(`${what} is a ${kind.name} that says why, before anything is queued`, () => {
    const before = engine().nextId();
    assert.throws(call, (e: unknown) => {
      assert.ok(e instanceof kind, `${what}: ${e} is not a ${kind.name}`);
      assert.match((e as Error).message, message);
      assert.match((e as Error).message, /^Cannot /, `${what}: "${(e as Error).message}"`);
      return true;
    });
    // Each op and tensor takes ids: one more than `before` means nothing was made between.
    assert.equal(engine().nextId(), before + 1, `${what} queued work before it threw`);
  });
}

Deno.test("asynchronous bad input (a bad label computed on a device) fails at the next synchronisation, naming the op", async () => {
  const devices: Device[] = [cpu(), ...(await tryAllGpus({ count: 1 }))];
  for (const device of devices) {
    const logits = ones([2, 3], { device });
    const labels: Tensor = fromArray([0, 1], [2], { device }).mul(2); // [0, 2] is fine
    const bad: Tensor = fromArray([0, 2], [2], { device }).mul(2); // [0, 4] is not
    assert.equal((await logits.crossEntropy(labels).data()).length, 1);
    // Thrown at the call when the host already knows the values, else at data().
    await assert.rejects(async () => await logits.crossEntropy(bad).data(), /label 4 at row 1/);
  }
});

Deno.test("tryGpu and tryAllGpus refuse a bad index or count at once", async () => {
  await assert.rejects(tryGpu(-1), RangeError);
  await assert.rejects(tryAllGpus({ count: 0 }), RangeError);
  await assert.rejects(tryAllGpus({ backend: any("metal") }), RangeError);
});

Deno.test("the sweep's layers still build a working model afterwards", async () => {
  const net = new Sequential(
    new Linear(2, 3, { seed: 1 }),
    new ReLU(),
    new Linear(3, 2, { seed: 2 }),
  );
  const loss = net.forward(ones([4, 2])).crossEntropy(fromArray([0, 1, 0, 1], [4]));
  assert.ok(Number.isFinite((await loss.data())[0]));
});
