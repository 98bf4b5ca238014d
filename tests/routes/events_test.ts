import assert from "node:assert/strict";
import type { Batch, Hello, State, TraceEvent } from "../../components/protocol.ts";
import { dashboard, messages, ORIGIN, post } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("the event stream yields the trace events of a real run, in batches", opts, async () => {
  const d = await dashboard();
  const response = await d.fetch(new Request(`${ORIGIN}/api/events`));
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
  const stream = messages(response.body!);
  try {
    const hello = await stream.next();
    assert.equal(hello?.event, "hello");
    assert.ok((JSON.parse(hello!.data) as Hello).devices.length >= 1);

    const started = await d.fetch(
      post("/api/runs", { experiment: "gpu1-gpu2", size: 64, iters: 3 }),
    );
    assert.equal(started.status, 202);
    const events: TraceEvent[] = [];
    let timings: Record<string, number> = {};
    let batches = 0;
    while (!(timings["GPU1 & GPU2"] > 0) || !events.some((e) => e.op === "mm")) {
      const m = await stream.next();
      assert.ok(m, "the stream stays open");
      if (m.event === "batch") {
        const batch: Batch = JSON.parse(m.data);
        assert.match(m.id ?? "", new RegExp(`/${batch.seq}$`));
        events.push(...batch.events);
        batches++;
      } else if (m.event === "state") timings = (JSON.parse(m.data) as State).timings;
    }
    const products = events.filter((e) => e.op === "mm");
    // Warm-up (3 per device), GPU1 (3), GPU2 (3), both (3 per device).
    assert.equal(products.length, 18);
    assert.deepEqual(new Set(products.map((e) => e.device)), new Set(["gpu:0", "gpu:1"]));
    assert.ok(products.every((e) => e.lane === "compute" && e.end >= e.start));
    assert.deepEqual(
      events.filter((e) => e.op === "benchmark").map((e) => e.label),
      ["GPU1 time", "GPU2 time", "GPU1 & GPU2"],
    );
    assert.ok(batches < events.length, "events come several to a batch");
  } finally {
    await stream.cancel();
    await d.close();
  }
});

Deno.test(
  "a client that never reads misses batches, counted, without holding up others",
  opts,
  async () => {
    // A tiny history: a reader that stalls falls behind it at once.
    const { EventHub } = await import("../../server/event_hub.ts");
    const { Subject } = await import("npm:rxjs@7.8.2");
    const source = new Subject<TraceEvent>();
    const hub = new EventHub({ source, frameMs: 10, historyBatches: 2 });
    const slow = messages(hub.connect());
    const fast = messages(hub.connect());
    try {
      assert.equal((await slow.next())?.event, "hello");
      const event = (id: number): TraceEvent => ({
        id,
        op: "add",
        device: "gpu:0",
        lane: "compute",
        queued: 0,
        start: 0,
        end: 1,
        deps: [],
      });
      let seen = 0;
      for (let i = 1; i <= 6; i++) {
        source.next(event(i));
        // The fast client reads every batch as it comes; the slow one reads nothing.
        for (;;) {
          const m = await fast.next();
          if (m?.event === "batch") {
            seen += (JSON.parse(m.data) as Batch).events.length;
            break;
          }
        }
      }
      assert.equal(seen, 6);
      let dropped = 0;
      while (dropped === 0) {
        const m = await slow.next();
        assert.ok(m, "the slow client's stream stays open");
        if (m.event === "state") dropped = (JSON.parse(m.data) as State).dropped;
      }
      assert.equal(dropped, 4, "the slow client missed the 4 batches that left the history");
      assert.equal(hub.droppedTotal, 4);
    } finally {
      await slow.cancel();
      await fast.cancel();
      hub.close();
    }
  },
);
