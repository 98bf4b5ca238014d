import assert from "node:assert/strict";
import { EagerWaits } from "../../lib/devices/eager_waits.ts";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((res) => (resolve = res));
  return { promise, resolve };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

Deno.test("each submission asks the queue at once and is reported in order", async () => {
  const waits: ReturnType<typeof deferred>[] = [];
  let woke = 0;
  const queue = {
    onSubmittedWorkDone() {
      const d = deferred();
      waits.push(d);
      return d.promise;
    },
  };
  const eager = new EagerWaits(queue, () => woke++);
  const reported: number[] = [];
  eager.submitted(() => reported.push(1));
  eager.submitted(() => reported.push(2));
  assert.equal(waits.length, 2, "a wait per submission, asked at once");
  assert.equal(woke, 2);
  waits[1].resolve(); // the second completes first: still reported after the first
  await settle();
  assert.deepEqual(reported, []);
  waits[0].resolve();
  await settle();
  assert.deepEqual(reported, [1, 2]);
});

Deno.test("a map is started at once, with its range", async () => {
  const calls: unknown[][] = [];
  const eager = new EagerWaits({ onSubmittedWorkDone: () => Promise.resolve() });
  const buffer = {
    mapAsync(...args: unknown[]) {
      calls.push(args);
      return Promise.resolve();
    },
  };
  await eager.map(buffer, 0, 64);
  assert.deepEqual(calls, [[1, 0, 64]]);
});
