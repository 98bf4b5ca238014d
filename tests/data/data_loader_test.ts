import assert from "node:assert/strict";
import fc from "npm:fast-check@4.11.0";
import { lastValueFrom, map, toArray } from "npm:rxjs@7.8.2";
import {
  type BatchDataset,
  cpu,
  DataLoader,
  fromArray,
  rand,
  synchronize,
  type Tensor,
  TensorDataset,
  trace$,
  type TraceEvent,
  tryAllGpus,
} from "../../mod.ts";
import { batchIndices } from "../../lib/data/sampler.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });

/** `n` samples: x[i] = [i, i + 0.5], y[i] = i, so a batch's y names its samples. */
function numbered(n: number): { x: Tensor; y: Tensor } {
  const ids = Array.from({ length: n }, (_, i) => i);
  return { x: fromArray(ids.flatMap((i) => [i, i + 0.5]), [n, 2]), y: fromArray(ids, [n]) };
}

/** The sample ids of each batch of one `for await` pass over `loader`. */
async function idsOf(loader: DataLoader<{ x: Tensor; y: Tensor }>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const { x, y } of loader) {
    const ids = [...await y.data()];
    assert.deepEqual([...await x.data()], ids.flatMap((i) => [i, i + 0.5]), "x matches y");
    out.push(ids);
  }
  return out;
}

/** The sample ids of each batch of `loader.epoch(e)`, read inside `next`. */
async function epochIds(
  loader: DataLoader<{ x: Tensor; y: Tensor }>,
  e: number,
): Promise<number[][]> {
  const reads = await lastValueFrom(loader.epoch(e).pipe(map(({ y }) => y.data()), toArray()));
  return (await Promise.all(reads)).map((v) => [...v]);
}

/** A dataset whose samples are their indices, counting the batches asked of it. */
function counting(length: number): BatchDataset<[Tensor]> & { made: Tensor[] } {
  const made: Tensor[] = [];
  return {
    length,
    made,
    batch(indices) {
      const t = fromArray(indices, [indices.length]);
      made.push(t);
      return [t];
    },
  };
}

Deno.test(
  "without shuffle, batches hold the samples in order, the last one partial",
  opts,
  async () => {
    const loader = new DataLoader(numbered(7), { batchSize: 3 });
    assert.equal(loader.length, 3);
    assert.deepEqual(await idsOf(loader), [[0, 1, 2], [3, 4, 5], [6]]);
    assert.deepEqual(await epochIds(loader, 4), [[0, 1, 2], [3, 4, 5], [6]]);
  },
);

Deno.test(
  "batchSize defaults to 1 and a record's names carry over to the batches",
  opts,
  async () => {
    const loader = new DataLoader(numbered(3));
    assert.equal(loader.length, 3);
    assert.deepEqual(await idsOf(loader), [[0], [1], [2]]);
    for await (const batch of loader) assert.deepEqual(Object.keys(batch), ["x", "y"]);
  },
);

Deno.test(
  "an array of tensors gives batches as arrays, shaped [batch, ...rest]",
  opts,
  async () => {
    const x = rand([5, 3, 2], { seed: 4 });
    const xv = await x.data();
    const shapes: number[][] = [];
    let row = 0;
    for await (const [xb] of new DataLoader([x], { batchSize: 2 })) {
      shapes.push([...xb.shape]);
      assert.deepEqual(await xb.data(), xv.slice(row * 6, (row + xb.shape[0]) * 6));
      row += xb.shape[0];
    }
    assert.deepEqual(shapes, [[2, 3, 2], [2, 3, 2], [1, 3, 2]]);
  },
);

Deno.test("dropLast drops a last batch smaller than batchSize, and only that", opts, async () => {
  const loader = new DataLoader(numbered(7), { batchSize: 3, dropLast: true });
  assert.equal(loader.length, 2);
  assert.deepEqual(await idsOf(loader), [[0, 1, 2], [3, 4, 5]]);
  const even = new DataLoader(numbered(6), { batchSize: 3, dropLast: true });
  assert.deepEqual(await idsOf(even), [[0, 1, 2], [3, 4, 5]]);
  const shuffled = new DataLoader(numbered(7), { batchSize: 3, dropLast: true, shuffle: true });
  const ids = (await idsOf(shuffled)).flat();
  assert.equal(ids.length, 6);
  assert.equal(new Set(ids).size, 6);
});

Deno.test("shuffle serves every sample exactly once per epoch, not in order", opts, async () => {
  const loader = new DataLoader(numbered(20), { batchSize: 6, shuffle: true, seed: 7 });
  for (const e of [0, 1, 2]) {
    const batches = await epochIds(loader, e);
    assert.deepEqual(batches.map((b) => b.length), [6, 6, 6, 2]);
    const ids = batches.flat();
    assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
    assert.notDeepEqual(ids, Array.from({ length: 20 }, (_, i) => i), `epoch ${e} is shuffled`);
  }
});

Deno.test("the same seed gives the same order; another seed another", opts, async () => {
  const data = numbered(16);
  const a = new DataLoader(data, { batchSize: 4, shuffle: true, seed: 123 });
  const b = new DataLoader(data, { batchSize: 4, shuffle: true, seed: 123 });
  const c = new DataLoader(data, { batchSize: 4, shuffle: true, seed: 124 });
  const first = await epochIds(a, 3);
  assert.deepEqual(await epochIds(b, 3), first);
  assert.deepEqual(await epochIds(a, 3), first, "an epoch served again has the same order");
  assert.notDeepEqual(await epochIds(c, 3), first);
  assert.equal(a.seed, 123);
});

Deno.test(
  "each epoch has its own order, and each for-await loop is the next epoch",
  opts,
  async () => {
    const loader = new DataLoader(numbered(16), { batchSize: 4, shuffle: true, seed: 5 });
    const orders = [
      await epochIds(loader, 0),
      await epochIds(loader, 1),
      await epochIds(loader, 2),
    ];
    assert.notDeepEqual(orders[0], orders[1]);
    assert.notDeepEqual(orders[1], orders[2]);
    assert.deepEqual(await idsOf(loader), orders[0]);
    assert.deepEqual(await idsOf(loader), orders[1]);
    loader.setEpoch(0);
    assert.deepEqual(await idsOf(loader), orders[0]);
    assert.deepEqual(await idsOf(loader), orders[1]);
  },
);

Deno.test("every sample is in exactly one batch per epoch, for any sizes and seeds", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: 1, max: 70 }),
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
      fc.nat(1000),
      (n, batchSize, shuffle, dropLast, seed, epoch) => {
        const batches = batchIndices(n, { batchSize, shuffle, seed, epoch, dropLast });
        const kept = dropLast ? n - (n % batchSize) : n;
        assert.equal(
          batches.length,
          dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize),
        );
        for (const b of batches.slice(0, -1)) assert.equal(b.length, batchSize);
        const ids = batches.flat();
        assert.equal(ids.length, kept);
        assert.equal(new Set(ids).size, kept);
        assert.ok(ids.every((i) => Number.isInteger(i) && i >= 0 && i < n));
        if (!shuffle) assert.deepEqual(ids, Array.from({ length: kept }, (_, i) => i));
      },
    ),
  );
});

Deno.test("batches on a GPU equal the host's rows of the dataset", opts, async () => {
  const x = rand([37, 5], { seed: 11 });
  const y = fromArray(Array.from({ length: 37 }, (_, i) => i), [37]);
  const xv = await x.data();
  const loader = new DataLoader({ x, y }, { batchSize: 8, shuffle: true, seed: 2, device: gpu });
  const check = async (b: { x: Tensor; y: Tensor }) => {
    assert.equal(b.x.device, gpu);
    assert.equal(b.y.device, gpu);
    const ids = [...await b.y.data()];
    const rows = ids.flatMap((i) => [...xv.subarray(i * 5, i * 5 + 5)]);
    assert.deepEqual(await b.x.data(), Float32Array.from(rows));
    return ids;
  };
  const seen: number[] = [];
  for await (const b of loader) seen.push(...await check(b));
  assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 37 }, (_, i) => i));
  // The Observable serves the same batches; reads queued inside next() outlive the loan.
  const reads = await lastValueFrom(
    loader.epoch(0).pipe(map((b) => Promise.all([b.x.data(), b.y.data()])), toArray()),
  );
  for (const [xb, yb] of await Promise.all(reads)) {
    const rows = [...yb].flatMap((i) => [...xv.subarray(i * 5, i * 5 + 5)]);
    assert.deepEqual(xb, Float32Array.from(rows));
  }
  const onHost = new DataLoader({ x, y }, { batchSize: 8, shuffle: true, seed: 2 });
  assert.deepEqual(await epochIds(onHost, 0), await epochIds(loader, 0), "the host's order");
});

Deno.test("the loader never makes more than prefetch batches ahead of the loop", opts, async () => {
  for (const prefetch of [0, 1, 2, 3]) {
    const data = counting(10);
    const loader = new DataLoader(data, { batchSize: 2, prefetch, device: gpu });
    let k = 0;
    for await (const [x] of loader) {
      assert.equal(x.device, gpu);
      assert.deepEqual([...await x.data()], [2 * k, 2 * k + 1]);
      // The loop holds batch k: batches up to k + prefetch have been asked for, no more.
      assert.equal(data.made.length, Math.min(5, k + 1 + prefetch), `prefetch ${prefetch}, k ${k}`);
      k++;
    }
    assert.equal(k, 5);
    assert.ok(data.made.every((t) => t.disposed), "host batches are freed once copied");
  }
});

Deno.test(
  "a batch is disposed once the loop asks for the next, or next() returns",
  opts,
  async () => {
    const batches: Tensor[] = [];
    for await (const [x] of new DataLoader(counting(6), { batchSize: 2, device: gpu })) {
      assert.ok(batches.every((b) => b.disposed), "the batches before are disposed");
      assert.equal(x.disposed, false);
      batches.push(x);
    }
    assert.ok(batches.every((b) => b.disposed));
    const lent: Tensor[] = [];
    await lastValueFrom(
      new DataLoader(counting(6), { batchSize: 2 }).epoch(0).pipe(
        map(([x]) => {
          assert.equal(x.disposed, false);
          lent.push(x);
        }),
        toArray(),
      ),
    );
    assert.equal(lent.length, 3);
    assert.ok(lent.every((b) => b.disposed));
  },
);

Deno.test(
  "the copy of the next batch is queued before the step on the current one",
  opts,
  async () => {
    const w = rand([16, 16], { device: gpu, seed: 1 });
    const x = rand([24, 16], { seed: 2 });
    await synchronize();
    for (const prefetch of [1, 0]) {
      const events: TraceEvent[] = [];
      const sub = trace$().subscribe((e) => events.push(e));
      const loader = new DataLoader([x], { batchSize: 4, prefetch, device: gpu });
      for await (const [xb] of loader) xb.mm(w).dispose(); // the step is queued, not awaited
      await synchronize();
      sub.unsubscribe();
      const byId = (a: TraceEvent, b: TraceEvent) => a.id - b.id;
      const copies = events.filter((e) => e.label === `cpu->${gpu.name}`).sort(byId);
      const steps = events.filter((e) => e.op === "mm").sort(byId);
      assert.equal(copies.length, 6);
      assert.equal(steps.length, 6);
      for (let k = 0; k + 1 < 6; k++) {
        // Ids follow the order ops were queued in.
        const ahead = copies[k + 1].id < steps[k].id;
        assert.equal(ahead, prefetch > 0, `prefetch ${prefetch}: copy ${k + 1} vs step ${k}`);
      }
    }
    w.dispose();
  },
);

Deno.test("leaving the loop early disposes the batches made ahead", opts, async () => {
  const data = counting(20);
  const batches: Tensor[] = [];
  for await (const [x] of new DataLoader(data, { batchSize: 2, prefetch: 3, device: gpu })) {
    batches.push(x);
    if (batches.length === 2) break;
  }
  assert.equal(data.made.length, 5, "batches 0..4 were asked for");
  await new Promise((resolve) => setTimeout(resolve, 0)); // the copies queued meanwhile land
  assert.ok(batches.every((b) => b.disposed));
  assert.ok(data.made.every((t) => t.disposed));
});

Deno.test("an error of the dataset ends the loop and errors the stream", opts, async () => {
  const failing: BatchDataset<[Tensor]> = {
    length: 6,
    batch: (indices) => {
      if (indices.includes(4)) return Promise.reject(new Error("sample 4 is unreadable"));
      return [fromArray(indices, [indices.length])];
    },
  };
  const loader = new DataLoader(failing, { batchSize: 2 });
  const seen: number[][] = [];
  await assert.rejects(async () => {
    for await (const [x] of loader) seen.push([...await x.data()]);
  }, /sample 4 is unreadable/);
  assert.deepEqual(seen, [[0, 1], [2, 3]]);
  await assert.rejects(lastValueFrom(loader.epoch(0)), /sample 4 is unreadable/);
  const wrong = { length: 2, batch: () => [1, 2] } as unknown as BatchDataset<[Tensor]>;
  await assert.rejects(lastValueFrom(new DataLoader(wrong).epoch(0)), TypeError);
});

Deno.test("bad options and datasets throw at once, naming the value", () => {
  const data = numbered(4);
  const cases: [() => unknown, ErrorConstructor, RegExp][] = [
    [() => new DataLoader(data, { batchSize: 0 }), RangeError, /batchSize 0/],
    [() => new DataLoader(data, { batchSize: 1.5 }), RangeError, /batchSize 1\.5/],
    [() => new DataLoader(data, { prefetch: -1 }), RangeError, /prefetch -1/],
    [() => new DataLoader(data, { seed: 0.5 }), RangeError, /seed 0\.5/],
    [() => new DataLoader(data, { shuffle: "yes" as unknown as boolean }), TypeError, /shuffle/],
    [() => new DataLoader(data, { device: "gpu" as unknown as typeof gpu }), TypeError, /gpu/],
    [
      () => new DataLoader({ x: data.x, y: fromArray([1, 2, 3], [3]) }),
      RangeError,
      /first dimensions differ \(4 and 3\)/,
    ],
    [() => new DataLoader([]), TypeError, /holds no tensors/],
    [
      () => new DataLoader({ x: data.x, y: [1, 2] as unknown as Tensor }),
      TypeError,
      /not a Tensor/,
    ],
    [() => new DataLoader([fromArray([1], [])]), RangeError, /rank 0/],
    [() => new DataLoader(null as unknown as [Tensor]), TypeError, /null/],
    [() => new DataLoader({ length: -1, batch: () => [] }), RangeError, /length -1/],
    [() => new DataLoader(data).epoch(-1), RangeError, /epoch -1/],
    [() => new DataLoader(data).setEpoch(0.5), RangeError, /epoch 0\.5/],
  ];
  for (const [make, type, message] of cases) {
    assert.throws(make, (e: unknown) => {
      assert.ok(e instanceof type, `${e} is a ${type.name}`);
      assert.match((e as Error).message, /^Cannot /);
      assert.match((e as Error).message, message);
      return true;
    });
  }
  const gone = fromArray([1, 2], [2]);
  gone.dispose();
  assert.throws(() => new TensorDataset([gone]), /disposed/);
});

Deno.test("a TensorDataset rejects indices it does not have", opts, async () => {
  const data = new TensorDataset(numbered(3));
  assert.throws(() => data.batch([0, 3]), RangeError);
  assert.throws(() => data.batch([]), RangeError);
  assert.ok(data.batch([0]) instanceof Promise, "the first batch waits for the values");
  await data.batch([1]);
  const [x] = Object.values(data.batch([2]) as { x: Tensor });
  assert.deepEqual(await x.data(), new Float32Array([2, 2.5]), "later batches come at once");
  assert.equal(cpu().kind, "cpu");
});
