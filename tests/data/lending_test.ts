import assert from "node:assert/strict";
import { TestScheduler } from "npm:rxjs@7.8.2/testing";
import { Subject } from "npm:rxjs@7.8.2";
import { heldIterator, lend } from "../../lib/data/lending.ts";

/** Items are boxes, so holds (kept in a WeakMap) can key on them. */
type Box = { v: number };

/** Runs `lend` under a TestScheduler; logs makes, emissions and disposals by frame. */
function run(count: number, prefetch: number, ready: string): string[] {
  const log: string[] = [];
  const scheduler = new TestScheduler(assert.deepEqual);
  scheduler.run(({ cold }) => {
    lend<Box>({
      count,
      prefetch,
      make: (v) => {
        log.push(`${scheduler.now()} make ${v}`);
        return { v };
      },
      ready: () => cold(ready),
      dispose: (b) => log.push(`${scheduler.now()} dispose ${b.v}`),
    }).subscribe({
      next: (b) => log.push(`${scheduler.now()} next ${b.v}`),
      complete: () => log.push(`${scheduler.now()} |`),
    });
  });
  return log;
}

Deno.test("lend makes at most prefetch items beyond the one being consumed", () => {
  assert.deepEqual(run(3, 1, "--x|"), [
    "0 make 0",
    "0 make 1",
    "2 next 0",
    "2 dispose 0",
    "2 make 2",
    "2 next 1",
    "2 dispose 1",
    "4 next 2",
    "4 dispose 2",
    "4 |",
  ]);
});

Deno.test("lend with prefetch 0 makes each item only after the one before is disposed", () => {
  assert.deepEqual(run(2, 0, "-x|"), [
    "0 make 0",
    "1 next 0",
    "1 dispose 0",
    "1 make 1",
    "2 next 1",
    "2 dispose 1",
    "2 |",
  ]);
});

Deno.test("unsubscribing from lend disposes the items made and not emitted", () => {
  const disposed: number[] = [];
  const scheduler = new TestScheduler(assert.deepEqual);
  scheduler.run(({ cold }) => {
    const sub = lend<Box>({
      count: 10,
      prefetch: 2,
      make: (v) => ({ v }),
      ready: () => cold("--x|"),
      dispose: (b) => disposed.push(b.v),
    }).subscribe();
    scheduler.schedule(() => sub.unsubscribe(), 1);
  });
  assert.deepEqual(disposed.sort(), [0, 1, 2]);
});

Deno.test("heldIterator keeps an item until the loop asks for the next one", async () => {
  const disposed: number[] = [];
  const made: number[] = [];
  const ready = new Subject<void>();
  const source = lend<Box>({
    count: 3,
    prefetch: 1,
    make: (v) => {
      made.push(v);
      return { v };
    },
    ready: () => ready,
    dispose: (b) => disposed.push(b.v),
  });
  const it = heldIterator(source, (b) => b.v);
  const first = it.next(); // subscribes: makes 0 and 1
  assert.deepEqual(made, [0, 1]);
  ready.next(); // both are ready
  assert.deepEqual(await first, { value: 0, done: false });
  assert.deepEqual(disposed, [], "item 0 is held by the loop");
  assert.deepEqual(made, [0, 1], "nothing beyond prefetch while 0 is held");
  const second = it.next(); // lets go of 0
  assert.deepEqual(disposed, [0]);
  assert.deepEqual(made, [0, 1, 2]);
  assert.deepEqual(await second, { value: 1, done: false });
  const third = it.next();
  ready.next();
  assert.deepEqual(await third, { value: 2, done: false });
  assert.deepEqual(await it.next(), { value: undefined, done: true });
  assert.deepEqual(disposed, [0, 1, 2]);
});

Deno.test("heldIterator's return() releases the current and the queued items", async () => {
  const disposed: number[] = [];
  const source = lend<Box>({
    count: 5,
    prefetch: 2,
    make: (v) => ({ v }),
    ready: () => Promise.resolve(),
    dispose: (b) => disposed.push(b.v),
  });
  for await (const v of heldIterator(source, (b) => b.v)) {
    if (v === 1) break;
  }
  assert.deepEqual(disposed.sort(), [0, 1, 2, 3]);
});

Deno.test("heldIterator throws the stream's error after the items before it", async () => {
  const seen: number[] = [];
  const source = lend<Box>({
    count: 3,
    prefetch: 0,
    make: (v) => {
      if (v === 2) throw new Error("no sample 2");
      return { v };
    },
    ready: () => Promise.resolve(),
    dispose: () => {},
  });
  await assert.rejects(async () => {
    for await (const v of heldIterator(source, (b) => b.v)) seen.push(v);
  }, /no sample 2/);
  assert.deepEqual(seen, [0, 1]);
});
