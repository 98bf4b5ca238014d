import assert from "node:assert/strict";
import { from, lastValueFrom, mergeMap, tap, toArray } from "npm:rxjs@7.8.2";
import {
  copyTo,
  cpu,
  produce,
  rand,
  synchronize,
  type Tensor,
  trace$,
  type TraceEvent,
  tryAllGpus,
} from "../../mod.ts";
import { engine, type TensorRecord } from "../../lib/engine/engine.ts";
import { recordOf } from "../../lib/tensor/tensor.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });

Deno.test("copyTo emits copies on the target, in order, equal to the source", opts, async () => {
  const x = rand([33, 17], { device: gpu0, seed: 3 });
  const xv = await x.data();
  for (const target of [cpu(), gpu1]) {
    const copies = await lastValueFrom(
      produce(7, (i) => x.mul(i)).pipe(copyTo(target, { concurrency: 3 }), toArray()),
    );
    assert.equal(copies.length, 7);
    for (const [i, c] of copies.entries()) {
      assert.equal(c.device, target);
      assert.deepEqual(
        await c.data(),
        xv.map((v) => Math.fround(v * i)),
        `item ${i} on ${target.name}`,
      );
      c.dispose();
    }
  }
  x.dispose();
});

Deno.test("the copy of y[i-1] starts before the compute of y[i] ends", opts, async () => {
  const x = rand([128, 128], { device: gpu0, seed: 1 });
  x.mm(x).dispose(); // compile the kernel first
  await synchronize();
  const events: TraceEvent[] = [];
  const sub = trace$().subscribe((e) => events.push(e));
  const order: number[] = [];
  // With inFlight 1, y[i] is made as soon as y[i-1] is emitted, right after copyTo queued
  // y[i-1]'s copy: the copy goes to the device ahead of y[i]'s compute, in the same batch.
  // (With more in flight, y[i] is queued before y[i-1] is known to be computed; a software
  // adapter runs its one queue in order, so there the copy waits for y[i].)
  await lastValueFrom(
    produce(6, (i) => {
      order.push(i);
      return x.mm(x);
    }, { inFlight: 1 }).pipe(copyTo(cpu()), tap((t) => t.dispose())),
  );
  await synchronize();
  sub.unsubscribe();
  const computes = events.filter((e) => e.op === "mm").sort((a, b) => a.id - b.id);
  const copies = events.filter((e) => e.op === "copy");
  assert.equal(computes.length, 6);
  assert.equal(copies.length, 6);
  const copyOf = (y: TraceEvent) => copies.find((c) => c.deps.includes(y.id))!;
  for (let i = 1; i < 6; i++) {
    const copyPrev = copyOf(computes[i - 1]);
    assert.ok(
      copyPrev.start < computes[i].end,
      `copy of y[${i - 1}] started at ${copyPrev.start}, compute of y[${i}] ended at ${
        computes[i].end
      }`,
    );
  }
  x.dispose();
});

Deno.test(
  "a stream of 10,000 tensors never has more than inFlight + concurrency alive",
  opts,
  async () => {
    const x = rand([64], { device: gpu0, seed: 1 });
    await synchronize();
    const base = engine().liveBuffers().count;
    const inFlight = 16;
    const concurrency = 16;
    // The stream's device buffers still allocated: tensors made and not yet freed by the engine.
    const alive = new Set<TensorRecord>();
    let most = 0;
    const look = () => {
      for (const r of alive) if (r.freed) alive.delete(r);
      most = Math.max(most, alive.size);
    };
    const watch = trace$().subscribe(look);
    let seen = 0;
    let sum = 0;
    await lastValueFrom(
      produce(10_000, (i) => {
        look();
        const t = x.add(i % 100);
        alive.add(recordOf(t));
        return t;
      }, { inFlight }).pipe(
        copyTo(cpu(), { concurrency }),
        mergeMap(async (t) => {
          look();
          seen++;
          const [first] = await t.data();
          sum += first;
          t.dispose();
        }),
      ),
    );
    watch.unsubscribe();
    await synchronize();
    look();
    assert.equal(seen, 10_000);
    const x0 = (await x.data())[0];
    assert.ok(Math.abs(sum - (10_000 * x0 + 100 * 4950)) < 1, `sum of first elements ${sum}`);
    assert.ok(most <= inFlight + concurrency, `${most} of the stream's buffers were alive at once`);
    assert.ok(most > 1, `only ${most} buffer alive at a time: nothing overlapped`);
    assert.equal(alive.size, 0, "every buffer of the stream was freed");
    assert.ok(engine().liveBuffers().count <= base, "the stream leaked device buffers");
    x.dispose();
  },
);
Deno.test(
  "a producer that throws halfway delivers the error and leaves no buffer",
  opts,
  async () => {
    const x = rand([256], { device: gpu0, seed: 1 });
    await synchronize();
    const base = engine().liveBuffers().count;
    const got: Tensor[] = [];
    const err = await lastValueFrom(
      produce(20, (i) => {
        if (i === 10) throw new Error("producer broke at 10");
        return x.mul(i);
      }, { inFlight: 4 }).pipe(copyTo(cpu()), tap((t) => got.push(t))),
    ).then(() => undefined, (e) => e);
    assert.ok(err instanceof Error);
    assert.equal(err.message, "producer broke at 10");
    for (const t of got) t.dispose();
    await synchronize();
    assert.equal(engine().liveBuffers().count, base);
    x.dispose();
  },
);

Deno.test("unsubscribing stops production and frees what it made", opts, async () => {
  const x = rand([256], { device: gpu0, seed: 1 });
  await synchronize();
  const base = engine().liveBuffers().count;
  let made = 0;
  await new Promise<void>((resolve) => {
    const sub = produce(1_000, (i) => {
      made++;
      return x.mul(i);
    }, { inFlight: 3 }).pipe(copyTo(gpu1)).subscribe((t) => {
      t.dispose();
      if (made >= 6) {
        sub.unsubscribe();
        resolve();
      }
    });
  });
  await synchronize();
  assert.ok(made < 20, `made ${made} after unsubscribing`);
  assert.equal(engine().liveBuffers().count, base);
  x.dispose();
});

Deno.test("produce and copyTo reject bad arguments at once", () => {
  assert.throws(() => produce(-1, () => undefined as unknown as Tensor), RangeError);
  assert.throws(
    () => produce(3, () => undefined as unknown as Tensor, { inFlight: 0 }),
    RangeError,
  );
  assert.throws(() => copyTo(cpu(), { concurrency: 0 }), RangeError);
  assert.throws(() => copyTo("cpu" as never), TypeError);
});

Deno.test("copyTo of tensors from an array copies each, also to another GPU", opts, async () => {
  const ys = [0, 1, 2].map((i) => rand([5], { device: gpu1, seed: i }));
  const expected = await Promise.all(ys.map((y) => y.data()));
  const copies = await lastValueFrom(
    from(ys).pipe(copyTo(gpu0, { disposeSource: false }), toArray()),
  );
  for (const [i, c] of copies.entries()) assert.deepEqual(await c.data(), expected[i]);
  assert.ok(ys.every((y) => !y.disposed));
});
