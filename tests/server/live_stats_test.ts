import assert from "node:assert/strict";
import type { TraceEvent } from "../../components/protocol.ts";
import { windowRates } from "../../server/live_stats.ts";

const span = (lane: TraceEvent["lane"], start: number, end: number, extra = {}): TraceEvent => ({
  id: 0,
  op: lane === "copy" ? "copy" : "mm",
  device: "gpu:0",
  lane,
  queued: start,
  start,
  end,
  deps: [],
  ...extra,
});

Deno.test("windowRates counts the part of each span inside the window", () => {
  const r = windowRates(
    [
      span("compute", 500, 1500, { flops: 4e9 }), // half inside: 2 GFLOP
      span("copy", 1200, 1400, { bytes: 1000 }),
      span("copy", 0, 100, { bytes: 5000 }), // outside
    ],
    2000,
    1000,
  );
  assert.equal(r.gflops, 2);
  assert.equal(r.bytesPerSec, 1000);
  assert.equal(r.overlap, 1, "the copy ran while the product computed");
});

Deno.test("overlap is the share of copy time with some compute lane busy", () => {
  const r = windowRates(
    [
      span("compute", 0, 100),
      span("copy", 50, 150),
      span("copy", 60, 140), // overlapping copies count once
    ],
    1000,
    1000,
  );
  assert.equal(r.overlap, 0.5);
  assert.equal(windowRates([span("compute", 0, 10)], 1000, 1000).overlap, null);
});
