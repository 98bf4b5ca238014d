import assert from "node:assert/strict";
import type { TraceEvent } from "../../components/protocol.ts";
import { type Span, TaskStore } from "../../islands/task_store.ts";

const event = (
  id: number,
  op: string,
  start: number,
  end: number,
  lane = "compute",
): TraceEvent => ({
  id,
  op,
  device: "gpu:0",
  lane: lane as TraceEvent["lane"],
  queued: start,
  start,
  end,
  deps: [],
  bytes: 4,
});

Deno.test("rows come in order: benchmarks, then each device's compute, copy and host", () => {
  const store = new TaskStore();
  store.add([
    { ...event(1, "copy", 0, 1, "copy"), device: "gpu:1" },
    { ...event(2, "mm", 0, 1), device: "cpu", lane: "host" },
    { ...event(3, "benchmark", 0, 5, "host"), device: "cpu", label: "GPU1 time" },
    event(4, "mm", 0, 1),
    { ...event(5, "mm", 0, 1), device: "gpu:1" },
  ]);
  assert.deepEqual(store.rows().map((r) => r.key), [
    "benchmarks",
    "gpu:0 compute",
    "gpu:1 compute",
    "gpu:1 copy",
    "cpu host",
  ]);
});

Deno.test("visible() yields the spans that overlap a range, also those starting before it", () => {
  const store = new TaskStore();
  store.add([event(1, "mm", 0, 100), event(2, "add", 40, 41), event(3, "add", 120, 130)]);
  // Out of order: an event that started earlier arrives later.
  store.add([event(4, "mm", 10, 20)]);
  const row = store.rows()[0];
  const seen: number[] = [];
  store.visible(row, 50, 125, (s) => seen.push(s.event!.id));
  assert.deepEqual(seen, [1, 3]);
  assert.equal(store.hit(row, 40.5)?.event?.id, 2);
  assert.equal(store.hit(row, 110), undefined);
});

Deno.test("a row of 100,000+ events folds its oldest spans and stays bounded", () => {
  const store = new TaskStore({ maxSpansPerRow: 2000, foldBuckets: 100 });
  const ops = ["mm", "add"];
  const events = Array.from({ length: 120_000 }, (_, i) => event(i, ops[i % 2], i, i + 0.8));
  for (let i = 0; i < events.length; i += 1000) store.add(events.slice(i, i + 1000));
  const row = store.rows()[0];
  assert.ok(row.spans.length <= 2001, `${row.spans.length} spans`);
  assert.equal(store.events, 120_000);
  const total = row.spans.reduce((a, s) => a + s.count, 0);
  assert.equal(total, 120_000, "every event is counted in some span");
  assert.equal(row.spans.reduce((a, s) => a + s.bytes, 0), 4 * 120_000);
  const folded = row.spans.filter((s: Span) => s.count > 1);
  assert.ok(folded.length > 0 && folded.every((s) => s.event === undefined));
  for (let i = 1; i < row.spans.length; i++) {
    assert.ok(row.spans[i - 1].start <= row.spans[i].start, "spans stay sorted by start");
  }
  // The latest events are still there one by one.
  assert.equal(row.spans[row.spans.length - 1].event?.id, 119_999);
});
