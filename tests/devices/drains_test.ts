import assert from "node:assert/strict";
import { Drains } from "../../lib/devices/drains.ts";

/** A promise with its resolve and reject. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** A queue and buffers whose waits resolve when the test says so, counting the calls. */
function fakes() {
  const queueWaits: ReturnType<typeof deferred>[] = [];
  const mapWaits: ReturnType<typeof deferred>[] = [];
  const queue = {
    onSubmittedWorkDone() {
      const d = deferred();
      queueWaits.push(d);
      return d.promise;
    },
  };
  const buffer = () => ({
    mapAsync() {
      const d = deferred();
      mapWaits.push(d);
      return d.promise;
    },
  });
  return { queue, buffer, queueWaits, mapWaits };
}

/** Lets promise callbacks and 0 ms timers run. */
const settle = () => new Promise((r) => setTimeout(r, 5));

Deno.test("submissions are reported only once a wait after them resolves", async () => {
  const f = fakes();
  let idle = false;
  const drains = new Drains(f.queue, () => idle);
  const reported: number[] = [];
  drains.submitted(() => reported.push(1));
  drains.beforeSubmit(); // the second batch is encoded: wait for the first
  drains.submitted(() => reported.push(2));
  assert.equal(f.queueWaits.length, 1);
  await settle();
  assert.deepEqual(reported, [], "nothing is reported before the wait resolves");
  f.queueWaits[0].resolve();
  await settle();
  assert.deepEqual(reported, [1], "the wait covers the first submission only");
  idle = true;
  drains.idle();
  assert.equal(f.queueWaits.length, 2);
  f.queueWaits[1].resolve();
  await settle();
  assert.deepEqual(reported, [1, 2]);
  drains.idle();
  assert.equal(f.queueWaits.length, 2, "nothing left to wait for: no new wait");
});

Deno.test("idle() waits for what no wait covers, and again once a wait settles", async () => {
  const f = fakes();
  let idle = false;
  const drains = new Drains(f.queue, () => idle);
  const reported: number[] = [];
  drains.submitted(() => reported.push(1));
  drains.idle();
  drains.idle(); // covered already: no second wait
  assert.equal(f.queueWaits.length, 1);
  drains.submitted(() => reported.push(2));
  idle = true;
  f.queueWaits[0].resolve();
  await settle();
  assert.deepEqual(reported, [1]);
  assert.equal(f.queueWaits.length, 2, "the idle Worker waits for what came after");
  f.queueWaits[1].resolve();
  await settle();
  assert.deepEqual(reported, [1, 2]);
  assert.equal(drains.inFlight, 0);
});

Deno.test("readbacks asked for while a wait is in flight are mapped when idle", () => {
  const f = fakes();
  const drains = new Drains(f.queue, () => true);
  drains.submitted(() => {});
  drains.map(f.buffer());
  drains.idle();
  drains.submitted(() => {});
  drains.map(f.buffer());
  drains.idle(); // the first group is in flight; the second maps at once
  assert.equal(f.mapWaits.length, 2);
});

Deno.test("readbacks are mapped at the next wait, all together, after the report", async () => {
  const f = fakes();
  const drains = new Drains(f.queue, () => false);
  const order: string[] = [];
  drains.submitted(() => order.push("batch 1 done"));
  const a = drains.map(f.buffer()).then(() => order.push("a mapped"));
  const b = drains.map(f.buffer()).then(() => order.push("b mapped"));
  assert.equal(f.mapWaits.length, 0, "no map before a wait");
  drains.beforeSubmit();
  assert.equal(f.mapWaits.length, 2, "one group maps both");
  assert.equal(f.queueWaits.length, 0, "the maps are the wait");
  f.mapWaits[1].resolve();
  f.mapWaits[0].resolve();
  await Promise.all([a, b]);
  assert.equal(order[0], "batch 1 done");
  assert.deepEqual(order.slice(1).sort(), ["a mapped", "b mapped"]);
});

Deno.test("when every map of a group fails, the queue still reports the submissions", async () => {
  const f = fakes();
  const drains = new Drains(f.queue, () => false);
  const reported: number[] = [];
  drains.submitted(() => reported.push(1));
  const failed = drains.map(f.buffer());
  drains.beforeSubmit();
  f.mapWaits[0].reject(new Error("device lost"));
  await assert.rejects(failed, /device lost/);
  await settle();
  assert.equal(f.queueWaits.length, 1);
  f.queueWaits[0].resolve();
  await settle();
  assert.deepEqual(reported, [1]);
});
