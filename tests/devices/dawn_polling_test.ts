import assert from "node:assert/strict";
import { Polling } from "../../lib/devices/dawn_polling.ts";

/** A fake clock and scheduler: immediates run when the test says, sleeps advance the clock. */
function fakeHost() {
  const queued: (() => void)[] = [];
  const host = {
    t: 0,
    slept: [] as number[],
    now: () => host.t,
    immediate: (fn: () => void) => queued.push(fn),
    sleep: (ms: number) => {
      host.slept.push(ms);
      host.t += ms;
    },
    runOne: () => queued.shift()!(),
    get queued() {
      return queued.length;
    },
  };
  return host;
}

Deno.test("polls spin for spinMs after a wake, then sleep an eighth of the wait, capped", () => {
  const host = fakeHost();
  const polling = new Polling(host, { spinMs: 1, sleepMs: 4 });
  let polls = 0;
  const poll = () => {
    polls++;
    host.t += 0.25; // one poll's work
    polling.schedule(poll); // dawn.node re-queues itself while a promise is pending
  };
  polling.wake();
  polling.schedule(poll);
  for (let i = 0; i < 40; i++) host.runOne();
  assert.equal(polls, 40);
  // 0, 0.25, 0.5, 0.75 are inside the spin window; from 1 ms on, each poll sleeps first.
  assert.equal(polling.spins, 4);
  assert.equal(polling.sleeps, 36);
  assert.equal(host.slept[0], 0.25, "the first sleeps are the shortest");
  for (let i = 1; i < host.slept.length; i++) {
    assert.ok(host.slept[i] >= host.slept[i - 1], "sleeps never shrink during one wait");
  }
  assert.equal(host.slept.at(-1), 4, "a long wait sleeps sleepMs at most");
  assert.ok(host.t > 40, `the fake clock moved on: ${host.t}`);
});

Deno.test("a wake after a poll was queued makes that poll prompt", () => {
  const host = fakeHost();
  const polling = new Polling(host, { spinMs: 1, sleepMs: 1 });
  host.t = 100; // long after any wake
  let ran = 0;
  polling.schedule(() => ran++);
  polling.wake(); // the Worker starts a wait before the queued poll runs
  host.runOne();
  assert.equal(ran, 1);
  assert.deepEqual(host.slept, []);
  assert.equal(polling.spins, 1);
});

Deno.test("schedule passes the arguments through like setImmediate", () => {
  const host = fakeHost();
  const polling = new Polling(host);
  const got: unknown[] = [];
  polling.wake();
  polling.schedule((...args) => got.push(...args), 1, "two");
  host.runOne();
  assert.deepEqual(got, [1, "two"]);
});
