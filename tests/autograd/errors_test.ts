import assert from "node:assert/strict";
import {
  cpu,
  type Device,
  fromArray,
  grad,
  noGrad,
  synchronize,
  type Tensor,
  tryAllGpus,
  valueAndGrad,
} from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });
const devices: (Device | undefined)[] = [cpu(), gpu];

/** Asserts `fn` throws as `expected` says without queuing an op or making a tensor. */
function throwsBeforeQueuing(fn: () => unknown, expected: assert.AssertPredicate): void {
  const before = engine().nextId();
  assert.throws(fn, expected);
  assert.equal(engine().nextId(), before + 1, "something was queued before the error");
}

const values = async (t: Tensor | undefined) => [...await t!.data()];

Deno.test("backward() on a non-scalar throws a RangeError naming its shape", () => {
  const x = fromArray([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
  const y = x.mul(2);
  const wrong = fromArray([1, 2, 3], [3]);
  throwsBeforeQueuing(() => y.backward(), (e: unknown) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /needs a scalar loss, not shape \[2, 3\]/);
    return true;
  });
  throwsBeforeQueuing(
    () => y.backward(wrong),
    /RangeError: .*same shape and device/,
  );
  assert.equal(x.grad, undefined);
});

Deno.test("a second backward() through a freed graph throws a TypeError naming the op", async () => {
  const x = fromArray([1, 2], [2], { requiresGrad: true });
  const y = x.exp();
  y.sum().backward();
  const first = await values(x.grad);
  const again = y.mul(3).sum();
  throwsBeforeQueuing(() => again.backward(), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /Cannot run backward through exp .*already freed.*retainGraph/);
    return true;
  });
  const loss = x.tanh().sum();
  loss.backward();
  throwsBeforeQueuing(() => loss.backward(), /TypeError: Cannot run backward through sum/);
  assert.equal((await values(x.grad)).length, first.length);
});

Deno.test("retainGraph lets backward() run through the graph twice, adding up", async () => {
  const x = fromArray([1, 2], [2], { requiresGrad: true });
  const loss = x.mul(x).sum();
  loss.backward(undefined, { retainGraph: true });
  loss.backward();
  assert.deepEqual(await values(x.grad), [4, 8]);
});

Deno.test("asking the gradient of a disposed tensor throws a TypeError naming it", () => {
  const x = fromArray([1, 2, 3], [3], { requiresGrad: true });
  const loss = x.mul(2).sum();
  x.dispose();
  throwsBeforeQueuing(() => loss.backward(), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /Cannot compute the gradient of Tensor\[3\] on cpu: it was disposed/);
    assert.match(e.message, /an input of mul/);
    return true;
  });
  const w = fromArray([1, 2], [2], { requiresGrad: true });
  const h = w.exp();
  const l = h.sum();
  h.dispose(); // exp's gradient reads its output
  throwsBeforeQueuing(() => l.backward(), /TypeError: Cannot run backward through .*was disposed/);
  const gone = fromArray([1], [1], { requiresGrad: true });
  gone.dispose();
  throwsBeforeQueuing(() => gone.backward(), /TypeError: .*disposed/);
});

Deno.test("shapes that do not broadcast throw a RangeError naming both shapes", () => {
  const a = fromArray([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
  const b = fromArray([1, 2], [2]);
  for (const op of ["add", "sub", "mul", "div"] as const) {
    throwsBeforeQueuing(() => a[op](b), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, new RegExp(`Cannot ${op} shapes \\[2, 3\\] and \\[2\\]`));
      return true;
    });
  }
  const c = fromArray([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]);
  const d = fromArray([1, 2, 3, 4], [2, 2]);
  throwsBeforeQueuing(() => c.add(d), /\[4, 2\] and \[2, 2\]/);
  throwsBeforeQueuing(() => a.expandTo([3, 3]), /RangeError: .*\[2, 3\] to \[3, 3\]/);
  throwsBeforeQueuing(() => a.expandTo([3]), /RangeError: .*\[2, 3\] to \[3\]/);
});

Deno.test("crossEntropy with a host label out of range throws a RangeError naming it", () => {
  const logits = fromArray([0, 1, 2, 3, 4, 5], [2, 3], { requiresGrad: true });
  for (const [labels, bad, row] of [[[0, 3], 3, 1], [[-1, 0], -1, 0], [[1, 1.5], 1.5, 1]]) {
    const y = fromArray(labels as number[], [2]);
    throwsBeforeQueuing(() => logits.crossEntropy(y), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, new RegExp(`label ${bad} at row ${row} is not a class index`));
      assert.match(e.message, /\[0, 3\)/);
      return true;
    });
  }
  const three = fromArray([0, 1, 2], [3]);
  throwsBeforeQueuing(() => logits.crossEntropy(three), /RangeError: .*labels of shape \[3\]/);
});

Deno.test({
  name: "crossEntropy with labels on the GPU out of range fails, naming the label",
  ignore: gpu === undefined,
  ...opts,
  fn: async () => {
    const logits = fromArray([0, 1, 2, 3, 4, 5], [2, 3], { device: gpu, requiresGrad: true });
    // Uploaded labels are known from their creation: checked at the call.
    const uploaded = fromArray([2, 7], [2], { device: gpu });
    throwsBeforeQueuing(() => logits.crossEntropy(uploaded), /RangeError: .*label 7 at row 1/);
    // Labels computed on the device are checked there: the next synchronisation fails.
    const computed = fromArray([1, 6], [2], { device: gpu }).add(1);
    const loss = logits.crossEntropy(computed);
    const names = (e: unknown) => {
      assert.ok(e instanceof Error);
      const messages = [e.message, ...(e instanceof AggregateError ? e.errors : [])]
        .map((x) => x instanceof Error ? x.message : String(x));
      assert.match(messages.join("\n"), /label 7 at row 1 is not a class index in \[0, 3\)/);
      return true;
    };
    await assert.rejects(synchronize(), names);
    await assert.rejects(loss.data(), names);
    await synchronize(); // reported once
    const good = logits.crossEntropy(fromArray([2, 0], [2], { device: gpu }).add(0));
    await synchronize();
    assert.ok(Number.isFinite((await good.data())[0]));
  },
});

Deno.test("fromArray of strings throws a TypeError naming the element", () => {
  throwsBeforeQueuing(
    () => fromArray(["a", "b"] as unknown as number[], [2]),
    (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /element 0, "a" \(string\)/);
      return true;
    },
  );
  throwsBeforeQueuing(() => fromArray([1, "2"] as unknown as number[], [2]), /element 1, "2"/);
});

for (const device of devices) {
  const where = device?.name ?? "a GPU";
  Deno.test({
    name: `gradients accumulate across two backward() calls into the same .grad on ${where}`,
    ignore: device === undefined,
    ...opts,
    fn: async () => {
      const x = fromArray([1, 2, 3], [3], { device, requiresGrad: true });
      x.mul(3).sum().backward();
      const g = x.grad;
      assert.equal(g?.device, device);
      x.mul(x).sum().backward();
      assert.equal(x.grad, g, "the .grad tensor is updated in place");
      assert.deepEqual(await values(x.grad), [5, 7, 9]);
    },
  });

  Deno.test({
    name: `a tensor used twice gets both contributions on ${where}`,
    ignore: device === undefined,
    ...opts,
    fn: async () => {
      const x = fromArray([1, 2, 3], [3], { device, requiresGrad: true });
      x.mul(x).sum().backward();
      assert.deepEqual(await values(x.grad), [2, 4, 6]);
      const y = fromArray([1, 2, 3], [3], { device, requiresGrad: true });
      y.add(y).sum().backward(); // both contributions are the same tensor
      assert.deepEqual(await values(y.grad), [2, 2, 2]);
      y.sub(y).sum().backward();
      assert.deepEqual(await values(y.grad), [2, 2, 2]);
      const z = fromArray([1, 2], [2], { device, requiresGrad: true });
      const h = z.mul(2); // an intermediate read by two ops
      h.mul(h).add(h).sum().backward(); // d/dz (4z^2 + 2z) = 8z + 2
      assert.deepEqual(await values(z.grad), [10, 18]);
      const m = fromArray([1, 2, 3, 4], [2, 2], { device, requiresGrad: true });
      m.mm(m).sum().backward(); // d/dm sum(m m) = 1 m^T + m^T 1
      assert.deepEqual(await values(m.grad), [7, 11, 9, 13]);
    },
  });
}

Deno.test("noGrad stops recording, and detach cuts the graph", async () => {
  const x = fromArray([1, 2, 3], [3], { requiresGrad: true });
  const y = noGrad(() => x.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.gradFn, undefined);
  const total = y.sum();
  throwsBeforeQueuing(() => total.backward(), /TypeError: .*does not require grad/);
  assert.equal(noGrad(() => 7), 7);
  assert.throws(() => noGrad(() => x.reshape([4])), RangeError);
  assert.ok(x.mul(2).requiresGrad, "recording resumes after noGrad, even after a throw");

  const d = x.mul(2).detach();
  assert.equal(d.requiresGrad, false);
  assert.equal(d.gradFn, undefined);
  x.mul(x.detach()).sum().backward(); // d/dx (x * c) = c
  assert.deepEqual(await values(x.grad), [1, 2, 3]);
  assert.throws(() => (x.mul(2).requiresGrad = false), /TypeError: .*use detach\(\)/);
});

Deno.test("grad() and valueAndGrad() differentiate with respect to argnums", async () => {
  const f = (w: Tensor, x: Tensor) => w.mul(x).mul(x).sum(); // sum(w x^2)
  const w = fromArray([1, 2], [2], { requiresGrad: true });
  const x = fromArray([3, 4], [2]);
  assert.deepEqual(await values(grad(f)(w, x)), [9, 16]);
  assert.deepEqual(await values(grad(f, { argnums: 1 })(w, x)), [6, 16]);
  const [dw, dx] = grad(f, { argnums: [0, 1] })(w, x);
  assert.deepEqual([await values(dw), await values(dx)], [[9, 16], [6, 16]]);
  const [value, [dx2]] = valueAndGrad(f, { argnums: [1] })(w, x);
  assert.equal(value.requiresGrad, false);
  assert.deepEqual(await values(value), [41]);
  assert.deepEqual(await values(dx2), [6, 16]);
  assert.equal(w.grad, undefined, "the caller's .grad is left alone");
  assert.equal(x.grad, undefined);
  const constant = grad((_a: Tensor, b: Tensor) => b.sum())(w, x); // f does not read w
  assert.deepEqual(await values(constant), [0, 0]);
  throwsBeforeQueuing(() => grad(f, { argnums: 2 })(w, x), /TypeError: .*argument 2/);
  assert.throws(() => grad((a: Tensor) => a.mul(2))(w), RangeError);
});
