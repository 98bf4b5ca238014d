import assert from "node:assert/strict";
import { summarize, type TraceEvent } from "../../mod.ts";

/** A hand-built event: times in ms. */
function ev(
  id: number,
  device: string,
  lane: TraceEvent["lane"],
  start: number,
  end: number,
  deps: number[] = [],
  queued = 0,
): TraceEvent {
  return { id, op: lane === "copy" ? "copy" : "mm", device, lane, queued, start, end, deps };
}

Deno.test("a serial chain without gaps is its own critical path, at efficiency 1", () => {
  const s = summarize([
    ev(1, "gpu:0", "compute", 0, 10),
    ev(2, "gpu:0", "compute", 10, 25, [1]),
    ev(3, "gpu:0", "compute", 25, 30, [2]),
  ]);
  assert.equal(s.makespan, 30);
  assert.deepEqual(s.lanes, [
    { device: "gpu:0", lane: "compute", ops: 3, busy: 30, utilisation: 1 },
  ]);
  assert.deepEqual(s.criticalPath, { length: 30, ops: [1, 2, 3] });
  assert.equal(s.idealMakespan, 30);
  assert.equal(s.efficiency, 1);
  assert.deepEqual(s.copy, {
    total: 0,
    hidden: 0,
    hiddenAnyDevice: 0,
    exposed: 0,
    hiddenFraction: 0,
  });
});

Deno.test("a gap in a serial chain lowers utilisation and efficiency alike", () => {
  // busy 10 + 10 of 25 ms: 0.8; the chain needs 20 ms of the 25 it took
  const s = summarize([
    ev(1, "gpu:0", "compute", 0, 10),
    ev(2, "gpu:0", "compute", 15, 25, [1]),
  ]);
  assert.equal(s.lanes[0].utilisation, 0.8);
  assert.equal(s.criticalPath.length, 20);
  assert.equal(s.efficiency, 0.8);
});

Deno.test("two lanes that run at once reach the ideal makespan", () => {
  const s = summarize([
    ev(1, "gpu:0", "compute", 0, 10),
    ev(2, "gpu:0", "compute", 10, 20, [1]),
    ev(3, "gpu:1", "compute", 0, 15),
    ev(4, "gpu:1", "compute", 15, 30, [3]),
  ]);
  assert.equal(s.makespan, 30);
  assert.deepEqual(s.lanes.map((l) => [l.device, l.busy, l.utilisation]), [
    ["gpu:0", 20, 20 / 30],
    ["gpu:1", 30, 1],
  ]);
  assert.deepEqual(s.criticalPath, { length: 30, ops: [3, 4] });
  assert.equal(s.idealMakespan, 30);
  assert.equal(s.efficiency, 1);
});

Deno.test("two independent lanes that run one after the other reach efficiency 0.5", () => {
  const s = summarize([ev(1, "gpu:0", "compute", 0, 10), ev(2, "gpu:1", "compute", 10, 20)]);
  assert.equal(s.makespan, 20);
  assert.equal(s.criticalPath.length, 10);
  assert.equal(s.idealMakespan, 10);
  assert.equal(s.efficiency, 0.5);
});

Deno.test("the critical path takes the longer branch of a diamond", () => {
  const s = summarize([
    ev(1, "gpu:0", "compute", 0, 5),
    ev(2, "gpu:0", "compute", 5, 15, [1]),
    ev(3, "gpu:1", "compute", 5, 8, [1]),
    ev(4, "gpu:0", "compute", 15, 20, [2, 3]),
  ]);
  assert.deepEqual(s.criticalPath, { length: 20, ops: [1, 2, 4] });
  assert.equal(s.efficiency, 1);
});

Deno.test("a copy entirely under the same device's compute is fully hidden", () => {
  const s = summarize([
    ev(1, "gpu:0", "compute", 0, 20),
    ev(2, "gpu:0", "copy", 5, 15),
  ]);
  assert.deepEqual(s.copy, {
    total: 10,
    hidden: 10,
    hiddenAnyDevice: 10,
    exposed: 0,
    hiddenFraction: 1,
  });
});

Deno.test("a copy that outlasts the compute is partly hidden and partly exposed", () => {
  // copy 6..16 against compute 0..10: 4 ms hidden, 6 ms exposed
  const s = summarize([
    ev(1, "gpu:0", "compute", 0, 10),
    ev(2, "gpu:0", "copy", 6, 16),
  ]);
  assert.deepEqual(s.copy, {
    total: 10,
    hidden: 4,
    hiddenAnyDevice: 4,
    exposed: 6,
    hiddenFraction: 0.4,
  });
  assert.equal(s.lanes.find((l) => l.lane === "copy")!.utilisation, 10 / 16);
});

Deno.test("overlapping copies count once, and compute on another device hides only 'any device' time", () => {
  // gpu:0 copies 0..10 (two copies, 0..6 and 4..10); gpu:1 computes 5..20; gpu:0 computes 8..9
  const s = summarize([
    ev(1, "gpu:0", "copy", 0, 6),
    ev(2, "gpu:0", "copy", 4, 10),
    ev(3, "gpu:1", "compute", 5, 20),
    ev(4, "gpu:0", "compute", 8, 9),
  ]);
  assert.deepEqual(s.copy, {
    total: 10,
    hidden: 1,
    hiddenAnyDevice: 5,
    exposed: 5,
    hiddenFraction: 0.1,
  });
});

Deno.test("span keeps only the ops queued inside the named benchmark span", () => {
  const bench: TraceEvent = {
    id: 9,
    op: "benchmark",
    device: "cpu",
    lane: "host",
    queued: 100,
    start: 100,
    end: 200,
    deps: [],
    label: "GPU1 & GPU2",
  };
  const s = summarize([
    ev(1, "gpu:0", "compute", 50, 90, [], 40),
    ev(2, "gpu:0", "compute", 110, 150, [1], 105),
    bench,
  ], { span: "GPU1 & GPU2" });
  assert.equal(s.makespan, 40);
  assert.deepEqual(s.criticalPath, { length: 40, ops: [2] });
  assert.throws(() => summarize([bench], { span: "GPU3" }), RangeError);
});

Deno.test("an empty trace summarises to zeros at efficiency 1", () => {
  const s = summarize([]);
  assert.equal(s.makespan, 0);
  assert.deepEqual(s.lanes, []);
  assert.deepEqual(s.criticalPath, { length: 0, ops: [] });
  assert.equal(s.efficiency, 1);
});

Deno.test("dependencies that form a cycle throw a RangeError", () => {
  assert.throws(
    () => summarize([ev(1, "gpu:0", "compute", 0, 1, [2]), ev(2, "gpu:0", "compute", 1, 2, [1])]),
    RangeError,
  );
});
