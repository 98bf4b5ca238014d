import assert from "node:assert/strict";
import fc from "npm:fast-check@4.11.0";
import { DataLoader, DistributedSampler, fromArray } from "../../mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Each rank's indices of one epoch. */
function split(
  length: number,
  world: number,
  epoch: number,
  options: { seed?: number; shuffle?: boolean; dropLast?: boolean } = {},
): number[][] {
  return Array.from(
    { length: world },
    (_, rank) =>
      new DistributedSampler(length, { numReplicas: world, rank, ...options }).indices(epoch),
  );
}

Deno.test("every sample goes to exactly one rank per epoch when the ranks divide the data", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 20 }),
      fc.integer({ min: 0, max: 2 ** 31 }),
      fc.integer({ min: 0, max: 50 }),
      (world, perRank, seed, epoch) => {
        const parts = split(world * perRank, world, epoch, { seed });
        const seen = parts.flat().sort((a, b) => a - b);
        assert.deepEqual(seen, Array.from({ length: world * perRank }, (_, i) => i));
        for (const p of parts) assert.equal(p.length, perRank);
      },
    ),
  );
});

Deno.test("every rank gets as many samples: padding repeats the first ones, dropLast drops the tail", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 7 }),
      fc.integer({ min: 0, max: 40 }),
      fc.integer({ min: 0, max: 1000 }),
      (world, length, seed) => {
        const padded = split(length, world, 0, { seed });
        const want = Math.ceil(length / world);
        for (const p of padded) assert.equal(p.length, want);
        // Every sample is served; the extra ones are repeats.
        assert.deepEqual(
          [...new Set(padded.flat())].sort((a, b) => a - b),
          Array.from({ length }, (_, i) => i),
        );
        const dropped = split(length, world, 0, { seed, dropLast: true });
        for (const p of dropped) assert.equal(p.length, Math.floor(length / world));
        const all = dropped.flat();
        assert.equal(new Set(all).size, all.length, "dropLast serves no sample twice");
      },
    ),
  );
});

Deno.test("without shuffle the ranks take strides of 0, 1, 2, ... padded from the start", () => {
  assert.deepEqual(split(7, 3, 0, { shuffle: false }), [[0, 3, 6], [1, 4, 0], [2, 5, 1]]);
  assert.deepEqual(split(7, 3, 0, { shuffle: false, dropLast: true }), [[0, 3], [1, 4], [2, 5]]);
  // More ranks than samples: several rounds of padding.
  assert.deepEqual(split(2, 5, 0, { shuffle: false }), [[0], [1], [0], [1], [0]]);
});

Deno.test("each epoch has its own order, the same on every rank for a seed", () => {
  const a = new DistributedSampler(100, { numReplicas: 4, rank: 2, seed: 9 });
  const b = new DistributedSampler(100, { numReplicas: 4, rank: 2, seed: 9 });
  const other = new DistributedSampler(100, { numReplicas: 4, rank: 2, seed: 10 });
  assert.deepEqual(a.indices(3), b.indices(3));
  assert.notDeepEqual(a.indices(0), a.indices(1));
  assert.notDeepEqual(a.indices(0), other.indices(0));
  // setEpoch picks what iterating the sampler serves.
  assert.deepEqual([...a], a.indices(0));
  a.setEpoch(5);
  assert.equal(a.epoch, 5);
  assert.deepEqual([...a], b.indices(5));
});

Deno.test("bad arguments throw at once, naming the value", () => {
  assert.throws(() => new DistributedSampler(4, { numReplicas: 2, rank: 2 }), RangeError);
  assert.throws(() => new DistributedSampler(4, { numReplicas: 0, rank: 0 }), RangeError);
  assert.throws(() => new DistributedSampler(-1, { numReplicas: 1, rank: 0 }), RangeError);
  assert.throws(
    () => new DistributedSampler(4, { numReplicas: 1, rank: 0, seed: 0.5 }),
    /seed 0.5/,
  );
  assert.throws(() => new DistributedSampler(4), /initProcessGroup/);
  const s = new DistributedSampler(4, { numReplicas: 1, rank: 0 });
  assert.throws(() => s.setEpoch(-1), RangeError);
});

Deno.test(
  "a DataLoader with a DistributedSampler serves this rank's share in batches",
  opts,
  async () => {
    const ids = Array.from({ length: 10 }, (_, i) => i);
    const data = {
      x: fromArray(ids.flatMap((i) => [i, i + 0.5]), [10, 2]),
      y: fromArray(ids, [10]),
    };
    const served: number[][] = [];
    for (const rank of [0, 1, 2]) {
      const sampler = new DistributedSampler(10, { numReplicas: 3, rank, seed: 4 });
      const loader = new DataLoader(data, { batchSize: 3, sampler });
      assert.equal(loader.length, 2); // 4 samples per rank
      loader.setEpoch(2);
      const mine: number[] = [];
      for await (const { x, y } of loader) {
        const ys = [...await y.data()];
        assert.deepEqual([...await x.data()], ys.flatMap((i) => [i, i + 0.5]));
        mine.push(...ys);
      }
      assert.deepEqual(mine, sampler.indices(2));
      served.push(mine);
    }
    assert.deepEqual([...new Set(served.flat())].sort((a, b) => a - b), ids);
    assert.throws(
      () =>
        new DataLoader(data, {
          shuffle: true,
          sampler: new DistributedSampler(10, { numReplicas: 1, rank: 0 }),
        }),
      TypeError,
    );
  },
);
