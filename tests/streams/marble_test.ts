import assert from "node:assert/strict";
import { TestScheduler } from "npm:rxjs@7.8.2/testing";
import { map, type Observable, of, tap } from "npm:rxjs@7.8.2";
import { paced } from "../../lib/streams/paced.ts";
import { orderedMap } from "../../lib/streams/ordered_map.ts";

/** Items are boxes, so holds (kept in a WeakMap) can key on them. */
type Box = { v: string };
const box = (v: string): Box => ({ v });
const letters = map((b: Box) => b.v);

/**
 * Runs `build` under a TestScheduler and returns what the stream did, frame by frame:
 * `[frame, value]`, `[frame, "|"]` for completion, `[frame, "#message"]` for an error.
 */
function record(
  build: (helpers: Parameters<Parameters<TestScheduler["run"]>[0]>[0]) => Observable<string>,
  unsubscribeAt?: number,
): [number, string][] {
  const log: [number, string][] = [];
  const scheduler = new TestScheduler((a, b) => assert.deepEqual(a, b));
  scheduler.run((helpers) => {
    const sub = build(helpers).subscribe({
      next: (v) => log.push([scheduler.now(), v]),
      complete: () => log.push([scheduler.now(), "|"]),
      error: (e) => log.push([scheduler.now(), `#${e.message}`]),
    });
    if (unsubscribeAt !== undefined) scheduler.schedule(() => sub.unsubscribe(), unsubscribeAt);
  });
  return log;
}

Deno.test("paced emits items in order even when later ones are ready first", () => {
  const delays: Record<string, string> = { a: "---x|", b: "-x|", c: "x|" };
  const log = record(({ cold }) =>
    paced({
      count: 3,
      inFlight: 3,
      make: (i) => box("abc"[i]),
      ready: (item) => cold(delays[item.v]),
      discard: () => {},
    }).pipe(letters)
  );
  assert.deepEqual(log, [[3, "a"], [3, "b"], [3, "c"], [3, "|"]]);
});

Deno.test("paced makes an item only while fewer than inFlight are in flight", () => {
  const made: [number, number][] = [];
  const scheduler = new TestScheduler(assert.deepEqual);
  const log: [number, string][] = [];
  scheduler.run(({ cold }) => {
    paced({
      count: 4,
      inFlight: 2,
      make: (i) => {
        made.push([scheduler.now(), i]);
        return box(String(i));
      },
      ready: () => cold("--x|"),
      discard: () => {},
    }).pipe(letters).subscribe({
      next: (v) => log.push([scheduler.now(), v]),
      complete: () => log.push([scheduler.now(), "|"]),
    });
  });
  assert.deepEqual(made, [[0, 0], [0, 1], [2, 2], [2, 3]]);
  assert.deepEqual(log, [[2, "0"], [2, "1"], [4, "2"], [4, "3"], [4, "|"]]);
});

Deno.test("paced completes at once for no items", () => {
  const log = record(() =>
    paced({ count: 0, inFlight: 1, make: () => box("a"), ready: () => of(1), discard: () => {} })
      .pipe(letters)
  );
  assert.deepEqual(log, [[0, "|"]]);
});

Deno.test("paced errors when make throws, after emitting what was ready", () => {
  const log = record(() =>
    paced({
      count: 3,
      inFlight: 3,
      make: (i) => {
        if (i === 2) throw new Error("boom");
        return box(String(i));
      },
      ready: () => of(1),
      discard: () => {},
    }).pipe(letters)
  );
  assert.deepEqual(log, [[0, "0"], [0, "1"], [0, "#boom"]]);
});

Deno.test("paced propagates an error of the work and discards what it made", () => {
  const discarded: string[] = [];
  const log = record(({ cold }) =>
    paced({
      count: 3,
      inFlight: 3,
      make: (i) => box(String(i)),
      ready: (b) => b.v === "1" ? cold("-#", undefined, new Error("gpu")) : cold("--x|"),
      discard: (b) => discarded.push(b.v),
    }).pipe(letters)
  );
  assert.deepEqual(log, [[1, "#gpu"]]);
  assert.deepEqual(discarded.sort(), ["0", "1", "2"]);
});

Deno.test("unsubscribing from paced stops production and discards unemitted items", () => {
  const made: string[] = [];
  const discarded: string[] = [];
  const log = record(({ cold }) =>
    paced({
      count: 100,
      inFlight: 2,
      make: (i) => {
        made.push(String(i));
        return box(String(i));
      },
      ready: () => cold("--x|"),
      discard: (b) => discarded.push(b.v),
    }).pipe(letters), 3);
  assert.deepEqual(log, [[2, "0"], [2, "1"]]);
  assert.deepEqual(made, ["0", "1", "2", "3"]);
  assert.deepEqual(discarded, ["2", "3"]);
});

Deno.test("orderedMap keeps the order of the items and at most `concurrency` steps running", () => {
  let running = 0;
  let most = 0;
  const steps: Record<string, string> = { a: "----x|", b: "-x|", c: "-x|", d: "x|" };
  const log = record(({ cold, hot }) =>
    hot("-a-b-c-d-|", { a: box("a"), b: box("b"), c: box("c"), d: box("d") }).pipe(
      orderedMap<Box, string>({
        concurrency: 2,
        start: (item) => {
          most = Math.max(most, ++running);
          return {
            result: item.v.toUpperCase(),
            done: cold(steps[item.v]).pipe(tap({ next: () => running-- })),
          };
        },
      }),
    )
  );
  // a runs 1..5; b 3..4 but waits for a; c arrives at 5 with both steps taken and starts
  // once A and B are out; d starts at 7 and is done at once.
  assert.deepEqual(log, [[5, "A"], [5, "B"], [6, "C"], [7, "D"], [9, "|"]]);
  assert.equal(most, 2);
});

Deno.test("a paced producer waits while orderedMap holds what it has not started", () => {
  const made: [number, number][] = [];
  const scheduler = new TestScheduler(assert.deepEqual);
  scheduler.run(({ cold }) => {
    paced({
      count: 6,
      inFlight: 1,
      make: (i) => {
        made.push([scheduler.now(), i]);
        return box(String(i));
      },
      ready: () => of(1), // computed at once
      discard: () => {},
    }).pipe(
      orderedMap<Box, string>({
        concurrency: 1,
        start: (b) => ({ result: b.v, done: cold("---x|") }),
      }),
    )
      .subscribe();
  });
  // One step of 3 frames at a time: with nothing held, production would run ahead at frame 0.
  assert.deepEqual(made.map(([t]) => t), [0, 0, 3, 6, 9, 12]);
});

Deno.test("orderedMap propagates step errors and discards what it holds", () => {
  const discardedItems: string[] = [];
  const discardedResults: string[] = [];
  const log = record(({ cold, hot }) =>
    hot("abc|", { a: box("a"), b: box("b"), c: box("c") }).pipe(
      orderedMap<Box, string>({
        concurrency: 2,
        start: (item) => ({
          result: item.v,
          done: item.v === "b" ? cold("-#", undefined, new Error("copy")) : cold("---x|"),
        }),
        discardItem: (item) => discardedItems.push(item.v),
        discardResult: (r) => discardedResults.push(r),
      }),
    )
  );
  assert.deepEqual(log, [[2, "#copy"]]);
  assert.deepEqual(discardedItems, ["c"]);
  assert.deepEqual(discardedResults.sort(), ["a", "b"]);
});

Deno.test("orderedMap completes after the source once every step has finished", () => {
  const log = record(({ cold, hot }) =>
    hot("a|", { a: box("a") }).pipe(
      orderedMap<Box, string>({
        concurrency: 1,
        start: (b) => ({ result: b.v, done: cold("--x|") }),
      }),
    )
  );
  assert.deepEqual(log, [[2, "a"], [2, "|"]]);
});
