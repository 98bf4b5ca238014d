import assert from "node:assert/strict";
import { of } from "npm:rxjs@7.8.2";
import { producersWaiting } from "../../lib/streams/backpressure.ts";
import { hold, release } from "../../lib/streams/holds.ts";
import { paced } from "../../lib/streams/paced.ts";

Deno.test("producersWaiting counts a producer while a consumer holds all its slots", () => {
  const held: object[] = [];
  const sub = paced({
    count: 5,
    inFlight: 2,
    make: (i) => ({ i }),
    ready: () => of(1),
    discard: () => {},
  }).subscribe((item) => {
    hold(item); // a consumer that has not got round to the item yet
    held.push(item);
  });
  assert.equal(held.length, 2);
  assert.equal(producersWaiting(), 1, "out of slots, items left to make: waiting");
  release(held.shift()!); // room for one more, which is made, emitted and held at once
  assert.deepEqual(held, [{ i: 1 }, { i: 2 }]);
  assert.equal(producersWaiting(), 1);
  while (held.length > 0) release(held.shift()!);
  assert.equal(producersWaiting(), 0, "nothing left to make");
  sub.unsubscribe();
});

Deno.test("unsubscribing a waiting producer stops counting it", () => {
  const sub = paced({
    count: 3,
    inFlight: 1,
    make: (i) => ({ i }),
    ready: () => of(1),
    discard: () => {},
  }).subscribe((item) => hold(item));
  assert.equal(producersWaiting(), 1);
  sub.unsubscribe();
  assert.equal(producersWaiting(), 0);
});
