import assert from "node:assert/strict";
import { type Benchmark, benchmark, trace$, type TraceEvent } from "../../mod.ts";

Deno.test("benchmark() prints the seconds of its block like d2l.Benchmark and records the span", async () => {
  const lines: string[] = [];
  const events: TraceEvent[] = [];
  const sub = trace$().subscribe((e) => events.push(e));
  let timer: Benchmark | undefined;
  const before = performance.now();
  {
    await using b = benchmark("GPU1 time", { print: (l) => lines.push(l) });
    await new Promise((r) => setTimeout(r, 30));
    assert.ok(Number.isNaN(b.seconds), "no time while the block runs");
    timer = b;
  }
  const after = performance.now();
  sub.unsubscribe();
  assert.equal(lines.length, 1);
  const m = lines[0].match(/^GPU1 time: (\d+\.\d{4}) sec$/);
  assert.ok(m, `printed "${lines[0]}"`);
  const printed = Number(m[1]);
  assert.equal(printed, Number(timer!.seconds.toFixed(4)));
  assert.ok(printed >= 0.029 && printed <= (after - before) / 1000 + 1e-4, `${printed} s`);
  const span = events.find((e) => e.op === "benchmark");
  assert.ok(span);
  assert.equal(span.label, "GPU1 time");
  assert.ok(span.start >= before && span.end <= after && span.end - span.start >= 29);
});

Deno.test("benchmark() rejects a label that is not a string", () => {
  assert.throws(() => benchmark(42 as unknown as string), TypeError);
});
